import math

import pytest
import torch

from cipo.core.advantages import STD_EPS, group_advantages


def test_group_normalization_by_hand() -> None:
    advantages = group_advantages(torch.tensor([1.0, -1.0, 1.0, 0.0]), 2)
    first = 1 / (math.sqrt(2) + STD_EPS)  # group [1, -1]: centred +-1, std sqrt(2)
    second = 0.5 / (math.sqrt(0.5) + STD_EPS)  # group [1, 0]: centred +-0.5, std sqrt(0.5)
    assert advantages.tolist() == pytest.approx([first, -first, second, -second])


def test_scale_options() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert group_advantages(rewards, 4, "none").tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25])
    batch = group_advantages(torch.tensor([1.0, 0.0, 3.0, 1.0]), 2, "batch")
    std = torch.tensor([1.0, 0.0, 3.0, 1.0]).std().item()
    assert batch.tolist() == pytest.approx([0.5 / (std + STD_EPS), -0.5 / (std + STD_EPS), 1 / (std + STD_EPS), -1 / (std + STD_EPS)])
    with pytest.raises(ValueError, match="scale"):
        group_advantages(rewards, 4, "bogus")


def test_uniform_group_has_zero_advantage() -> None:
    assert group_advantages(torch.tensor([1.0, 1.0, 0.0, 0.0]), 2).tolist() == [0.0, 0.0, 0.0, 0.0]


def test_nan_rows_get_zero_and_are_left_out() -> None:
    advantages = group_advantages(torch.tensor([math.nan, 1.0, 0.0]), 3)
    expected = 0.5 / (math.sqrt(0.5) + STD_EPS)
    assert advantages.tolist() == pytest.approx([0.0, expected, -expected])


def test_matches_trl_group_advantages() -> None:
    from trl.trainer.utils import nanstd

    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    grouped = rewards.view(-1, 4)
    trl_style = (rewards - grouped.mean(1).repeat_interleave(4)) / (nanstd(grouped, dim=1).repeat_interleave(4) + 1e-4)
    assert group_advantages(rewards, 4).tolist() == pytest.approx(trl_style.tolist())
