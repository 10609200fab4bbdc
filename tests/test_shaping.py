import math

import pytest

from cipo.core.shaping import correction_stats, shape_correction_rewards


def test_breaking_a_correct_anchor_is_penalized() -> None:
    rewards = [1.0, 0.0, 1.0, 0.0]
    anchor_correct = [True, True, False, False]
    assert shape_correction_rewards(rewards, anchor_correct, 0.5, 1.0) == [1.0, -1.0, 1.0, 0.0]
    assert shape_correction_rewards(rewards, anchor_correct, 0.5, 2.5) == [1.0, -2.5, 1.0, 0.0]


def test_zero_penalty_switches_shaping_off() -> None:
    assert shape_correction_rewards([0.2, 0.0], [True, True], 0.5, 0.0) == [0.2, 0.0]


def test_nan_reward_counts_as_failure() -> None:
    assert shape_correction_rewards([math.nan], [True], 0.5, 1.0) == [-1.0]


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 rewards for 1"):
        shape_correction_rewards([1.0, 0.0], [True], 0.5, 1.0)


def test_stats() -> None:
    stats = correction_stats([1, 0, 1, 1, 0, 0], [True, True, True, False, False, False], 0.5)
    assert stats.num_corrections == 6
    assert stats.success_rate == pytest.approx(0.5)
    assert stats.retention == pytest.approx(2 / 3)
    assert stats.break_rate == pytest.approx(1 / 3)
    assert stats.fix_rate == pytest.approx(1 / 3)


def test_stats_without_correct_anchors() -> None:
    stats = correction_stats([1.0, 0.0], [False, False], 0.5)
    assert stats.retention is None and stats.break_rate is None and stats.fix_rate == 0.5
