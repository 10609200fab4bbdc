"""Estimators for evaluation: pass@k, avg@k, maj@k, bootstrap confidence intervals and self-correction rates.

Conventions: a *problem* has ``n`` sampled answers of which ``c`` are correct. Every estimator is computed per
problem and then averaged over problems, so each problem weighs the same whatever its number of samples.
Confidence intervals resample problems (not samples): they say how much the score would move on another draw
of problems of the same kind, which is the uncertainty that matters when comparing two models on one benchmark.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem (Chen et al. 2021): the chance that ``k`` of the ``n`` samples, drawn
    without replacement, contain at least one of the ``c`` correct ones.

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``, which equals ``1 - C(n-c, k) / C(n, k)`` without the
    huge binomials. Raises ValueError when ``k > n``: ``n`` samples cannot estimate pass@k beyond ``k = n``.
    """
    _check_counts(n, c)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"pass@k needs an integer k >= 1, got k={k!r}")
    if k > n:
        raise ValueError(
            f"pass@{k} cannot be estimated from n={n} samples: sample at least k={k} per problem"
        )
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _check_counts(n: int, c: int) -> None:
    if not isinstance(n, int) or not isinstance(c, int):
        raise TypeError(f"n and c must be integers, got n={n!r}, c={c!r}")
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"need n >= 1 and 0 <= c <= n, got n={n}, c={c}")


def pass_at_k_per_problem(correct_counts: Sequence[int], n: int | Sequence[int], k: int) -> list[float]:
    """pass@k of each problem; ``n`` is one sample count for all problems or one per problem."""
    sample_counts = _per_problem_n(correct_counts, n)
    return [pass_at_k(n_i, c_i, k) for n_i, c_i in zip(sample_counts, correct_counts, strict=True)]


def pass_at_k_curve(
    correct_counts: Sequence[int], n: int | Sequence[int], ks: Sequence[int]
) -> dict[int, float]:
    """Mean pass@k over problems for each k in ``ks``: ``{k: score in [0, 1]}``."""
    if not correct_counts:
        raise ValueError("pass@k of an empty benchmark is undefined: no correct counts given")
    return {k: float(np.mean(pass_at_k_per_problem(correct_counts, n, k))) for k in ks}


def _per_problem_n(correct_counts: Sequence[int], n: int | Sequence[int]) -> list[int]:
    if isinstance(n, int):
        return [n] * len(correct_counts)
    if len(n) != len(correct_counts):
        raise ValueError(f"got {len(n)} sample counts for {len(correct_counts)} problems")
    return list(n)


def avg_at_k_per_problem(correct: Sequence[Sequence[bool]], k: int) -> list[float]:
    """Accuracy of each problem's first ``k`` samples (in sample order, so the result is reproducible)."""
    for index, samples in enumerate(correct):
        if len(samples) < k:
            raise ValueError(f"avg@{k} needs {k} samples per problem; problem {index} has {len(samples)}")
    return [sum(bool(x) for x in samples[:k]) / k for samples in correct]


def avg_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
    """avg@k: mean accuracy over ``k`` samples per problem, averaged over problems.

    Its expectation is pass@1; averaging more samples only lowers its variance.
    """
    return float(np.mean(avg_at_k_per_problem(correct, k)))


def normalize_answer(answer: str) -> str:
    """The key used to group equal answers in a majority vote: the answer without whitespace."""
    return re.sub(r"\s+", "", answer)


def majority_vote_correct(
    answers: Sequence[str | None],
    correct: Sequence[bool],
    k: int,
    key: Callable[[str], str] = normalize_answer,
) -> bool:
    """Whether the most frequent answer among the first ``k`` samples is a correct one.

    Samples without an extracted answer (``None``) do not vote; a problem where nobody voted counts as wrong.
    Ties go to the answer that appeared first. Answers are grouped by ``key`` (default: the text without
    whitespace), so ``1/2`` and ``0.5`` are two different votes.
    """
    if len(answers) < k or len(correct) < k:
        raise ValueError(f"maj@{k} needs {k} samples, got {min(len(answers), len(correct))}")
    keys = [key(a) if a is not None else None for a in answers[:k]]
    votes = Counter(vote for vote in keys if vote is not None)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(vote for vote in keys if vote is not None and votes[vote] == top)
    return bool(correct[keys.index(winner)])


def maj_at_k_per_problem(
    answers: Sequence[Sequence[str | None]],
    correct: Sequence[Sequence[bool]],
    k: int,
    key: Callable[[str], str] = normalize_answer,
) -> list[float]:
    return [float(majority_vote_correct(a, c, k, key)) for a, c in zip(answers, correct, strict=True)]


def maj_at_k(
    answers: Sequence[Sequence[str | None]],
    correct: Sequence[Sequence[bool]],
    k: int,
    key: Callable[[str], str] = normalize_answer,
) -> float:
    """maj@k: share of problems whose majority answer over the first ``k`` samples is correct."""
    return float(np.mean(maj_at_k_per_problem(answers, correct, k, key)))


def bootstrap_ci(
    values: Sequence[float],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-problem ``values`` (resampling problems).

    Deterministic for a given ``seed``. With a single problem the interval collapses to its value.
    """
    if len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    resampled_means = data[rng.integers(0, len(data), size=(n_resamples, len(data)))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled_means, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Estimate:
    """A mean over problems with its bootstrap confidence interval."""

    mean: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high}


def estimate(
    values: Sequence[float], *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Estimate:
    """Mean of per-problem ``values`` with its bootstrap interval."""
    low, high = bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return Estimate(float(np.mean(values)), low, high)


@dataclass(frozen=True)
class CorrectionRates:
    """Turn-1 versus turn-2 accuracy over paired samples (each turn-2 sample corrects one turn-1 sample).

    * ``acc_t1`` / ``acc_t2``: share of correct samples at turn 1 / turn 2;
    * ``delta = acc_t2 - acc_t1``;
    * ``wrong_to_right``: among samples wrong at turn 1, the share that turn 2 fixed
      (``None`` when no turn-1 sample was wrong);
    * ``right_to_wrong``: among samples right at turn 1, the share that turn 2 broke
      (``None`` when no turn-1 sample was right).
    """

    acc_t1: float
    acc_t2: float
    delta: float
    wrong_to_right: float | None
    right_to_wrong: float | None
    num_pairs: int

    def to_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def correction_rates(pairs: Sequence[tuple[bool, bool]]) -> CorrectionRates:
    """Rates over ``(turn1_correct, turn2_correct)`` pairs, pooled over all samples of all problems."""
    if not pairs:
        raise ValueError("correction_rates needs at least one (turn1, turn2) pair")
    counts = Counter((bool(t1), bool(t2)) for t1, t2 in pairs)
    wrong_t1 = counts[(False, False)] + counts[(False, True)]
    right_t1 = counts[(True, True)] + counts[(True, False)]
    right_t2 = counts[(True, True)] + counts[(False, True)]
    acc_t1, acc_t2 = right_t1 / len(pairs), right_t2 / len(pairs)
    return CorrectionRates(
        acc_t1=acc_t1,
        acc_t2=acc_t2,
        delta=acc_t2 - acc_t1,
        wrong_to_right=counts[(False, True)] / wrong_t1 if wrong_t1 else None,
        right_to_wrong=counts[(True, False)] / right_t1 if right_t1 else None,
        num_pairs=len(pairs),
    )
