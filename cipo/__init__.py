"""cipo: Correction-Oriented Policy Optimization on top of TRL's GRPOTrainer.

``from cipo import CIPOConfig, CIPOTrainer``. The pure method pieces live in ``cipo.core`` and import no TRL;
this package imports TRL only when the trainer or config is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["CIPOConfig", "CIPOTrainer", "__version__"]

if TYPE_CHECKING:
    from cipo.config import CIPOConfig
    from cipo.trainer import CIPOTrainer


def __getattr__(name: str) -> Any:
    if name == "CIPOConfig":
        from cipo.config import CIPOConfig

        return CIPOConfig
    if name == "CIPOTrainer":
        from cipo.trainer import CIPOTrainer

        return CIPOTrainer
    raise AttributeError(f"module 'cipo' has no attribute {name!r}")
