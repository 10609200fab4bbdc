"""Advantages of correction samples: group-normalized within each anchor's corrections.

``correction_weight`` is not applied here: it multiplies the corrections' loss term (see ``CIPOTrainer``), so the
KL and entropy terms of the corrections are weighted like their policy term.

The scale options mirror GRPO's ``scale_rewards``: ``"group"`` divides by each group's std, ``"batch"`` by the std
of all corrections of the step, ``"none"`` only centres. The std is the unbiased one with the same ``1e-4`` guard as
TRL, so ``correction_weight = 1`` puts corrections on the same scale as the originals. NaN rewards (rows that no
reward function could score) are left out of the statistics and get advantage 0, as in TRL.
"""

from __future__ import annotations

import torch

SCALE_OPTIONS = ("group", "batch", "none")
STD_EPS = 1e-4


def _nanstd(values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Unbiased std over non-NaN entries; 0 where fewer than two entries exist."""
    keep = dim is not None
    mean = torch.nanmean(values, dim=dim, keepdim=keep) if keep else torch.nanmean(values)
    count = (~torch.isnan(values)).sum(dim=dim) if keep else (~torch.isnan(values)).sum()
    squares = torch.nansum((values - mean) ** 2, dim=dim) if keep else torch.nansum((values - mean) ** 2)
    variance = squares / (count - 1).clamp(min=1)
    return torch.where(count > 1, variance.sqrt(), torch.zeros_like(variance))


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group") -> torch.Tensor:
    """``(r - mean_group) / (std + eps)`` per group of ``group_size`` consecutive rows (1-D in, 1-D out)."""
    if scale not in SCALE_OPTIONS:
        raise ValueError(f"scale must be one of {SCALE_OPTIONS}, got {scale!r}")
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"expected a 1-D tensor whose length divides by {group_size}, got {tuple(rewards.shape)}")
    grouped = rewards.view(-1, group_size)
    centred = (grouped - torch.nanmean(grouped, dim=1, keepdim=True)).view(-1)
    if scale == "group":
        centred = centred / (_nanstd(grouped, dim=1).repeat_interleave(group_size) + STD_EPS)
    elif scale == "batch":
        centred = centred / (_nanstd(rewards) + STD_EPS)
    return torch.nan_to_num(centred, nan=0.0)
