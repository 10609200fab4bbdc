"""``package.module:attribute`` paths, the way registries name what they import on first use."""

from __future__ import annotations

import importlib
from typing import Any


def import_dotted(path: str, kind: str = "object") -> Any:
    """The attribute that ``path`` names (``"cipo.rewards.math:math_reward"``), imported now."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{kind} path {path!r} must look like 'package.module:function'")
    return getattr(importlib.import_module(module_name), attribute)
