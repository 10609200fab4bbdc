"""``CIPOConfig`` with ``use_correction`` defaulting to False, importable by name (checkpoints pickle the config)."""

from __future__ import annotations

from cipo.config import CIPOConfig


class CIPOConfigNoCorrection(CIPOConfig):
    """A plain subclass: the fields stay CIPOConfig's, only the default of ``use_correction`` changes."""

    def __init__(self, *args, use_correction: bool = False, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, use_correction=use_correction, **kwargs)
