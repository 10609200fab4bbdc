"""Estimators of cipo.eval.metrics: pass@k, avg@k, maj@k, bootstrap intervals, correction rates."""

from __future__ import annotations

import math
import random

import pytest

from cipo.eval import metrics
from cipo.eval.metrics import (
    avg_at_k,
    bootstrap_ci,
    correction_rates,
    maj_at_k,
    majority_vote_correct,
    pass_at_k,
    pass_at_k_curve,
)


def comb_pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_pass_at_k_matches_binomial_formula_on_random_cases() -> None:
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 300)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(comb_pass_at_k(n, c, k), abs=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (10, 3, 5, 0.916667),
        (200, 1, 100, 0.5),
        (5, 0, 3, 0.0),
        (5, 5, 1, 1.0),
        (10, 3, 1, 0.3),
        (4, 1, 4, 1.0),
    ],
)
def test_pass_at_k_known_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-6)


def test_pass_at_k_is_stable_where_binomials_overflow_floats() -> None:
    # C(2000, 1000) does not fit in a float; the product form needs no binomial.
    value = pass_at_k(2000, 3, 1000)
    assert value == pytest.approx(1 - (1000 * 999 * 998) / (2000 * 1999 * 1998))


def test_pass_at_k_refuses_k_larger_than_n() -> None:
    with pytest.raises(ValueError, match=r"pass@8 cannot be estimated from n=4"):
        pass_at_k(4, 4, 8)


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0)])
def test_pass_at_k_rejects_invalid_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_pass_at_k_curve_averages_per_problem() -> None:
    curve = pass_at_k_curve([0, 1, 4], n=4, ks=[1, 2, 4])
    assert curve[1] == pytest.approx((0 + 0.25 + 1) / 3)
    assert curve[2] == pytest.approx((0 + 0.5 + 1) / 3)
    assert curve[4] == pytest.approx((0 + 1 + 1) / 3)


def test_pass_at_k_curve_accepts_one_n_per_problem() -> None:
    curve = pass_at_k_curve([1, 2], n=[2, 4], ks=[1])
    assert curve[1] == pytest.approx((0.5 + 0.5) / 2)
    with pytest.raises(ValueError, match="2 sample counts for 3 problems"):
        pass_at_k_curve([1, 2, 3], n=[4, 4], ks=[1])


def test_pass_at_1_equals_mean_accuracy() -> None:
    rng = random.Random(1)
    counts = [rng.randint(0, 16) for _ in range(50)]
    assert pass_at_k_curve(counts, 16, [1])[1] == pytest.approx(sum(counts) / (16 * 50))


def test_avg_at_k_uses_the_first_k_samples() -> None:
    correct = [[True, False, False, True], [False, False, True, True]]
    assert avg_at_k(correct, 1) == pytest.approx(0.5)
    assert avg_at_k(correct, 2) == pytest.approx(0.25)
    assert avg_at_k(correct, 4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="avg@8 needs 8 samples"):
        avg_at_k(correct, 8)


def test_majority_vote_uses_the_most_frequent_answer() -> None:
    answers = ["3", "4", "4", "3", "4"]
    correct = [True, False, False, True, False]
    assert majority_vote_correct(answers, correct, 5) is False
    assert majority_vote_correct(answers, correct, 1) is True


def test_majority_vote_ties_go_to_the_first_answer_and_none_does_not_vote() -> None:
    assert majority_vote_correct(["7", "8", "8", "7"], [True, False, False, True], 4) is True
    assert majority_vote_correct([None, None, "5"], [False, False, True], 3) is True
    assert majority_vote_correct([None, None], [False, False], 2) is False
    # Whitespace does not split votes.
    assert majority_vote_correct(["1 / 2", "1/2", "3"], [True, True, False], 3) is True


def test_maj_at_k_averages_over_problems() -> None:
    answers = [["1", "1", "2"], ["5", "6", "6"]]
    correct = [[True, True, False], [True, False, False]]
    assert maj_at_k(answers, correct, 3) == pytest.approx(0.5)
    assert maj_at_k(answers, correct, 1) == pytest.approx(1.0)


def test_bootstrap_ci_is_deterministic_and_brackets_the_mean() -> None:
    values = [float(i % 3 == 0) for i in range(90)]
    low, high = bootstrap_ci(values, n_resamples=500, seed=3)
    assert (low, high) == bootstrap_ci(values, n_resamples=500, seed=3)
    assert low < sum(values) / len(values) < high
    assert 0.0 <= low and high <= 1.0


def test_bootstrap_ci_narrows_with_more_problems() -> None:
    small = bootstrap_ci([0.0, 1.0] * 10, seed=0)
    large = bootstrap_ci([0.0, 1.0] * 1000, seed=0)
    assert large[1] - large[0] < small[1] - small[0]


def test_bootstrap_ci_edge_cases() -> None:
    assert bootstrap_ci([0.25]) == (0.25, 0.25)
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], confidence=1.5)


def test_estimate_reports_mean_and_interval() -> None:
    estimate = metrics.estimate([0.0, 0.5, 1.0], n_resamples=200)
    assert estimate.mean == pytest.approx(0.5)
    assert estimate.ci_low <= 0.5 <= estimate.ci_high
    assert set(estimate.to_dict()) == {"mean", "ci_low", "ci_high"}


def test_correction_rates_follow_their_definitions() -> None:
    # 4 wrong at turn 1 (1 fixed), 2 right at turn 1 (1 broken).
    pairs = [(False, False), (False, False), (False, False), (False, True), (True, True), (True, False)]
    rates = correction_rates(pairs)
    assert rates.acc_t1 == pytest.approx(2 / 6)
    assert rates.acc_t2 == pytest.approx(2 / 6)
    assert rates.delta == pytest.approx(0.0)
    assert rates.wrong_to_right == pytest.approx(1 / 4)
    assert rates.right_to_wrong == pytest.approx(1 / 2)
    assert rates.num_pairs == 6


def test_correction_rates_without_a_denominator_are_none() -> None:
    rates = correction_rates([(True, True), (True, False)])
    assert rates.wrong_to_right is None
    assert rates.right_to_wrong == pytest.approx(0.5)
    assert correction_rates([(False, True)]).right_to_wrong is None
    with pytest.raises(ValueError):
        correction_rates([])
