"""Worker processes for the math verifier, with a hard deadline per job.

sympy can hang, and math-verify's own SIGALRM timeouts only work in the main thread, so a process the parent can
kill is the only hard limit. :class:`VerifierPool` keeps a few persistent ``spawn`` workers; each gets one job at a
time over its own pipe, and a worker whose job runs past the deadline is killed and replaced.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait

logger = logging.getLogger(__name__)

# A worker imports sympy and math-verify before it reports ready; on a loaded machine that can take a while.
WORKER_STARTUP_TIMEOUT_S = 120.0

Golds = tuple[str, ...]
Job = tuple[Golds, str]
# Runs inside a worker: (gold candidates, graded completion text) -> is the completion correct?
WorkerFn = Callable[[Golds, str], bool]
# Runs once in each fresh worker, before its warm-up (module-level: it is pickled by name).
WorkerInit = Callable[[], object]
# Golds a worker is remembered to have seen (beyond this many, the memory starts afresh).
KNOWN_GOLDS_PER_WORKER = 4096

# Run once in each fresh worker, outside any job's deadline: imports and sympy/antlr first-use setup for the common
# answer shapes (fractions, roots, sets, intervals, matrices, equations, percentages, "final answer" statements).
_WARM_UP_JOBS: tuple[Job, ...] = (
    (("\\frac{1}{2}",), "so \\boxed{x+1}"),
    (("(1,2)",), "The answer is $\\{1\\}$."),
    (("x^2",), "Final answer: y=2"),
    (("3\\sqrt{13}",), "Thus $\\boxed{\\sqrt{117}}$."),
    (("(-\\infty, 2) \\cup (3, \\infty)",), "so $x \\in \\boxed{(-\\infty, 2) \\cup (3, \\infty)}$"),
    (("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",), "\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}"),
    (("50\\%",), "Final Answer: The final answer is $0.5$. I hope it is correct."),
    (("\\pi",), "The area is $\\boxed{\\frac{2\\pi}{3}}$ square units."),
    (("6+9i",), "\\boxed{9i+6}"),
    (("10,455",), "Dividing, $\\frac{12}{4} = 3$, so the total is $10,455$."),
)


def _worker_main(connection: Connection, worker_fn: WorkerFn, worker_init: WorkerInit | None) -> None:
    """Worker process: answer one (golds, graded text) job at a time until told to stop (None) or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it stops us cleanly
    _exit_when_orphaned()
    # math-verify warns once that its timeouts are off, and logs every parse failure; both are expected here.
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    import math_verify  # noqa: F401 - if it is missing, fail here: the parent then reports a startup failure

    if worker_init is not None:
        worker_init()
    _warm_up(worker_fn, _WARM_UP_JOBS)
    connection.send("ready")
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if isinstance(message, list):  # warm-up jobs (VerifierPool.warm_up): run them all, then say so
            _warm_up(worker_fn, message)
            reply: object = "warm"
        else:
            try:
                reply = bool(worker_fn(*message))
            except Exception:
                reply = False
        try:
            connection.send(reply)
        except OSError:  # the parent is gone
            return


def _warm_up(worker_fn: WorkerFn, jobs: Sequence[Job]) -> None:
    for job in jobs:
        try:
            worker_fn(*job)
        except Exception:
            pass


def _exit_when_orphaned() -> None:
    """A worker stuck in sympy cannot notice its parent died from its pipe; this thread does."""
    parent_pid = os.getppid()

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="orphan-watch").start()


# ---------------------------------------------------------------------------------------------------------------
# The worker pool
# ---------------------------------------------------------------------------------------------------------------


class JobQueue:
    """Pending jobs grouped by gold, handed out so that a gold's jobs stay on the worker that already has it.

    Parsing a gold costs a worker about as much as parsing a completion, and each worker caches its own parses;
    a GRPO batch brings each gold with a group of completions. So a free worker gets, in this order: the next job
    of a gold it has seen, the first job of a gold no worker has started, or else a job of the gold with the most
    jobs left (work is never left waiting while a worker is idle).
    """

    def __init__(self, jobs: Sequence[Job]) -> None:
        self._by_golds: dict[Golds, deque[int]] = {}
        for index, (golds, _) in enumerate(jobs):
            self._by_golds.setdefault(golds, deque()).append(index)
        self._golds_of = [golds for golds, _ in jobs]
        self._unstarted = deque(self._by_golds)

    def __bool__(self) -> bool:
        return bool(self._by_golds)

    def pop_for(self, known_golds: dict[Golds, None]) -> int:
        """The index of the next job for a worker that has seen ``known_golds``, latest last (this updates them)."""
        # The gold it works on is checked first, so the scan below runs about once per gold.
        golds = next(reversed(known_golds), None)
        if golds not in self._by_golds:
            golds = next((golds for golds in self._by_golds if golds in known_golds), None)
        while golds is None and self._unstarted:
            candidate = self._unstarted.popleft()
            golds = candidate if candidate in self._by_golds else None
        if golds is None:
            golds = max(self._by_golds, key=lambda key: len(self._by_golds[key]))
        queue = self._by_golds[golds]
        index = queue.popleft()
        if not queue:
            del self._by_golds[golds]
        if len(known_golds) >= KNOWN_GOLDS_PER_WORKER:
            known_golds.clear()
        known_golds.pop(golds, None)
        known_golds[golds] = None
        return index

    def put_back(self, index: int) -> None:
        """Return a job that could not be sent; it goes first in its gold's queue."""
        self._by_golds.setdefault(self._golds_of[index], deque()).appendleft(index)


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start spawned workers without re-importing the user's ``__main__``.

    ``spawn`` children normally re-run the parent's main script; a training script without an
    ``if __name__ == "__main__":`` guard would then start training again in every verifier worker. The workers only
    need this module, so the main module is hidden while a worker's start-up data is prepared.
    """
    main_module = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main_module is not None:
            sys.modules["__main__"] = main_module


class _Worker:
    """One worker process, its end of the pipe, and the job it is running (if any)."""

    def __init__(
        self,
        context: multiprocessing.context.BaseContext,
        worker_fn: WorkerFn,
        worker_init: WorkerInit | None,
    ) -> None:
        self.connection, child_connection = context.Pipe()
        self.process = context.Process(
            target=_worker_main,
            args=(child_connection, worker_fn, worker_init),
            daemon=True,
            name="cipo-math-verify",
        )
        with _main_module_hidden():
            self.process.start()
        self.owner_pid = os.getpid()
        child_connection.close()  # so that recv() sees EOF when the worker dies
        self.ready = False
        self.startup_deadline = time.monotonic() + WORKER_STARTUP_TIMEOUT_S
        self.job_index: int | None = None
        self.job_deadline = math.inf
        self.known_golds: dict[Golds, None] = {}  # golds of its past jobs (parsed there), latest last

    @property
    def busy(self) -> bool:
        return self.job_index is not None

    def stop(self, graceful: bool) -> None:
        """Stop and reap the process (no zombie is left behind)."""
        if os.getpid() != self.owner_pid:  # in a forked copy of the parent: not ours to stop
            return
        if graceful and self.ready and not self.busy:
            try:
                self.connection.send(None)
                self.process.join(timeout=1.0)
            except (OSError, ValueError):
                pass
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.process.close()
        self.connection.close()


def _stop_workers(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.stop(graceful=not worker.busy)
    workers.clear()


class VerifierPool:
    """A few persistent worker processes, started lazily (``spawn``), with a hard deadline per job.

    Each worker gets one job at a time over its own pipe. A worker whose job runs past ``timeout_s`` is killed
    and replaced; the job's result is None. The workers stop with :meth:`close`, when the pool is garbage
    collected, or at interpreter exit.
    """

    def __init__(
        self, num_workers: int, timeout_s: float, worker_fn: WorkerFn, worker_init: WorkerInit | None = None
    ) -> None:
        if num_workers < 1 or timeout_s <= 0:
            raise ValueError("num_workers must be >= 1 and timeout_s > 0")
        self.num_workers = num_workers
        self.timeout_s = timeout_s
        self.worker_fn = worker_fn
        self.worker_init = worker_init
        self.timeouts = 0  # jobs killed at their deadline, for logs and tests
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []  # modified in place only: the finalizer holds this list
        self._finalizer = weakref.finalize(self, _stop_workers, self._workers)  # also runs at exit
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()

    def run(self, jobs: Sequence[Job]) -> list[bool | None]:
        """Run the jobs; each result is the worker's answer, or None when it timed out or its worker died."""
        results: list[bool | None] = [None] * len(jobs)
        if not jobs:
            return results
        self._forget_workers_after_fork()
        with self._lock:
            self._start_workers()
            pending = JobQueue(jobs)
            try:
                while pending or any(worker.busy for worker in self._workers):
                    self._dispatch(jobs, pending)
                    self._collect(results)
                    self._enforce_deadlines()
            except BaseException:  # e.g. KeyboardInterrupt
                self._stop_busy_workers()  # or their late answers would land in the next call's results
                raise
        return results

    def warm_up(self, jobs: Sequence[Job], timeout_s: float = WORKER_STARTUP_TIMEOUT_S) -> None:
        """Start the workers now and have each run ``jobs`` outside any job deadline, as early training steps would.

        A worker still busy with them after ``timeout_s`` is replaced by a fresh one (without this warm-up).
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self._forget_workers_after_fork()
        with self._lock:
            self._start_workers()
            while not all(worker.ready for worker in self._workers):
                self._collect([])  # no job is out: only "ready" messages (or a failed start) can come
                self._enforce_deadlines()
            warming: list[_Worker] = []
            for worker in self._workers:
                with contextlib.suppress(OSError):
                    worker.connection.send(list(jobs))
                    warming.append(worker)
            deadline = time.monotonic() + timeout_s
            while warming and time.monotonic() < deadline:
                connections = [worker.connection for worker in warming]
                for connection in wait(connections, max(0.0, deadline - time.monotonic())):
                    warming = [worker for worker in warming if worker.connection is not connection]
                    with contextlib.suppress(EOFError, OSError):
                        connection.recv()  # "warm"; a worker that died is replaced on its next job
            for worker in warming:
                logger.warning("math-verify worker still warming up after %.1fs; replacing it", timeout_s)
                self._replace(worker)

    def worker_pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers if worker.process.pid is not None]

    def close(self) -> None:
        """Stop all workers. The pool restarts them if used again."""
        with self._lock:
            _stop_workers(self._workers)

    def _forget_workers_after_fork(self) -> None:
        # In a forked child the workers belong to the parent: leave them alone and start our own.
        if os.getpid() != self._owner_pid:
            self._workers.clear()
            self._owner_pid = os.getpid()
            self._lock = threading.Lock()

    def _start_workers(self) -> None:
        while len(self._workers) < self.num_workers:
            self._workers.append(_Worker(self._context, self.worker_fn, self.worker_init))

    def _dispatch(self, jobs: Sequence[Job], pending: JobQueue) -> None:
        for worker in self._workers:
            if not pending:
                return
            if worker.ready and not worker.busy:
                job_index = pending.pop_for(worker.known_golds)
                try:
                    worker.connection.send(jobs[job_index])
                except OSError:  # the idle worker died (e.g. killed by the OOM killer): retry elsewhere
                    pending.put_back(job_index)
                    self._replace(worker)
                    continue
                worker.job_index = job_index
                worker.job_deadline = time.monotonic() + self.timeout_s

    def _collect(self, results: list[bool | None]) -> None:
        waiting = [worker for worker in self._workers if worker.busy or not worker.ready]
        if not waiting:
            return
        deadline = min(worker.job_deadline if worker.busy else worker.startup_deadline for worker in waiting)
        ready_connections = wait(
            [worker.connection for worker in waiting], max(0.0, deadline - time.monotonic())
        )
        for worker in waiting:
            if worker.connection in ready_connections:
                self._receive(worker, results)

    def _receive(self, worker: _Worker, results: list[bool | None]) -> None:
        try:
            message = worker.connection.recv()
        except (EOFError, OSError):  # the worker died: its job (if any) scores None
            if not worker.ready:
                self._fail_startup("it exited during startup")
            self._replace(worker)
            return
        if not worker.ready:
            worker.ready = message == "ready"
            return
        results[worker.job_index] = message
        worker.job_index = None
        worker.job_deadline = math.inf

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.busy and now >= worker.job_deadline:
                self.timeouts += 1
                logger.warning("math-verify job exceeded %.1fs; killing its worker", self.timeout_s)
                self._replace(worker)
            elif not worker.ready and now >= worker.startup_deadline:
                self._fail_startup(f"not ready after {WORKER_STARTUP_TIMEOUT_S:.0f}s")

    def _stop_busy_workers(self) -> None:
        busy_workers = [worker for worker in self._workers if worker.busy]
        for worker in busy_workers:
            worker.stop(graceful=False)
            self._workers.remove(worker)

    def _replace(self, worker: _Worker) -> None:
        worker.stop(graceful=False)
        self._workers[self._workers.index(worker)] = _Worker(self._context, self.worker_fn, self.worker_init)

    def _fail_startup(self, reason: str) -> None:
        # Retrying would loop forever (math-verify missing, broken environment...): stop everything and say why.
        _stop_workers(self._workers)
        raise RuntimeError(f"math-verify worker process failed to start ({reason}); see its traceback above")
