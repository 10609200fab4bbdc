import math
from types import SimpleNamespace

import pytest
import torch

from cipo.core.advantages import group_advantages
from cipo.core.shaping import correction_stats, penalize_breaks
from cipo.trainer import CIPOTrainer


def test_breaking_a_correct_anchor_is_penalized() -> None:
    advantages = [0.5, -0.5, 0.5, -0.5]
    rewards = [1.0, 0.0, 1.0, 0.0]
    anchor_correct = [True, True, False, False]
    assert penalize_breaks(advantages, rewards, anchor_correct, 0.5, 1.0) == [0.5, -1.5, 0.5, -0.5]
    assert penalize_breaks(advantages, rewards, anchor_correct, 0.5, 2.5) == [0.5, -3.0, 0.5, -0.5]


def test_zero_penalty_switches_shaping_off() -> None:
    assert penalize_breaks([0.7, -0.7], [0.2, 0.0], [True, True], 0.5, 0.0) == [0.7, -0.7]


def test_nan_reward_counts_as_failure() -> None:
    assert penalize_breaks([0.0], [math.nan], [True], 0.5, 1.0) == [-1.0]


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 advantages, 2 rewards and 1 anchor flags"):
        penalize_breaks([0.0, 0.0], [1.0, 0.0], [True], 0.5, 1.0)


def _trainer_advantages(rewards: list[float], anchor_correct: list[bool], risk_penalty: float, scale: str) -> list[float]:
    """``CIPOTrainer._correction_advantages`` on one rank, groups of 4 corrections."""
    fake = SimpleNamespace(
        args=SimpleNamespace(correction_num_generations=4, correction_success_threshold=0.5, risk_penalty=risk_penalty),
        scale_rewards=scale,
        accelerator=SimpleNamespace(num_processes=1, process_index=0, device="cpu"),
        _log=lambda name, value: None,
    )
    return CIPOTrainer._correction_advantages(fake, torch.tensor(rewards), anchor_correct).tolist()


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_the_penalty_survives_group_normalization(scale: str) -> None:
    """Every correction of an anchor shares its correctness, so a penalty on the 0/1 rewards would be cancelled by
    the per-anchor normalization (the shaping used to be a no-op under scale_rewards="group"). Here: a correct
    anchor with one kept and three broken corrections, and a correct anchor whose corrections all break."""
    rewards = [1.0, 0.0, 0.0, 0.0] + [0.0, 0.0, 0.0, 0.0]
    anchor_correct = [True] * 8
    off = _trainer_advantages(rewards, anchor_correct, 0.0, scale)
    on = _trainer_advantages(rewards, anchor_correct, 1.0, scale)
    assert off == pytest.approx(group_advantages(torch.tensor(rewards), 4, scale).tolist())
    broken = [i for i, r in enumerate(rewards) if r == 0.0]
    assert [on[i] - off[i] for i in broken] == pytest.approx([-1.0] * len(broken))
    assert on[0] == pytest.approx(off[0])
    assert sum(on[4:]) < 0  # a group that breaks every time is pushed down, not left at advantage 0


def test_wrong_anchors_are_never_penalized() -> None:
    rewards = [1.0, 0.0, 0.0, 0.0]
    assert _trainer_advantages(rewards, [False] * 4, 1.0, "group") == pytest.approx(
        _trainer_advantages(rewards, [False] * 4, 0.0, "group"))


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
