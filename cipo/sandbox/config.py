"""``SandboxConfig``: isolation level, resource limits and pool size of the code sandbox."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

ISOLATION_ENV = "CIPO_SANDBOX_ISOLATION"
ISOLATION_CHOICES = ("auto", "bwrap", "namespaces", "rlimits")


def _isolation_from_environment() -> str:
    return os.environ.get(ISOLATION_ENV, "auto").strip().lower() or "auto"


@dataclass
class SandboxConfig:
    """How untrusted programs are run. Every limit applies to each run (one program execution) separately."""

    isolation: str = field(
        default_factory=_isolation_from_environment,
        metadata={
            "help": "Isolation level: 'auto' (the strongest that works here: bwrap, then namespaces, then "
            "rlimits, with a warning below bwrap), or one of 'bwrap', 'namespaces', 'rlimits' to force it (an "
            f"error if it does not work). Defaults to ${ISOLATION_ENV} when set."
        },
    )
    workers: int = field(
        default=0,
        metadata={
            "help": "Pre-started sandboxes that run programs in parallel; 0 = one per available CPU core."
        },
    )
    timeout_s: float = field(
        default=10.0,
        metadata={"help": "Wall-clock limit of one run, enforced from outside the program (SIGKILL)."},
    )
    cpu_time_s: float | None = field(
        default=None,
        metadata={"help": "CPU-time limit per process (RLIMIT_CPU); None = the same as timeout_s."},
    )
    memory_mb: int = field(
        default=1024,
        metadata={"help": "Address-space limit per process (RLIMIT_AS), in MiB."},
    )
    file_size_mb: int = field(
        default=16,
        metadata={"help": "Largest file a program may write (RLIMIT_FSIZE), in MiB."},
    )
    tmp_size_mb: int = field(
        default=64,
        metadata={
            "help": "Size of the private /tmp (which holds the working directory) at the bwrap and namespaces "
            "levels, in MiB; /dev/shm gets a quarter of it."
        },
    )
    open_files: int = field(
        default=64,
        metadata={"help": "Open file descriptors per process (RLIMIT_NOFILE)."},
    )
    max_processes: int = field(
        default=32,
        metadata={"help": "Processes and threads a run may have at once (RLIMIT_NPROC): stops fork bombs."},
    )
    max_output_bytes: int = field(
        default=1 << 20,
        metadata={"help": "Most bytes of stdout+stderr kept; a run that prints more is killed and fails."},
    )
    run_as_uid: int = field(
        default=65534,
        metadata={
            "help": "When the host runs as root: the unprivileged uid programs run as (65534 = nobody)."
        },
    )
    run_as_gid: int = field(
        default=65534,
        metadata={"help": "When the host runs as root: the gid programs run as (65534 = nogroup)."},
    )
    extra_readonly_paths: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "More host paths the programs may read (bwrap and namespaces levels show only the "
            "system directories and the Python installation)."
        },
    )
    fresh_sandbox_per_run: bool = field(
        default=False,
        metadata={
            "help": "Start a new sandbox and interpreter for every run instead of forking a pre-started one "
            "(the naive approach: same isolation, several times slower; for benchmarks)."
        },
    )
    startup_timeout_s: float = field(
        default=60.0,
        metadata={"help": "How long a sandbox may take to start before it counts as broken."},
    )

    def __post_init__(self) -> None:
        self.isolation = self.isolation.strip().lower()
        if self.isolation not in ISOLATION_CHOICES:
            raise ValueError(f"isolation must be one of {ISOLATION_CHOICES}, got {self.isolation!r}")
        for name in ("timeout_s", "memory_mb", "file_size_mb", "tmp_size_mb", "open_files", "max_processes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        self.extra_readonly_paths = tuple(self.extra_readonly_paths)

    @property
    def worker_count(self) -> int:
        return self.workers or len(os.sched_getaffinity(0))

    def limits(self, timeout_s: float | None = None) -> dict[str, float | int]:
        """The per-run limits in the form the in-sandbox supervisor takes."""
        timeout = timeout_s or self.timeout_s
        return {
            "timeout_s": timeout,
            "cpu_s": self.cpu_time_s or timeout,
            "memory_bytes": self.memory_mb << 20,
            "file_bytes": self.file_size_mb << 20,
            "open_files": self.open_files,
            "processes": self.max_processes,
            "output_bytes": self.max_output_bytes,
        }
