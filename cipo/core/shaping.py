"""Risk-averse shaping of the corrections' advantages and the outcome statistics of a step's corrections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def is_success(reward: float, threshold: float) -> bool:
    return reward == reward and reward >= threshold  # NaN (unscorable) is never a success


def penalize_breaks(
    advantages: Sequence[float],
    rewards: Sequence[float],
    anchor_correct: Sequence[bool],
    success_threshold: float,
    risk_penalty: float,
) -> list[float]:
    """The corrections' advantages after the risk-averse penalty: a correction that turns a correct anchor wrong (or
    cannot be scored) loses ``risk_penalty``; every other advantage is unchanged. ``risk_penalty == 0`` switches it off.

    The penalty acts on the group-normalized advantages, not on the rewards: all corrections of one anchor share the
    anchor's correctness, so a penalty on their rewards is one affine change of the whole group, which group
    normalization cancels (exactly, for 0/1 rewards under ``scale_rewards="group"``), and a group whose corrections all
    break would get advantage 0 however large the penalty.
    """
    if not len(advantages) == len(rewards) == len(anchor_correct):
        raise ValueError(f"{len(advantages)} advantages, {len(rewards)} rewards and {len(anchor_correct)} anchor flags")
    return [
        float(advantage) - risk_penalty if was_correct and not is_success(reward, success_threshold) else float(advantage)
        for advantage, reward, was_correct in zip(advantages, rewards, anchor_correct, strict=True)
    ]


@dataclass(frozen=True)
class CorrectionStats:
    """Outcomes of one step's corrections; rates are None when nothing was there to measure."""

    num_corrections: int
    success_rate: float | None  # corrections that are correct
    retention: float | None  # of corrections of correct anchors: still correct
    fix_rate: float | None  # of corrections of wrong anchors: now correct (wrong -> right)
    break_rate: float | None  # of corrections of correct anchors: now wrong (right -> wrong)


def _mean(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def correction_stats(
    rewards: Sequence[float], anchor_correct: Sequence[bool], success_threshold: float
) -> CorrectionStats:
    """Statistics on raw (unshaped) correction rewards."""
    success = [is_success(r, success_threshold) for r in rewards]
    kept = [ok for ok, was in zip(success, anchor_correct, strict=True) if was]
    fixed = [ok for ok, was in zip(success, anchor_correct, strict=True) if not was]
    retention = _mean(kept)
    return CorrectionStats(
        num_corrections=len(success),
        success_rate=_mean(success),
        retention=retention,
        fix_rate=_mean(fixed),
        break_rate=None if retention is None else 1.0 - retention,
    )
