"""Math answer verifier and the ``math`` reward function.

``math_reward(completions, answer)`` scores each completion 1.0 when its final answer equals the gold answer,
else 0.0. For each completion:

1. **Graded text** (:func:`~cipo.rewards.math_text.graded_text`): what follows the last ``</think>``; answers
   inside the reasoning earn nothing (``think="whole"`` grades everything; registered as ``math_whole_text``).
2. **Fast path** (:func:`~cipo.rewards.math_text.fast_verdict`): only where math-verify's verdict is known in
   advance (a lone ``\\boxed{<integer>}`` against an integer gold, an empty text).
3. **math-verify**: otherwise math-verify's own ``parse`` (default LaTeX and expression targets, its priorities)
   reads the answer out of the graded text, and ``verify`` compares it with each parsed gold, in worker processes
   (:class:`~cipo.rewards.math_pool.VerifierPool`) that the parent kills when a job passes its deadline.
4. **No hedging** (:func:`~cipo.rewards.math_text.is_hedge`): a completion that offers more candidate answers
   than the gold has elements scores 0.0 even when one of them is right.

Golds may be strings, ints, floats (``27.0``) or lists (OlympiadBench's ``final_answer``); see
:func:`~cipo.rewards.math_text.gold_candidates`. Malformed completions and golds score 0.0; nothing raises.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from functools import lru_cache

from cipo.rewards.math_parsing import install as install_two_stage_parsing
from cipo.rewards.math_pool import VerifierPool, WorkerFn
from cipo.rewards.math_text import (
    MAX_ANSWER_CHARS,
    THINK_MODES,
    Golds,
    completion_text,
    extract_answer,
    fast_verdict,
    gold_as_latex,
    gold_candidates,
    graded_text,
    is_hedge,
    last_boxed_content,
    normalize_answer,
)
from cipo.rewards.math_warmup import warm_up_jobs

__all__ = [
    "MAX_ANSWER_CHARS",
    "MathVerifier",
    "VerifierPool",
    "completion_text",
    "default_verifier",
    "extract_answer",
    "fast_verdict",
    "gold_candidates",
    "graded_text",
    "last_boxed_content",
    "math_reward",
    "math_reward_whole_text",
    "normalize_answer",
    "verify_with_math_verify",
]

logger = logging.getLogger(__name__)

# Verdicts remembered by the parent, keyed by golds and a digest of the graded text: GRPO groups repeat answers.
RESULT_CACHE_SIZE = 100_000


# ---------------------------------------------------------------------------------------------------------------
# math-verify, run inside worker processes
# ---------------------------------------------------------------------------------------------------------------


def _math_verify_parse(text: str) -> list:
    from math_verify import parse

    # Timeouts off (None): they use SIGALRM; the parent enforces the deadline by killing the worker.
    return parse(text, parsing_timeout=None)


@lru_cache(maxsize=8192)
def _parse_gold(gold: str) -> tuple:
    """math-verify's parse of one gold (cached: a batch holds each gold once per sampled completion)."""
    return tuple(_math_verify_parse(gold_as_latex(gold)))


def _element_count(parsed: Sequence[object]) -> int:
    """How many answers a parsed gold holds: the size of a set (``{1, 2, 3}``), else one."""
    from sympy import FiniteSet

    return len(parsed[0].args) if parsed and isinstance(parsed[0], FiniteSet) else 1


def verify_with_math_verify(golds: Golds, text: str) -> bool:
    """The default worker function: does the graded ``text`` answer any of ``golds``, according to math-verify?"""
    from math_verify import verify

    predicted = _math_verify_parse(text)
    if not predicted:
        return False
    for gold in golds:
        parsed_gold = list(_parse_gold(gold))
        if not parsed_gold or not verify(parsed_gold, predicted, timeout_seconds=None):
            continue
        if not is_hedge(text, _element_count(parsed_gold), distinct=_distinct_answers):
            return True
    return False


def _distinct_answers(answers: list[str]) -> int:
    """How many of ``answers`` differ according to math-verify (``1.25`` and ``\\frac{5}{4}`` are one)."""
    from math_verify import verify

    representatives: list[list] = []
    for answer in answers:
        parsed = list(_parse_gold(answer))
        if not any(
            verify(representative, parsed, timeout_seconds=None) for representative in representatives
        ):
            representatives.append(parsed)
    return len(representatives)


# ---------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------

Job = tuple[Golds, str]
CacheKey = tuple[Golds, bytes]


class MathVerifier:
    """Scores completions against gold answers: graded text, fast path, then math-verify in worker processes.

    Args:
        timeout_s: wall-clock limit for one completion's parse and comparison; past it the worker is killed, the
            item scores 0.0 and a fresh worker replaces it.
        num_workers: worker processes, started on the first completion the fast path cannot settle.
        use_fast_path: settle the provably known cases without math-verify (off: math-verify decides everything).
        think: ``"after"`` grades only what follows ``</think>``; ``"whole"`` grades the whole completion.
        worker_fn: the comparison run inside workers; a module-level function (it is pickled by name).
        two_stage_parsing: parse LaTeX in the workers with ANTLR's SLL mode first, LL when it reports a syntax
            error (:mod:`~cipo.rewards.math_parsing`: the same results, faster); off: latex2sympy's LL only.
    """

    def __init__(
        self,
        timeout_s: float = 5.0,
        num_workers: int = 2,
        use_fast_path: bool = True,
        think: str = "after",
        worker_fn: WorkerFn = verify_with_math_verify,
        two_stage_parsing: bool = True,
    ) -> None:
        if think not in THINK_MODES:
            raise ValueError(f"think must be one of {THINK_MODES}, got {think!r}")
        self.use_fast_path = use_fast_path
        self.think = think
        self.pool = VerifierPool(
            num_workers=num_workers,
            timeout_s=timeout_s,
            worker_fn=worker_fn,
            worker_init=install_two_stage_parsing if two_stage_parsing else None,
        )
        self._result_cache: dict[CacheKey, bool] = {}
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
        jobs: dict[CacheKey, tuple[Job, list[int]]] = {}  # identical jobs in one batch run once
        for index, (completion, gold) in enumerate(zip(completions, golds, strict=True)):
            verdict, job = self._quick_verdict(completion, gold)
            verdicts.append(verdict)
            if job is not None:
                jobs.setdefault(_cache_key(job), (job, []))[1].append(index)
        keys = list(jobs)
        results = self.pool.run([jobs[key][0] for key in keys])
        for key, correct in zip(keys, results, strict=True):
            if correct is not None:  # a timeout is not cached: it may have been a slow moment
                self._remember(key, correct)
            for index in jobs[key][1]:
                verdicts[index] = bool(correct)
        return [1.0 if verdict else 0.0 for verdict in verdicts]

    def settles_without_worker(self, completion: object, gold: object) -> bool:
        """True when :meth:`score` would settle this pair without a worker (fast path, empty, malformed, cached)."""
        return self._quick_verdict(completion, gold)[1] is None

    def warm_up(self) -> None:
        """Start the workers now and have each score the warm-up corpus (:mod:`cipo.rewards.math_warmup`).

        Optional: the workers of a training run warm up within its first steps anyway; this brings fresh ones to
        that state at once (benchmarks, or before the first step). It runs outside any deadline.
        """
        self.pool.warm_up(warm_up_jobs())

    def close(self) -> None:
        """Stop the worker processes (they restart on the next use)."""
        self.pool.close()

    def _quick_verdict(self, completion: object, gold: object) -> tuple[bool | None, Job | None]:
        """The verdict if known without a worker, else the job a worker must run."""
        try:
            text = graded_text(completion_text(completion), self.think)
            golds = gold_candidates(gold)
            if not golds or not text.strip():
                return False, None
            verdict = fast_verdict(golds, text) if self.use_fast_path else None
        except Exception:  # nothing in a completion should break training: malformed input scores 0.0
            logger.debug("could not read a completion or gold answer", exc_info=True)
            return False, None
        if verdict is not None:
            return verdict, None
        job = (golds, text)
        cached = self._result_cache.get(_cache_key(job))
        if cached is not None:
            return cached, None
        return None, job

    def _remember(self, key: CacheKey, correct: bool) -> None:
        with self._result_cache_lock:
            if len(self._result_cache) >= RESULT_CACHE_SIZE:
                del self._result_cache[next(iter(self._result_cache))]  # oldest first
            self._result_cache[key] = correct


def _cache_key(job: Job) -> CacheKey:
    golds, text = job
    return golds, hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


_default_verifiers: dict[str, MathVerifier] = {}
_default_verifier_lock = threading.Lock()


def default_verifier(think: str = "after") -> MathVerifier:
    """The shared verifier behind :func:`math_reward` (or :func:`math_reward_whole_text`), created on first use."""
    with _default_verifier_lock:
        if think not in _default_verifiers:
            _default_verifiers[think] = MathVerifier(think=think)
        return _default_verifiers[think]


def math_reward(completions: Sequence[object], answer: Sequence[object], **kwargs: object) -> list[float]:
    """TRL reward function: 1.0 when a completion's final answer equals its gold ``answer``, else 0.0.

    ``completions`` are strings or conversational completions (lists of messages); ``answer`` holds one gold
    per completion (string, number or list). Only the text after ``</think>`` is graded. Other keyword arguments
    passed by TRL are ignored.
    """
    return default_verifier().score(completions, answer)


def math_reward_whole_text(
    completions: Sequence[object], answer: Sequence[object], **kwargs: object
) -> list[float]:
    """:func:`math_reward` grading the whole completion, ``<think>`` block included (reward name ``math_whole_text``)."""
    return default_verifier("whole").score(completions, answer)
