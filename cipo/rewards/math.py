"""Math answer verifier and the ``math`` reward function.

``math_reward(completions, answer)`` scores each completion 1.0 when its final answer equals the gold answer,
else 0.0. Three steps:

1. **Extraction** (:func:`extract_answer`): the content of the last ``\\boxed{...}`` / ``\\fbox{...}``, else the
   text after the last "final answer:", "the answer is", "Answer:" or "#### ".
2. **Fast path** (:func:`fast_compare`): string equality after light normalization, and exact comparison of
   integers, decimals and simple fractions (``27.0`` equals ``27``, ``\\frac{1}{2}`` equals ``0.5``; ``3`` and
   ``\\frac{1}{2}`` differ). Most answers are settled here.
3. **math-verify**: everything else is parsed and compared symbolically by ``math_verify`` (sympy), in worker
   processes (:class:`VerifierPool`) that the parent kills when a job passes its deadline. sympy can hang, and
   math-verify's own SIGALRM timeouts only work in the main thread, so a process is the only hard limit.

Golds may be strings, ints, floats (``27.0``) or lists (OlympiadBench's ``final_answer``); see
:func:`gold_candidates`. The function never raises on malformed completions: they score 0.0.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import numbers
import os
import re
import signal
import sys
import threading
import time
import types
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from functools import lru_cache
from multiprocessing.connection import Connection, wait

logger = logging.getLogger(__name__)

# Longer "answers" are almost always runaway generations; sympy on them is slow and never right.
MAX_ANSWER_CHARS = 1000
# A worker imports sympy and math-verify before it reports ready; on a loaded machine that can take a while.
WORKER_STARTUP_TIMEOUT_S = 120.0
# Results of math-verify jobs remembered by the parent: GRPO groups repeat the same answers a lot.
RESULT_CACHE_SIZE = 100_000

Golds = tuple[str, ...]
# Runs inside a worker: (gold candidates, predicted answer) -> is the prediction correct?
WorkerFn = Callable[[Golds, str], bool]


# ---------------------------------------------------------------------------------------------------------------
# Extracting the final answer from a completion
# ---------------------------------------------------------------------------------------------------------------

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*")
_BOX_TOKEN = re.compile(r"[^\s$]+")
_UNESCAPED_BRACE = re.compile(r"(?<!\\)[{}]")
# Only the phrase itself: the answer is the rest of its line. (Matching the rest of the line in the pattern would
# hide later phrases on the same line, as in "Final Answer: The final answer is 10.")
_ANSWER_PHRASE = re.compile(
    r"(?:final\s+answer(?:\s+is)?|the\s+answer\s+is|answer\s*:|####)[\s:*]*", re.IGNORECASE
)
_INLINE_MATH = re.compile(r"(?<!\\)\$+(?P<math>[^$]+?)(?<!\\)\$")
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
_LEADING_NUMBER_THEN_WORDS = re.compile(
    r"(?P<number>[-+]?\d[\d,]*(?:\.\d+)?)(?:\s+[A-Za-z].*|,\s.*)?", re.DOTALL
)


def completion_text(completion: object) -> str:
    """The text of a completion: a string, or the content of the last message of a conversational one."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _message_content_text(completion.get("content"))
    if isinstance(completion, list | tuple) and completion:
        assistant = [m for m in completion if isinstance(m, dict) and m.get("role") == "assistant"]
        return completion_text(assistant[-1] if assistant else completion[-1])
    return ""


def _message_content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal content: [{"type": "text", "text": "..."}, ...]
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return ""


def extract_answer(text: str) -> str | None:
    """The final answer in ``text``: the last complete box, else the last answer phrase; None if neither."""
    boxed = last_boxed_content(text)
    if boxed is not None:
        return boxed
    return _last_answer_phrase(text)


def last_boxed_content(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``) in ``text``."""
    starts = [match.end() for match in _BOX_COMMAND.finditer(text)]
    # Scan boxes from the last one. If box k never closes, no earlier box that contains it can close either,
    # so an earlier box's scan may stop where box k starts: the whole search stays linear in len(text).
    scan_limit = len(text)
    for content_start in reversed(starts):
        if content_start < len(text) and text[content_start] == "{":
            content_end = _matching_brace(text, content_start, scan_limit)
            if content_end is not None:
                return text[content_start + 1 : content_end]
            scan_limit = content_start
        elif text[content_start - 1].isspace():  # "\boxed 5": the answer is one token
            token = _BOX_TOKEN.match(text, content_start)
            if token:
                return token.group()
    return None


def _matching_brace(text: str, open_index: int, scan_limit: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_index``, ignoring escaped ``\\{`` and ``\\}``."""
    depth = 0
    for brace in _UNESCAPED_BRACE.finditer(text, open_index, scan_limit):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return brace.start()
    return None


def _last_answer_phrase(text: str) -> str | None:
    phrase = None
    for phrase in _ANSWER_PHRASE.finditer(text):  # noqa: B007 - only the last phrase matters
        pass
    if phrase is None:
        return None
    line_end = text.find("\n", phrase.end())
    line_end = len(text) if line_end == -1 else line_end
    # Longer answers are rejected anyway; the cut also keeps the regexes below cheap on runaway lines.
    answer = text[phrase.end() : min(line_end, phrase.end() + MAX_ANSWER_CHARS + 1)].strip()
    math_span = _INLINE_MATH.search(answer)
    if math_span:
        return math_span.group("math").strip()
    answer = _SENTENCE_END.split(answer, maxsplit=1)[0].strip(" *")
    number_then_words = _LEADING_NUMBER_THEN_WORDS.fullmatch(answer)
    return number_then_words.group("number") if number_then_words else answer


# ---------------------------------------------------------------------------------------------------------------
# Golds
# ---------------------------------------------------------------------------------------------------------------

_GSM8K_FINAL = re.compile(r"####\s*(?P<answer>[^\n]*?)\s*$")


def gold_candidates(gold: object) -> Golds:
    """The accepted forms of a gold answer; a prediction is correct when it matches any of them.

    - a string is one answer. For convenience a whole GSM8K solution (``"... #### 18"``) or MATH solution
      (``"... \\boxed{5} ..."``) is reduced to its final answer;
    - an int or float is written plainly (``27.0`` -> ``"27"``);
    - a list (OlympiadBench ``final_answer``) accepts its first element, or all elements joined by ", ".
    """
    if isinstance(gold, list | tuple):
        elements = [_gold_text(element) for element in gold]
        elements = [element for element in elements if element]
        if len(elements) > 1:
            return (elements[0], ", ".join(elements))
        return tuple(elements)
    text = _gold_text(gold)
    return (text,) if text else ()


def _gold_text(gold: object) -> str:
    if isinstance(gold, bool) or gold is None:
        return ""
    if isinstance(gold, numbers.Integral):
        return str(int(gold))
    if isinstance(gold, numbers.Real):
        value = float(gold)
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    if not isinstance(gold, str):
        return ""
    gsm8k_final = _GSM8K_FINAL.search(gold)
    if gsm8k_final:
        return gsm8k_final.group("answer").replace(",", "")
    if "\\boxed" in gold or "\\fbox" in gold:
        return last_boxed_content(gold) or ""
    return gold.strip()


# ---------------------------------------------------------------------------------------------------------------
# Fast path: normalized string equality and exact numbers
# ---------------------------------------------------------------------------------------------------------------

_LATEX_NOISE = re.compile(r"\\left(?![A-Za-z])|\\right(?![A-Za-z])|\\[!,;:]|\\\$|\$|\s+")
_FRACTION_VARIANTS = re.compile(r"\\[dt]frac(?![A-Za-z])")
_THOUSANDS_NUMBER = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_SIMPLE_FRACTION = re.compile(
    r"(?P<sign>[-+]?)(?:\\frac\{(?P<numerator>\d+)\}\{(?P<denominator>\d+)\}|(?P<top>\d+)/(?P<bottom>\d+))"
)


def normalize_answer(text: str) -> str:
    """Light, meaning-preserving normalization used only for the fast equality check."""
    text = _LATEX_NOISE.sub("", text.replace("{,}", ","))
    text = _FRACTION_VARIANTS.sub(r"\\frac", text).rstrip(".")
    if _THOUSANDS_NUMBER.fullmatch(text):
        text = text.replace(",", "")
    return text


def fast_compare(golds: Sequence[str], prediction: str) -> bool | None:
    """True/False when the answer is settled without sympy, None when math-verify must decide."""
    normalized_prediction = normalize_answer(prediction)
    if not normalized_prediction:
        return False
    undecided = False
    for gold in golds:
        normalized_gold = normalize_answer(gold)
        if not normalized_gold:
            continue
        if normalized_gold == normalized_prediction:
            return True
        verdict = _compare_exact_numbers(normalized_gold, normalized_prediction)
        if verdict:
            return True
        undecided = undecided or verdict is None
    return None if undecided else False


def _compare_exact_numbers(gold: str, prediction: str) -> bool | None:
    """Exact comparison of integers, decimals and simple fractions (``1/2``, ``\\frac{1}{2}``).

    Unequal values stay undecided when a decimal is involved: math-verify accepts rounded ones (0.333333 = 1/3).
    """
    gold_value, predicted_value = _exact_value(gold), _exact_value(prediction)
    if gold_value is None or predicted_value is None:
        return None
    if gold_value == predicted_value:
        return True
    involves_decimal = "." in gold or "." in prediction
    return None if involves_decimal else False


def _exact_value(text: str) -> Fraction | None:
    if _PLAIN_NUMBER.fullmatch(text):
        return Fraction(text)
    fraction = _SIMPLE_FRACTION.fullmatch(text)
    if fraction is None:
        return None
    numerator = int(fraction.group("numerator") or fraction.group("top"))
    denominator = int(fraction.group("denominator") or fraction.group("bottom"))
    if denominator == 0:
        return None
    value = Fraction(numerator, denominator)
    return -value if fraction.group("sign") == "-" else value


# ---------------------------------------------------------------------------------------------------------------
# math-verify, run inside worker processes
# ---------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _parse_answer(answer: str) -> list:
    """math-verify's parse of one extracted answer (cached: golds and popular predictions repeat)."""
    from math_verify import parse

    # Wrapping in \boxed{} tells math-verify "this whole string is the answer": plain golds such as "-2,1",
    # "6+9i" or "(2,12) \cup (12,102)" parse as a set, a complex number, a union; bare, they would not.
    latex = re.sub(r"(?<!\\)\$", "", answer)
    # Timeouts off (None): they use SIGALRM; the parent enforces the deadline by killing the worker.
    return parse("\\boxed{" + latex + "}", parsing_timeout=None)


def verify_with_math_verify(golds: Golds, prediction: str) -> bool:
    """The default worker function: is ``prediction`` equal to any of ``golds`` according to math-verify?"""
    from math_verify import verify

    predicted = _parse_answer(prediction)
    if not predicted:
        return False
    for gold in golds:
        parsed_gold = _parse_answer(gold)
        # Gold first: verify() is asymmetric.
        if parsed_gold and verify(parsed_gold, predicted, timeout_seconds=None):
            return True
    return False


def _worker_main(connection: Connection, worker_fn: WorkerFn) -> None:
    """Worker process: answer one (golds, prediction) job at a time until told to stop (None) or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it stops us cleanly
    _exit_when_orphaned()
    # math-verify warns once that its timeouts are off, and logs every parse failure; both are expected here.
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    import math_verify  # noqa: F401 - if it is missing, fail here: the parent then reports a startup failure

    _warm_up_math_verify()
    connection.send("ready")
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            correct = bool(worker_fn(*job))
        except Exception:
            correct = False
        try:
            connection.send(correct)
        except OSError:  # the parent is gone
            return


def _warm_up_math_verify() -> None:
    """Pay for imports and sympy/antlr first-use setup (~0.5 s) before taking jobs, outside any job's deadline."""
    for gold, prediction in (("\\frac{1}{2}", "x+1"), ("(1,2)", "\\{1\\}"), ("x^2", "y=2")):
        try:
            verify_with_math_verify((gold,), prediction)
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

    def __init__(self, context: multiprocessing.context.BaseContext, worker_fn: WorkerFn) -> None:
        self.connection, child_connection = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child_connection, worker_fn), daemon=True, name="cipo-math-verify"
        )
        with _main_module_hidden():
            self.process.start()
        self.owner_pid = os.getpid()
        child_connection.close()  # so that recv() sees EOF when the worker dies
        self.ready = False
        self.startup_deadline = time.monotonic() + WORKER_STARTUP_TIMEOUT_S
        self.job_index: int | None = None
        self.job_deadline = math.inf

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

    def __init__(self, num_workers: int, timeout_s: float, worker_fn: WorkerFn) -> None:
        if num_workers < 1 or timeout_s <= 0:
            raise ValueError("num_workers must be >= 1 and timeout_s > 0")
        self.num_workers = num_workers
        self.timeout_s = timeout_s
        self.worker_fn = worker_fn
        self.timeouts = 0  # jobs killed at their deadline, for logs and tests
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []  # modified in place only: the finalizer holds this list
        self._finalizer = weakref.finalize(self, _stop_workers, self._workers)  # also runs at exit
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()

    def run(self, jobs: Sequence[tuple[Golds, str]]) -> list[bool | None]:
        """Run the jobs; each result is the worker's answer, or None when it timed out or its worker died."""
        results: list[bool | None] = [None] * len(jobs)
        if not jobs:
            return results
        self._forget_workers_after_fork()
        with self._lock:
            while len(self._workers) < self.num_workers:
                self._workers.append(_Worker(self._context, self.worker_fn))
            pending = deque(range(len(jobs)))
            try:
                while pending or any(worker.busy for worker in self._workers):
                    self._dispatch(jobs, pending)
                    self._collect(results)
                    self._enforce_deadlines()
            except BaseException:  # e.g. KeyboardInterrupt
                self._stop_busy_workers()  # or their late answers would land in the next call's results
                raise
        return results

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

    def _dispatch(self, jobs: Sequence[tuple[Golds, str]], pending: deque[int]) -> None:
        for worker in self._workers:
            if not pending:
                return
            if worker.ready and not worker.busy:
                job_index = pending.popleft()
                try:
                    worker.connection.send(jobs[job_index])
                except OSError:  # the idle worker died (e.g. killed by the OOM killer): retry elsewhere
                    pending.appendleft(job_index)
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
        self._workers[self._workers.index(worker)] = _Worker(self._context, self.worker_fn)

    def _fail_startup(self, reason: str) -> None:
        # Retrying would loop forever (math-verify missing, broken environment...): stop everything and say why.
        _stop_workers(self._workers)
        raise RuntimeError(f"math-verify worker process failed to start ({reason}); see its traceback above")


# ---------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------


class MathVerifier:
    """Scores completions against gold answers: extraction, fast path, then math-verify in worker processes.

    Args:
        timeout_s: wall-clock limit for one math-verify comparison; past it the worker is killed, the item
            scores 0.0 and a fresh worker replaces it.
        num_workers: worker processes, started on the first comparison the fast path cannot settle.
        use_fast_path: settle easy cases without math-verify (turn off to test math-verify alone).
        worker_fn: the comparison run inside workers; a module-level function (it is pickled by name).
    """

    def __init__(
        self,
        timeout_s: float = 5.0,
        num_workers: int = 2,
        use_fast_path: bool = True,
        worker_fn: WorkerFn = verify_with_math_verify,
    ) -> None:
        self.use_fast_path = use_fast_path
        self.pool = VerifierPool(num_workers=num_workers, timeout_s=timeout_s, worker_fn=worker_fn)
        self._result_cache: dict[tuple[Golds, str], bool] = {}
        self._result_cache_lock = threading.Lock()

    @property
    def timeout_s(self) -> float:
        return self.pool.timeout_s

    @property
    def num_workers(self) -> int:
        return self.pool.num_workers

    def score(self, completions: Sequence[object], golds: Sequence[object]) -> list[float]:
        """1.0 or 0.0 for each (completion, gold) pair, in order."""
        if len(completions) != len(golds):
            raise ValueError(f"got {len(completions)} completions but {len(golds)} gold answers")
        verdicts: list[bool | None] = []
        jobs: dict[tuple[Golds, str], list[int]] = {}  # identical jobs in one batch run once
        for index, (completion, gold) in enumerate(zip(completions, golds, strict=True)):
            verdict, job = self._quick_verdict(completion, gold)
            verdicts.append(verdict)
            if job is not None:
                jobs.setdefault(job, []).append(index)
        unique_jobs = list(jobs)
        for job, correct in zip(unique_jobs, self.pool.run(unique_jobs), strict=True):
            if correct is not None:  # a timeout is not cached: it may have been a slow moment
                self._remember(job, correct)
            for index in jobs[job]:
                verdicts[index] = bool(correct)
        return [1.0 if verdict else 0.0 for verdict in verdicts]

    def close(self) -> None:
        """Stop the worker processes (they restart on the next use)."""
        self.pool.close()

    def _quick_verdict(
        self, completion: object, gold: object
    ) -> tuple[bool | None, tuple[Golds, str] | None]:
        """The verdict if known without a worker, else the job a worker must run."""
        try:
            prediction = extract_answer(completion_text(completion))
            golds = gold_candidates(gold)
            if not prediction or not golds or len(prediction) > MAX_ANSWER_CHARS:
                return False, None
            verdict = fast_compare(golds, prediction) if self.use_fast_path else None
        except Exception:  # nothing in a completion should break training: malformed input scores 0.0
            logger.debug("could not read a completion or gold answer", exc_info=True)
            return False, None
        if verdict is not None:
            return verdict, None
        job = (golds, prediction)
        cached = self._result_cache.get(job)
        if cached is not None:
            return cached, None
        return None, job

    def _remember(self, job: tuple[Golds, str], correct: bool) -> None:
        with self._result_cache_lock:
            if len(self._result_cache) >= RESULT_CACHE_SIZE:
                del self._result_cache[next(iter(self._result_cache))]  # oldest first
            self._result_cache[job] = correct


_default_verifier: MathVerifier | None = None
_default_verifier_lock = threading.Lock()


def default_verifier() -> MathVerifier:
    """The shared verifier behind :func:`math_reward`, created on first use."""
    global _default_verifier
    with _default_verifier_lock:
        if _default_verifier is None:
            _default_verifier = MathVerifier()
        return _default_verifier


def math_reward(completions: Sequence[object], answer: Sequence[object], **kwargs: object) -> list[float]:
    """TRL reward function: 1.0 when a completion's final answer equals its gold ``answer``, else 0.0.

    ``completions`` are strings or conversational completions (lists of messages); ``answer`` holds one gold
    per completion (string, number or list). Other keyword arguments passed by TRL are ignored.
    """
    return default_verifier().score(completions, answer)
