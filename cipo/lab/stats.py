"""Paired differences between two models over seeds and problems, their 95% interval and the verdict it implies.

A *side* of a comparison is one model's metric on one seed, written per problem as a ratio of sums: its value on
a set of problems is ``sum(numerator) / sum(denominator)``. A mean over problems (pass@k, accuracy) has
denominator 1 per problem; a rate such as wrong->right has the problem's fixed answers over its wrong ones.

The interval is a *hierarchical* bootstrap: each replicate draws the seeds with replacement (training noise),
then, within each drawn seed, the problems with replacement (evaluation noise), computes the difference of the two
sides on the same drawn problems (paired), and averages over the drawn seeds. The 2.5th and 97.5th percentiles of
the replicates make the interval.

The verdict rule (``verdict``): the claim says the difference has sign ``direction``; with at least
``MIN_SEEDS`` seeds, an interval entirely on that side is *supported*, entirely on the other side *not
supported*, and one that contains 0 *undecided*. With fewer seeds training noise cannot be estimated, so the
verdict is *undecided* whatever the interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_SEEDS = 3
CONFIDENCE = 0.95
REPLICATES = 4000
SUPPORTED, NOT_SUPPORTED, UNDECIDED = "supported", "not supported", "undecided"


@dataclass(frozen=True)
class Side:
    """One model's metric on one seed, per problem: value = sum(numerator) / sum(denominator)."""

    numerator: Sequence[float]
    denominator: Sequence[float] | None = None  # None: 1 per problem (a mean)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        numerator = np.asarray(self.numerator, dtype=float)
        denominator = np.ones_like(numerator) if self.denominator is None else np.asarray(self.denominator, float)
        if numerator.shape != denominator.shape or numerator.ndim != 1:
            raise ValueError(f"a side needs numerator and denominator of one length, got {numerator.shape} and "
                             f"{denominator.shape}")
        return numerator, denominator


@dataclass(frozen=True)
class PairedSeed:
    """Model A against model B on the same problems of one seed."""

    first: Side
    second: Side


@dataclass(frozen=True)
class Difference:
    mean: float | None  # mean over seeds of the per-seed difference (seeds where it is defined)
    low: float | None
    high: float | None
    seeds: int
    per_seed: list[float | None]

    def to_dict(self) -> dict:
        return {"mean": self.mean, "ci95": [self.low, self.high], "seeds": self.seeds, "per_seed": self.per_seed}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def seed_difference(pair: PairedSeed, problems: np.ndarray | None = None) -> np.ndarray:
    """A minus B on the problem index rows of ``problems`` (shape replicates x problems; None: all once)."""
    (num_a, den_a), (num_b, den_b) = pair.first.arrays(), pair.second.arrays()
    if num_a.shape != num_b.shape:
        raise ValueError(f"paired sides need the same problems, got {num_a.size} and {num_b.size}")
    rows = np.arange(num_a.size)[None, :] if problems is None else problems
    return _ratio(num_a[rows].sum(1), den_a[rows].sum(1)) - _ratio(num_b[rows].sum(1), den_b[rows].sum(1))


def paired_difference(pairs: Sequence[PairedSeed], replicates: int = REPLICATES, seed: int = 0) -> Difference:
    """Mean over seeds of A - B, with the hierarchical bootstrap interval (seeds, then problems within a seed)."""
    if not pairs:
        return Difference(None, None, None, 0, [])
    per_seed = [float(seed_difference(pair)[0]) for pair in pairs]
    defined = [value for value in per_seed if not math.isnan(value)]
    clean = [None if math.isnan(value) else value for value in per_seed]
    if not defined:
        return Difference(None, None, None, len(pairs), clean)
    rng = np.random.default_rng(seed)
    drawn_seeds = rng.integers(0, len(pairs), size=(replicates, len(pairs)))
    values = np.full(drawn_seeds.shape, np.nan)
    for index, pair in enumerate(pairs):
        slots = np.nonzero(drawn_seeds == index)
        size = len(pair.first.numerator)
        problems = rng.integers(0, size, size=(len(slots[0]), size))
        values[slots] = seed_difference(pair, problems)
    with warnings.catch_warnings():  # a replicate whose drawn seeds are all undefined: NaN, dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(values, axis=1)
    means = means[~np.isnan(means)]
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return Difference(float(np.mean(defined)), float(low), float(high), len(pairs), clean)


def verdict(difference: Difference, direction: int = 1, min_seeds: int = MIN_SEEDS) -> str:
    """The documented rule (module docstring): ``direction`` +1 when the claim says A > B, -1 when A < B."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if difference.low is None or difference.high is None or difference.seeds < min_seeds:
        return UNDECIDED
    low, high = sorted((direction * difference.low, direction * difference.high))
    if low > 0:
        return SUPPORTED
    if high < 0:
        return NOT_SUPPORTED
    return UNDECIDED
