"""The lab: GRPO against CIPO end to end on a synthetic math task and a tiny model, on a CPU.

``task.name=code`` (``cipo lab --task code``) swaps in a program-synthesis task graded in the sandbox
(``cipo.lab.code_task``); tasks share the interface of ``cipo.lab.task_api``.

    from cipo.lab import quick, run_lab
    config = quick()
    config.seeds = 3
    run_dir = run_lab(config)        # runs/lab-<timestamp>/report.md, metrics.json, plots

or ``cipo lab`` / ``make lab`` on the command line (``cipo.lab.cli``). Imports are lazy: ``import cipo.lab``
loads neither torch nor TRL.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "LabConfig": "cipo.lab.config",
    "quick": "cipo.lab.config",
    "tiny": "cipo.lab.config",
    "PRESETS": "cipo.lab.config",
    "run_lab": "cipo.lab.runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cipo.lab' has no attribute {name!r}")
