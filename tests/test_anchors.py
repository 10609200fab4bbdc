import random

import pytest

from cipo.core.anchors import ShareRounder, anchor_budget, band_distance, group_pass_rates, select_anchors


def test_group_pass_rates() -> None:
    assert group_pass_rates([1, 0, 0, 0, 1, 1, 1, 1], 4) == [0.25, 1.0]
    with pytest.raises(ValueError, match="groups of 4"):
        group_pass_rates([1, 0, 0], 4)


def test_band_distance() -> None:
    band = (0.25, 0.75)
    assert band_distance(0.5, band) == 0.0
    assert band_distance(0.0, band) == 0.25
    assert band_distance(1.0, band) == 0.25
    assert band_distance(0.875, band) == pytest.approx(0.125)


@pytest.mark.parametrize(
    ("rollouts", "fraction", "unit", "expected"),
    [(64, 0.125, 1, 8), (64, 0.125, 3, 9), (64, 0.0, 1, 0), (8, 0.01, 2, 2), (4, 0.5, 8, 0), (10, 1.0, 4, 8)],
)
def test_anchor_budget(rollouts: int, fraction: float, unit: int, expected: int) -> None:
    assert anchor_budget(rollouts, fraction, unit) == expected


def test_anchor_budget_cap() -> None:
    assert anchor_budget(64, 0.5, 2, cap=5) == 4
    assert anchor_budget(64, 0.5, 4, cap=3) == 0
    assert anchor_budget(64, 0.5, 1, cap=None) == 32


def test_prefers_the_difficulty_band() -> None:
    # group 0: all wrong, group 1: pass rate 0.5 (in band), group 2: all right
    correct = [0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1]
    selection = select_anchors(correct, 4, 4, 0.5, (0.25, 0.75), random.Random(0))
    assert selection.indices == [4, 5, 6, 7]
    assert selection.num_correct == 2


def test_one_per_group_before_seconds() -> None:
    correct = [0, 0, 0, 1] * 3  # three groups at pass rate 0.25, all in band
    selection = select_anchors(correct, 4, 3, 0.0, (0.25, 0.75), random.Random(1))
    assert sorted(index // 4 for index in selection.indices) == [0, 1, 2]


def test_fills_from_the_other_kind_when_short() -> None:
    correct = [0] * 8  # nothing correct: the correct share is filled with wrong anchors
    selection = select_anchors(correct, 4, 4, 0.5, (0.25, 0.75), random.Random(0))
    assert len(selection.indices) == 4 and selection.num_correct == 0
    all_right = [1] * 8
    selection = select_anchors(all_right, 4, 4, 0.0, (0.25, 0.75), random.Random(0))
    assert len(selection.indices) == 4 and selection.num_correct == 4


def test_correct_share_follows_the_replay_ratio() -> None:
    correct = [1, 0] * 32
    for share, expected in [(0.0, 0), (0.25, 4), (0.5, 8), (1.0, 16)]:
        selection = select_anchors(correct, 8, 16, share, (0.25, 0.75), random.Random(0))
        assert selection.num_correct == expected
        assert sum(correct[i] for i in selection.indices) == expected


def test_deterministic_for_a_seed() -> None:
    correct = [random.Random(3).random() < 0.4 for _ in range(64)]
    first = select_anchors(correct, 8, 8, 0.3, (0.25, 0.75), random.Random(7))
    second = select_anchors(correct, 8, 8, 0.3, (0.25, 0.75), random.Random(7))
    assert first == second


@pytest.mark.parametrize(("budget", "share"), [(1, 0.25), (1, 0.1), (2, 0.3), (3, 0.5), (4, 0.05)])
def test_carried_rounding_realises_the_share_over_100_steps(budget: int, share: float) -> None:
    rounder = ShareRounder()
    counts = [rounder.count(budget, share) for _ in range(100)]
    assert all(0 <= count <= budget for count in counts)
    assert abs(sum(counts) - 100 * budget * share) < 1  # rounding each step alone: 0 correct anchors for 1 x 0.25
    assert 0 <= rounder.carry < 1


def test_carried_rounding_is_identical_on_every_rank() -> None:
    ranks = [ShareRounder() for _ in range(4)]
    shares = [0.25, 0.31, 0.4, 0.05, 0.75] * 20
    sequences = [[rounder.count(2, share) for share in shares] for rounder in ranks]
    assert all(sequence == sequences[0] for sequence in sequences)


def test_select_anchors_takes_the_given_correct_count() -> None:
    correct = [True, False, False, False] * 4
    selection = select_anchors(correct, 4, 4, 0.0, (0.25, 0.75), random.Random(0), num_correct=3)
    assert selection.num_correct == 3 and len(selection.indices) == 4
