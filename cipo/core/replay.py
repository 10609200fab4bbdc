"""The adaptive replay controller: how large a share of the anchors are correct attempts.

Rule (one update per optimizer step that had corrections of correct anchors)::

    ratio <- clip(ratio + step_size * (retention_target - retention), low, high)

Retention is the share of corrections of correct anchors that stay correct. When the model breaks good answers
(retention below target) it sees more correct anchors, so the risk-averse penalty teaches it to keep them; when
retention is comfortably above target, the budget moves to wrong anchors, where fixes are learned. A step without
correct anchors leaves the ratio unchanged. With ``adaptive=False`` the ratio stays at its initial value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ReplayController:
    ratio: float
    retention_target: float = 0.9
    bounds: tuple[float, float] = (0.05, 0.75)
    step_size: float = 0.25
    adaptive: bool = True
    last_retention: float | None = None
    num_updates: int = 0

    def __post_init__(self) -> None:
        low, high = self.bounds
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"replay bounds must satisfy 0 <= low <= high <= 1, got {self.bounds}")
        self.bounds = (float(low), float(high))
        self.ratio = min(max(float(self.ratio), low), high)

    def update(self, retention: float | None) -> float:
        """Feed this step's retention (None when there was nothing to measure); returns the new ratio."""
        if retention is None:
            return self.ratio
        self.last_retention = retention
        if self.adaptive:
            low, high = self.bounds
            moved = self.ratio + self.step_size * (self.retention_target - retention)
            self.ratio = min(max(moved, low), high)
            self.num_updates += 1
        return self.ratio

    def state_dict(self) -> dict[str, Any]:
        """The learned state only; hyperparameters come from the configuration of the run that loads it."""
        return {key: value for key, value in asdict(self).items() if key in STATE_FIELDS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state; ``adaptive``, ``step_size``, ``bounds`` and ``retention_target`` stay as configured
        now (changing them at resume takes effect), and the restored ratio is clipped to the current bounds."""
        for key in STATE_FIELDS:
            if key in state:
                setattr(self, key, state[key])
        low, high = self.bounds
        self.ratio = min(max(float(self.ratio), low), high)


STATE_FIELDS = ("ratio", "last_retention", "num_updates")
