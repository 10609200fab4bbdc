"""Isolation levels, and the command line that starts an in-sandbox supervisor at each of them.

Three levels, strongest first (see the README (Security model) for what each one guarantees):

* ``bwrap``: bubblewrap creates the sandbox: new PID, network, IPC and UTS namespaces (and a user namespace
  when the host is not root), a root file system that shows only the system directories and the Python
  installation, read-only, and private tmpfs ``/tmp`` and ``/dev/shm``.
* ``namespaces``: the same sandbox built by the supervisor itself with unshare(2), mount(2) and pivot_root(2),
  for machines without bubblewrap.
* ``rlimits``: resource limits, a separate uid when the host is root, and process-tree killing; no private
  network or file system. The last resort, with a warning.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import sys
from pathlib import Path

from cipo.sandbox.config import SandboxConfig

WORKER_SCRIPT = Path(__file__).with_name("_worker.py")
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# The in-sandbox supervisor keeps these when the host is root and bwrap runs without a user namespace: to run
# each program under run_as_uid, give it its working directory, and kill and clean up after it. The program
# itself ends up with no capability at all.
SUPERVISOR_CAPABILITIES = (
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_KILL",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
)


class IsolationLevel(enum.StrEnum):
    BWRAP = "bwrap"
    NAMESPACES = "namespaces"
    RLIMITS = "rlimits"


LEVELS_STRONGEST_FIRST = (IsolationLevel.BWRAP, IsolationLevel.NAMESPACES, IsolationLevel.RLIMITS)

DESCRIPTIONS = {
    IsolationLevel.BWRAP: "bubblewrap sandbox: private PID, network, IPC and UTS namespaces, read-only system "
    "directories, private /tmp",
    IsolationLevel.NAMESPACES: "namespace sandbox built without bubblewrap: private PID, network, IPC and UTS "
    "namespaces, read-only system directories, private /tmp",
    IsolationLevel.RLIMITS: "resource limits only: programs can reach the network and read the file system"
    + (" and write where uid nobody can" if os.geteuid() == 0 else " and write wherever this user can"),
}


def running_as_root() -> bool:
    return os.geteuid() == 0


def unavailable_reason(level: IsolationLevel) -> str | None:
    """Why ``level`` cannot even be tried here, or None (trying it may still fail)."""
    if not sys.platform.startswith("linux"):
        return "the sandbox needs Linux"
    if level is IsolationLevel.BWRAP and shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    return None


def visible_paths(extra: tuple[str, ...] = ()) -> tuple[list[str], list[tuple[str, str]]]:
    """What a sandboxed program sees, read-only: directories/files to bind, and symlinks to recreate.

    The system directories, the Python installation (venv and base), this package's directory (the supervisor's
    code) and ``extra``. Home directories, the project and datasets stay invisible.
    """
    executable_dir = os.path.dirname(os.path.realpath(sys.executable))
    pending = [
        *SYSTEM_PATHS,
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        executable_dir,
    ]
    pending += [str(WORKER_SCRIPT.parent), *extra]
    binds: set[str] = set()
    links: dict[str, str] = {}
    while pending:
        path = os.path.abspath(pending.pop())
        if path in binds or path in links or not os.path.lexists(path):
            continue
        if os.path.islink(path):
            links[path] = os.readlink(path)
            pending.append(os.path.realpath(path))
        else:
            binds.add(path)
    outermost = sorted(path for path in binds if not any(_is_inside(path, other) for other in binds))
    symlinks = sorted(
        (link, target) for link, target in links.items() if not any(_is_inside(link, b) for b in outermost)
    )
    return outermost, symlinks


def _is_inside(path: str, directory: str) -> bool:
    return path != directory and path.startswith(directory.rstrip("/") + "/")


def _ancestors(paths: list[str]) -> list[str]:
    """Parent directories to create (mode 0755, so that an unprivileged program can reach what is bound)."""
    mounted = {"/", "/tmp", "/dev", "/dev/shm", "/proc"}
    found = {str(parent) for path in paths for parent in Path(path).parents if str(parent) not in mounted}
    return sorted(found, key=lambda directory: (directory.count("/"), directory))


def worker_settings(level: IsolationLevel, config: SandboxConfig, preload: bool, work_root: str) -> dict:
    """What the in-sandbox supervisor needs to know. ``work_root`` holds the runs' working directories: the
    private /tmp inside a sandbox, a host directory at the rlimits level."""
    binds, symlinks = visible_paths(config.extra_readonly_paths)
    root = running_as_root()
    return {
        "level": level.value,
        "work_root": work_root,
        "run_as": [config.run_as_uid, config.run_as_gid] if root else None,
        "keep_read_access": root and level is IsolationLevel.RLIMITS,
        "tmp_bytes": config.tmp_size_mb << 20,
        "shm_bytes": max(1, config.tmp_size_mb // 4) << 20,
        "preload": preload,
        "binds": binds,
        "symlinks": symlinks,
        "parent_pid": os.getpid(),
    }


def bwrap_arguments(settings: dict) -> list[str]:
    """bubblewrap options for the sandbox described by ``settings`` (see :func:`worker_settings`)."""
    arguments = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--new-session"]
    if running_as_root():
        # No user namespace: the supervisor must be able to switch each program to run_as_uid, and a user
        # namespace created by root could only map the program to root itself.
        arguments += [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
        arguments += ["--cap-drop", "ALL"]
        for capability in SUPERVISOR_CAPABILITIES:
            arguments += ["--cap-add", capability]
    else:
        arguments += ["--unshare-all", "--unshare-user", "--disable-userns"]
    # Private /tmp, /dev and /proc first: a bound path may live under /tmp (a virtualenv there, say).
    arguments += ["--perms", "1777", "--size", str(settings["tmp_bytes"]), "--tmpfs", "/tmp"]
    arguments += ["--dev", "/dev", "--proc", "/proc"]
    arguments += ["--perms", "1777", "--size", str(settings["shm_bytes"]), "--tmpfs", "/dev/shm"]
    binds = settings["binds"]
    for directory in _ancestors(binds + [link for link, _ in settings["symlinks"]]):
        arguments += ["--perms", "0755", "--dir", directory]
    for path in binds:
        arguments += ["--ro-bind", path, path]
    for link, target in settings["symlinks"]:
        arguments += ["--symlink", target, link]
    arguments += ["--remount-ro", "/", "--chdir", "/tmp"]
    return arguments


def worker_command(settings: dict) -> list[str]:
    """The command that starts one in-sandbox supervisor (see :func:`worker_settings`)."""
    python = [sys.executable, "-I", "-B", "-X", "utf8", str(WORKER_SCRIPT), json.dumps(settings)]
    if settings["level"] == IsolationLevel.BWRAP:
        return bwrap_arguments(settings) + python
    return python
