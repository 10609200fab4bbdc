"""The claims' statistics on synthetic data: a known effect gives its verdict, a null stays undecided, and the
interval widens with training noise (across seeds) as well as with evaluation noise (across problems)."""

from __future__ import annotations

import numpy as np
import pytest

from cipo.lab.stats import (
    NOT_SUPPORTED,
    SUPPORTED,
    UNDECIDED,
    Difference,
    PairedSeed,
    Side,
    paired_difference,
    seed_difference,
    verdict,
)


def synthetic(effect: float, seeds: int = 5, problems: int = 96, seed_noise: float = 0.0, rng_seed: int = 0):
    """Per-problem pass rates of two models; A = B + effect (+ a per-seed training shift) + problem noise."""
    rng = np.random.default_rng(rng_seed)
    pairs = []
    for _ in range(seeds):
        base = rng.uniform(0.2, 0.8, problems)
        shift = effect + rng.normal(0, seed_noise)
        first = np.clip(base + shift + rng.normal(0, 0.05, problems), 0, 1)
        pairs.append(PairedSeed(Side(first.tolist()), Side(base.tolist())))
    return pairs


def test_known_positive_effect_is_supported():
    difference = paired_difference(synthetic(0.10))
    assert difference.low > 0 and 0.07 < difference.mean < 0.13
    assert verdict(difference) == SUPPORTED
    assert verdict(difference, direction=-1) == NOT_SUPPORTED  # the claim "A < B" is contradicted


def test_known_negative_effect_is_not_supported():
    assert verdict(paired_difference(synthetic(-0.10))) == NOT_SUPPORTED


def test_null_effect_is_undecided():
    difference = paired_difference(synthetic(0.0, seed_noise=0.02))
    assert difference.low < 0 < difference.high
    assert verdict(difference) == UNDECIDED


def test_training_noise_widens_the_interval():
    """Same problems and effect, but the seeds disagree: a problem-only interval would miss this spread."""
    calm = paired_difference(synthetic(0.05, seed_noise=0.0))
    noisy = paired_difference(synthetic(0.05, seed_noise=0.08))
    assert (noisy.high - noisy.low) > 2 * (calm.high - calm.low)


def test_few_seeds_are_undecided_whatever_the_interval():
    difference = paired_difference(synthetic(0.30, seeds=2))
    assert difference.low > 0
    assert verdict(difference) == UNDECIDED
    assert verdict(difference, min_seeds=2) == SUPPORTED


def test_ratio_sides_pool_counts_over_the_drawn_problems():
    # A fixes 3 of 4 wrong answers on problem 0, 0 of 0 on problem 1: pooled 3/4; B pools 1/4.
    pair = PairedSeed(Side([3, 0], [4, 0]), Side([1, 0], [4, 0]))
    assert seed_difference(pair)[0] == pytest.approx(0.5)
    # A resample of problem 1 only has no wrong answers: undefined, and dropped from the interval.
    assert np.isnan(seed_difference(pair, np.array([[1, 1]]))[0])
    difference = paired_difference([pair] * 3, replicates=500)
    assert difference.mean == pytest.approx(0.5) and difference.low <= 0.5 <= difference.high


def test_undefined_everywhere_gives_no_interval():
    pair = PairedSeed(Side([0, 0], [0, 0]), Side([0, 0], [0, 0]))
    difference = paired_difference([pair] * 3, replicates=100)
    assert difference.mean is None and verdict(difference) == UNDECIDED


def test_bootstrap_is_deterministic_and_checks_its_input():
    pairs = synthetic(0.05)
    assert paired_difference(pairs) == paired_difference(pairs)
    with pytest.raises(ValueError, match="same problems"):
        seed_difference(PairedSeed(Side([1.0, 0.0]), Side([1.0])))
    with pytest.raises(ValueError, match="direction"):
        verdict(Difference(0.1, 0.05, 0.2, 5, []), direction=0)
