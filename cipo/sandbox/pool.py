"""``Sandbox``: a pool of pre-started in-sandbox supervisors that run untrusted programs in parallel.

Each worker is one sandbox (one bubblewrap instance at the ``bwrap`` level) holding a warm Python supervisor
(``_worker.py``) that forks a fresh child per run. The host side here sends jobs, enforces a second, outer
deadline (a supervisor that stops answering is killed with its whole sandbox), restarts dead workers and
spreads a batch over the workers with one thread each. Each thread keeps the next job waiting in its
supervisor's pipe (``PIPELINE_DEPTH``), so a supervisor goes from one run to the next without waiting for the
host.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import logging
import os
import queue
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cipo.sandbox import _protocol
from cipo.sandbox.config import SandboxConfig
from cipo.sandbox.isolation import (
    DESCRIPTIONS,
    LEVELS_STRONGEST_FIRST,
    IsolationLevel,
    unavailable_reason,
    worker_command,
    worker_settings,
)

logger = logging.getLogger(__name__)

# Beyond the run's own timeout: the supervisor's kill grace period, clean-up and the reply.
HOST_DEADLINE_MARGIN_S = 15.0
# Jobs sent to a supervisor before its previous answers came back: the one it runs and the next.
PIPELINE_DEPTH = 2
PIPE_SIZE = 1 << 20  # asked for the pipe to a supervisor (Linux caps it at /proc/sys/fs/pipe-max-size)
# LD_BIND_NOW: the supervisor resolves every C symbol at start-up, not each forked child on first call.
WORKER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LD_BIND_NOW": "1"}


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program in it)."""


class SandboxUnavailable(SandboxError):
    """No isolation level (or not the one forced by the configuration) works on this machine."""


@dataclass(frozen=True)
class ExecutionRequest:
    """One run of a program. ``harness`` selects what runs it inside the sandbox (see ``cipo.sandbox.testing``);
    None runs the program as a script, like ``python solution.py < stdin``."""

    program: str
    stdin: str = ""
    harness: Mapping[str, Any] | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class ExecutionResult:
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    output_limit_exceeded: bool = False
    duration_s: float = 0.0
    channel: str = ""
    sandbox_error: str | None = None

    @property
    def ok(self) -> bool:
        """The program ran to the end and exited with status 0."""
        return self.exit_code == 0 and not (
            self.timed_out or self.output_limit_exceeded or self.sandbox_error
        )


class _WorkerFailure(Exception):
    pass


class _Worker:
    """One in-sandbox supervisor process and the pipes to it."""

    def __init__(self, level: IsolationLevel, config: SandboxConfig, spawner: ThreadPoolExecutor) -> None:
        self.level = level
        self.config = config
        self._spawner = spawner
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._work_root: str | None = None
        self._decoder = _protocol.FrameDecoder()
        self.pipe_capacity = 0  # bytes the pipe to the supervisor holds without blocking the writer

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.level is IsolationLevel.RLIMITS:
            # Made and removed here, not by the supervisor: a program may kill its supervisor at this level.
            self._work_root = tempfile.mkdtemp(prefix="cipo-sandbox-")
            os.chmod(self._work_root, 0o711)  # the programs' uid must reach its own working directory
        preload = not self.config.fresh_sandbox_per_run
        command = worker_command(worker_settings(self.level, self.config, preload, self._work_root or "/tmp"))
        self._stderr = tempfile.TemporaryFile()
        self._decoder = _protocol.FrameDecoder()
        # Spawned from one long-lived thread: bwrap --die-with-parent and PR_SET_PDEATHSIG fire when the
        # *thread* that started the process ends.
        self._process = self._spawner.submit(
            subprocess.Popen,
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=WORKER_ENV,
            cwd="/",
            start_new_session=True,
        ).result()
        self.pipe_capacity = _enlarge_pipe(self._process.stdin.fileno())
        try:
            ready = self._receive(time.monotonic() + self.config.startup_timeout_s)
        except _WorkerFailure as failure:
            self.kill()
            raise SandboxError(f"the {self.level} sandbox did not start: {failure}") from None
        if not ready.get("ready"):
            self.kill()
            raise SandboxError(f"the {self.level} sandbox sent {ready!r} instead of its ready message")

    def execute(self, job: dict[str, Any], deadline: float) -> dict[str, Any]:
        """Send one job, wait for its result; raise _WorkerFailure (after killing the worker) if none comes."""
        try:
            self.send(_protocol.encode_message(job))
            return self.receive(deadline)
        except _WorkerFailure:
            self.kill()
            raise

    def send(self, data: bytes) -> None:
        """Write one encoded job; _WorkerFailure if the supervisor is gone."""
        assert self._process is not None and self._process.stdin is not None
        fd = self._process.stdin.fileno()
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError as error:
            raise _WorkerFailure(f"the supervisor does not take jobs: {error}") from None

    def receive(self, deadline: float) -> dict[str, Any]:
        """The next answer; _WorkerFailure if none comes before ``deadline``."""
        try:
            return self._receive(deadline)
        except OSError as error:
            raise _WorkerFailure(str(error)) from None

    def _receive(self, deadline: float) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while (message := self._decoder.next_message()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise _WorkerFailure("no answer before the deadline")
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise _WorkerFailure(f"the supervisor exited ({self._exit_description()})")
                self._decoder.feed(chunk)
        return message

    def _exit_description(self) -> str:
        assert self._process is not None
        try:
            code = self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        self._stderr.seek(0)
        stderr = self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
        return f"exit code {code}" + (f": {stderr}" if stderr else "")

    def stop(self) -> None:
        """Ask the supervisor to finish (end of input), then make sure it is gone."""
        if self._process is None:
            return
        try:
            if self._process.stdin:
                self._process.stdin.close()
            self._process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def kill(self) -> None:
        """Kill the supervisor's process group; with it goes the whole sandbox (die-with-parent)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._process = None
        if self._work_root is not None:
            _remove_tree(self._work_root)
            self._work_root = None


class Sandbox:
    """Runs untrusted Python programs in parallel, isolated and with resource limits.

    >>> with Sandbox() as sandbox:
    ...     sandbox.run(ExecutionRequest("print(input()[::-1])", stdin="abc")).stdout
    'cba\\n'
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._owner_pid = os.getpid()
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cipo-sandbox-spawn")
        self._closed = False
        self.level, first = self._start_strongest_worker()
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._workers = [first]
        if self.config.fresh_sandbox_per_run:
            first.stop()
        else:
            try:
                for _ in range(self.config.worker_count - 1):
                    self._workers.append(_Worker(self.level, self.config, self._spawner))
                    self._workers[-1].start()
            except SandboxError:
                for worker in self._workers:
                    worker.kill()
                self._spawner.shutdown()
                raise
            for worker in self._workers:
                self._idle.put(worker)
        self._executor = ThreadPoolExecutor(
            max_workers=self.config.worker_count, thread_name_prefix="cipo-sandbox"
        )

    # -- level selection -----------------------------------------------------------------------------------------

    def _start_strongest_worker(self) -> tuple[IsolationLevel, _Worker]:
        forced = self.config.isolation != "auto"
        levels = [IsolationLevel(self.config.isolation)] if forced else list(LEVELS_STRONGEST_FIRST)
        failures: list[str] = []
        for level in levels:
            reason = unavailable_reason(level)
            if reason is None:
                worker = _Worker(level, self.config, self._spawner)
                try:
                    worker.start()
                    self._probe(worker)
                except SandboxError as error:
                    worker.kill()
                    reason = str(error)
                else:
                    _announce(level, failures, forced)
                    return level, worker
            failures.append(f"{level}: {reason}")
        self._spawner.shutdown()
        raise SandboxUnavailable("no sandbox isolation level works here: " + "; ".join(failures))

    def _probe(self, worker: _Worker) -> None:
        job = self._job(ExecutionRequest("print(6 * 7)", timeout_s=max(self.config.timeout_s, 30.0)))
        try:
            reply = worker.execute(job, time.monotonic() + 30.0 + HOST_DEADLINE_MARGIN_S)
        except _WorkerFailure as failure:
            raise SandboxError(f"the {worker.level} sandbox failed its first run: {failure}") from None
        if reply.get("exit_code") != 0 or reply.get("stdout") != "42\n":
            detail = reply.get("error") or reply.get("stderr", "")[-500:]
            raise SandboxError(f"the {worker.level} sandbox failed its first run: {detail}")

    # -- running -------------------------------------------------------------------------------------------------

    def _job(self, request: ExecutionRequest) -> dict[str, Any]:
        job: dict[str, Any] = {"mode": "script", **(request.harness or {})}
        job.update(program=request.program, stdin=request.stdin, limits=self.config.limits(request.timeout_s))
        return job

    def run(self, request: ExecutionRequest) -> ExecutionResult:
        """Run one program; never raises for anything the program does (see ``ExecutionResult``)."""
        return self.run_many([request])[0]

    def run_many(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        """Run a batch in parallel over the workers; results in the order of ``requests``."""
        self._check_usable()
        batch = _Batch([self._job(request) for request in requests])
        serve = self._serve_fresh if self.config.fresh_sandbox_per_run else self._serve
        threads = min(self.config.worker_count, len(batch.jobs))
        if threads <= 1:
            if batch.jobs:
                serve(batch)
        else:
            for future in [self._executor.submit(serve, batch) for _ in range(threads)]:
                future.result()
        return batch.finished()

    def _serve(self, batch: _Batch) -> None:
        worker = self._idle.get()
        try:
            self._feed(worker, batch, batch.take)
        finally:
            self._idle.put(worker)

    def _serve_fresh(self, batch: _Batch) -> None:
        """The naive approach: a new sandbox for every job."""
        while (index := batch.take()) is not None:
            worker = _Worker(self.level, self.config, self._spawner)
            try:
                self._feed(worker, batch, functools.partial(next, iter([index]), None))
            finally:
                worker.stop()

    def _feed(self, worker: _Worker, batch: _Batch, take: Callable[[], int | None]) -> None:
        """Run the jobs that ``take`` hands out on ``worker`` until it hands out None.

        Up to PIPELINE_DEPTH jobs wait in the supervisor's pipe; its answers come back in order, so the oldest
        job sent is the one it runs, and the deadline counts from the answer before. A job whose supervisor
        fails (the program killed it, or, rarely, the machine was too loaded to start one in time) runs a
        second time on a fresh supervisor, which keeps such accidents out of the rewards; the jobs queued behind
        it are sent again without counting.
        """
        waiting: deque[int] = deque()  # taken, to send (again) before taking more
        in_flight: deque[int] = deque()
        started = 0.0  # when the supervisor began the oldest job in flight
        while True:
            while len(in_flight) < PIPELINE_DEPTH:
                index = waiting.popleft() if waiting else take()
                if index is None:
                    break
                data = batch.encoded(index)
                if in_flight and len(data) > worker.pipe_capacity:
                    waiting.appendleft(index)  # writing it could block: send it once the supervisor is idle
                    break
                try:
                    if not worker.alive:
                        worker.start()
                    worker.send(data)
                except (SandboxError, _WorkerFailure) as error:
                    if in_flight:  # the supervisor died running the oldest job; its answer will say so
                        waiting.appendleft(index)
                        break
                    worker.kill()
                    if self._failed(batch, index, f"the sandbox supervisor failed: {error}"):
                        waiting.appendleft(index)
                    continue
                if not in_flight:
                    started = time.monotonic()
                in_flight.append(index)
            if not in_flight:
                return
            index = in_flight.popleft()
            deadline = started + batch.jobs[index]["limits"]["timeout_s"] + HOST_DEADLINE_MARGIN_S
            try:
                reply = worker.receive(deadline)
            except _WorkerFailure as error:
                worker.kill()
                reply = {"error": f"the sandbox supervisor failed: {error}"}
            started = time.monotonic()
            if reply.get("recycle"):
                worker.stop()  # it exits after this answer: what it had queued goes to its successor
            if not worker.alive:
                waiting.extendleft(reversed(in_flight))
                in_flight.clear()
            if "error" not in reply:
                batch.results[index] = _result(reply)
            elif self._failed(batch, index, str(reply["error"])):
                waiting.appendleft(index)

    @staticmethod
    def _failed(batch: _Batch, index: int, failure: str) -> bool:
        """Count a failed attempt at job ``index``; True if it gets another one."""
        batch.attempts[index] += 1
        attempt = batch.attempts[index]
        logger.log(logging.INFO if attempt == 1 else logging.WARNING, "cipo.sandbox: %s", failure)
        if attempt < 2:
            return True
        batch.results[index] = ExecutionResult(exit_code=None, sandbox_error=failure)
        return False

    def _check_usable(self) -> None:
        if self._closed:
            raise SandboxError("this Sandbox is closed")
        if os.getpid() != self._owner_pid:
            raise SandboxError("a Sandbox cannot be used across fork(); create one in this process")

    # -- lifetime ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed or os.getpid() != self._owner_pid:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        for worker in self._workers:
            worker.stop()
        self._spawner.shutdown()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Batch:
    """The jobs of one ``run_many`` call, handed out to the threads that feed the workers."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = jobs
        self.results: list[ExecutionResult | None] = [None] * len(jobs)
        self.attempts = [0] * len(jobs)
        self._encoded: dict[int, bytes] = {}
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._next == len(self.jobs):
                return None
            self._next += 1
            return self._next - 1

    def encoded(self, index: int) -> bytes:
        if index not in self._encoded:
            self._encoded[index] = _protocol.encode_message(self.jobs[index])
        return self._encoded[index]

    def finished(self) -> list[ExecutionResult]:
        assert all(result is not None for result in self.results)
        return [result for result in self.results if result is not None]


def _enlarge_pipe(fd: int) -> int:
    """Ask for a PIPE_SIZE pipe; return the size it has."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # over the system's limits: keep the default
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


def _remove_tree(path: str) -> None:
    def unlock_and_retry(function: Any, failed_path: str, _: Any) -> None:
        for directory in (os.path.dirname(failed_path), failed_path):
            try:
                os.chmod(directory, 0o700)  # a program may have locked its directories
            except OSError:
                pass
        try:
            function(failed_path)
        except OSError:
            pass

    shutil.rmtree(path, onerror=unlock_and_retry)


def _result(reply: dict[str, Any]) -> ExecutionResult:
    return ExecutionResult(
        exit_code=reply["exit_code"],
        stdout=reply["stdout"],
        stderr=reply["stderr"],
        timed_out=reply["timed_out"],
        output_limit_exceeded=reply["output_limit"],
        duration_s=reply["duration_s"],
        channel=reply["channel"],
    )


_warned_levels: set[tuple[IsolationLevel, str]] = set()


def _announce(level: IsolationLevel, failures: list[str], forced: bool) -> None:
    why = "forced by the configuration" if forced else "; ".join(failures)
    if level is IsolationLevel.BWRAP:
        logger.info("cipo.sandbox: isolation level 'bwrap' (%s)", DESCRIPTIONS[level])
        return
    if (level, why) in _warned_levels:
        return
    _warned_levels.add((level, why))
    logger.warning(
        "cipo.sandbox: running untrusted code at isolation level %r: %s. Stronger levels are not in use (%s).",
        level.value,
        DESCRIPTIONS[level],
        why,
    )


_shared: dict[tuple[int, str], Sandbox] = {}
_shared_lock = threading.Lock()


def get_sandbox(config: SandboxConfig | None = None) -> Sandbox:
    """A process-wide Sandbox per configuration, started on first use and closed at exit."""
    config = config or SandboxConfig()
    key = (os.getpid(), repr(config))
    with _shared_lock:
        sandbox = _shared.get(key)
        if sandbox is None:
            sandbox = _shared[key] = Sandbox(config)
        return sandbox


def close_shared_sandboxes() -> None:
    with _shared_lock:
        for sandbox in _shared.values():
            sandbox.close()
        _shared.clear()


atexit.register(close_shared_sandboxes)
