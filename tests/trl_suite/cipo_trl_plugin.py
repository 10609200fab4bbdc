"""pytest plugin for running TRL's ``tests/test_grpo_trainer.py`` offline against TRL's trainer or ours.

Loaded with ``-p cipo_trl_plugin`` (``tests/trl_suite`` on ``PYTHONPATH``) before TRL's conftest and test module
are imported. Environment:

- ``CIPO_TRL_MODE``: ``trl`` (TRL's own trainer), ``cipo`` (``CIPOTrainer``/``CIPOConfig`` with their defaults)
  or ``cipo-no-correction`` (ours with ``use_correction=False``).
- ``CIPO_TRL_STANDINS``: folder for the stand-in models (hub cache layout) and datasets.
"""

from __future__ import annotations

import os
from pathlib import Path

MODES = ("trl", "cipo", "cipo-no-correction")


def _standin_root() -> Path:
    return Path(os.environ.get("CIPO_TRL_STANDINS", Path.home() / ".cache" / "cipo" / "trl-standins"))


def _point_hub_at_standins(root: Path) -> None:
    # Must run before huggingface_hub is imported: it reads these variables once.
    os.environ["HF_HUB_CACHE"] = str(root / "hub")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _patch_load_dataset(zen_folder: Path) -> None:
    import datasets
    from standins import ZEN_ID

    real_load_dataset = datasets.load_dataset

    def load_dataset(path, name=None, *args, split=None, streaming=False, **kwargs):
        if path != ZEN_ID:
            return real_load_dataset(path, name, *args, split=split, streaming=streaming, **kwargs)
        files = {
            split_name: str(zen_folder / name / f"{split_name}.parquet") for split_name in ("train", "test")
        }
        return real_load_dataset("parquet", data_files=files, split=split, streaming=streaming)

    datasets.load_dataset = load_dataset


def _swap_trainer(mode: str) -> None:
    if mode == "trl":
        return
    import trl
    from cipo_no_correction import CIPOConfigNoCorrection

    from cipo.config import CIPOConfig
    from cipo.trainer import CIPOTrainer

    config_class = CIPOConfig if mode == "cipo" else CIPOConfigNoCorrection
    trl.GRPOTrainer = CIPOTrainer
    trl.GRPOConfig = config_class
    if mode != "cipo":
        # Our trainer builds its default config itself when args is None: make that default the same class.
        import cipo.trainer

        cipo.trainer.CIPOConfig = config_class


def _fill_missing_availability_checks() -> None:
    """TRL's test helpers import ``is_<package>_available`` names that some TRL releases dropped: answer them."""
    import importlib.util

    import trl.import_utils as trl_import_utils

    for package in (
        "harbor",
        "jmespath",
        "joblib",
        "liger_kernel",
        "math_verify",
        "mergekit",
        "openreward",
        "vllm",
    ):
        name = f"is_{package}_available"
        if not hasattr(trl_import_utils, name):
            available = importlib.util.find_spec(package) is not None
            setattr(trl_import_utils, name, lambda available=available: available)


def _setup() -> None:
    mode = os.environ.get("CIPO_TRL_MODE", "trl")
    if mode not in MODES:
        raise ValueError(f"CIPO_TRL_MODE must be one of {MODES}, got {mode!r}")
    root = _standin_root()
    _point_hub_at_standins(root)
    from standins import build_model_cache, build_zen

    build_model_cache(root / "hub")
    _patch_load_dataset(build_zen(root / "datasets"))
    _fill_missing_availability_checks()
    _swap_trainer(mode)


_setup()
