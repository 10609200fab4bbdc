"""The lab's warm start and training problems under built-in names, so that ``cipo train`` can start from a model
that already succeeds sometimes and show its reward rising:

* ``builtin:lab-warm-start`` (a model): the quick preset's math warm start, the one ``make lab`` trains and caches
  (shipped with cipo in ``cipo/lab/warm_starts``; trained, about 2-10 minutes on 2 CPU cores, only without it);
* ``builtin:lab-math`` (a dataset): the lab's RL problem stream, disjoint from its held-out split, as conversational
  ``prompt`` rows with an ``answer`` column for the ``math`` reward.

Both are looked up by name from ``cipo.builtin_models`` and ``cipo.data`` when used, never imported by them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from cipo.lab.compare import rl_problem_pool
from cipo.lab.config import PRESETS
from cipo.lab.task_api import get_task

CACHE_ENV = "CIPO_LAB_CACHE"  # where the warm start is cached; default: the lab's own cache_dir (runs/cache)


def warm_start_path(preset: str = "quick", cache_dir: str | os.PathLike | None = None) -> str:
    """The folder of the preset's warm start, trained now (with the lab's thread count) unless cached."""
    import torch

    from cipo.lab.warmstart import load_or_train_warm_start

    config = PRESETS[preset]()
    cache = Path(cache_dir or os.environ.get(CACHE_ENV) or config.cache_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)  # the warm start depends on the thread count; train it as the lab does
    try:
        path, record = load_or_train_warm_start(config.task, config.model, config.warm_start, cache)
    finally:
        torch.set_num_threads(threads)
    if not record["cached"]:
        print(f"[cipo] lab warm start trained in {record['seconds']:.0f}s, cached at {path}", file=sys.stderr)
    return str(path)


def train_rows(preset: str = "quick") -> list[dict[str, Any]]:
    """The lab's RL problems as dataset rows (``prompt`` messages, ``answer``), in the lab's order."""
    config = PRESETS[preset]()
    task = get_task(config.task.name)
    problems = rl_problem_pool(config, task, task.make_test_split(config.task))
    return [task.dataset_row(problem) for problem in problems]
