"""Anchor selection: which of this step's rollouts get a correction attempt.

Rollouts arrive in groups of ``group_size`` (the GRPO group of one prompt). A group's pass rate says how hard its
prompt is for the current policy. Near misses (a pass rate inside ``difficulty_band``) make the most useful anchors:
a trivial prompt has nothing to fix, a hopeless one rarely gets fixed. Groups outside the band fill the remaining
slots by their distance to the band.

Inside the budget, a share ``correct_share`` of the anchors are *correct* rollouts (replay): asking the model to
review a correct answer teaches it to keep good answers, which the replay controller watches through retention.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class AnchorSelection:
    """Chosen rollout indices (ascending) and how many of them were correct."""

    indices: list[int]
    num_correct: int

    @property
    def num_wrong(self) -> int:
        return len(self.indices) - self.num_correct


def group_pass_rates(correct: Sequence[bool], group_size: int) -> list[float]:
    if group_size <= 0 or len(correct) % group_size:
        raise ValueError(f"{len(correct)} rollouts do not split into groups of {group_size}")
    return [
        sum(correct[start : start + group_size]) / group_size for start in range(0, len(correct), group_size)
    ]


def band_distance(pass_rate: float, band: tuple[float, float]) -> float:
    """0 inside the band, else how far the pass rate lies outside it."""
    low, high = band
    return max(low - pass_rate, 0.0, pass_rate - high)


def anchor_budget(num_rollouts: int, fraction: float, unit: int, cap: int | None = None) -> int:
    """Number of anchors: ``fraction`` of the rollouts, rounded to a multiple of ``unit``, at most ``cap``.

    ``unit`` makes the correction rows split evenly over processes and gradient-accumulation chunks. A positive
    fraction never rounds down to zero while at least one unit fits under the cap.
    """
    limit = num_rollouts if cap is None else min(num_rollouts, cap)
    if fraction <= 0 or limit < unit:
        return 0
    units = max(1, _round_half_up(fraction * num_rollouts / unit))
    return min(units * unit, (limit // unit) * unit)


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


@dataclass
class ShareRounder:
    """Whole counts whose running total follows ``share x budget`` exactly: the rounding remainder is carried to
    the next step (error diffusion), so with 1 anchor per step and share 0.25 every fourth anchor is correct,
    where rounding each step alone would never choose one. Deterministic, so every rank computes the same count.
    """

    carry: float = 0.0

    def count(self, budget: int, share: float) -> int:
        wanted = budget * share + self.carry
        whole = min(budget, math.floor(wanted + 1e-9))
        self.carry = min(max(wanted - whole, 0.0), 1.0)
        return whole


def _ranked(
    candidates: list[int], group_of: Sequence[int], distance: Sequence[float], rng: random.Random
) -> list[int]:
    """Candidates by band distance, taking one rollout per group before a second from the same group."""
    by_group: dict[int, list[int]] = {}
    for index in candidates:
        by_group.setdefault(group_of[index], []).append(index)
    keyed = []
    for group, members in by_group.items():
        rng.shuffle(members)
        for rank_in_group, index in enumerate(members):
            keyed.append((distance[group], rank_in_group, rng.random(), index))
    keyed.sort()
    return [index for *_, index in keyed]


def select_anchors(
    correct: Sequence[bool],
    group_size: int,
    num_anchors: int,
    correct_share: float,
    difficulty_band: tuple[float, float],
    rng: random.Random,
    num_correct: int | None = None,
) -> AnchorSelection:
    """Pick ``num_anchors`` rollouts, ``num_correct`` of them correct if possible (default:
    ``num_anchors * correct_share`` rounded half up; the trainer passes a ``ShareRounder`` count).

    When one kind runs short (e.g. every rollout failed), the other kind fills the gap, so the budget is kept
    whenever there are enough rollouts.
    """
    num_anchors = min(num_anchors, len(correct))
    pass_rates = group_pass_rates(correct, group_size)
    distance = [band_distance(rate, difficulty_band) for rate in pass_rates]
    group_of = [index // group_size for index in range(len(correct))]
    right_pool = _ranked([i for i, ok in enumerate(correct) if ok], group_of, distance, rng)
    wrong_pool = _ranked([i for i, ok in enumerate(correct) if not ok], group_of, distance, rng)

    wanted = _round_half_up(num_anchors * correct_share) if num_correct is None else num_correct
    want_right = min(wanted, len(right_pool))
    want_wrong = min(num_anchors - want_right, len(wrong_pool))
    want_right = min(num_anchors - want_wrong, len(right_pool))  # refill from correct ones if wrong ran short
    chosen = right_pool[:want_right] + wrong_pool[:want_wrong]
    return AnchorSelection(indices=sorted(chosen), num_correct=want_right)
