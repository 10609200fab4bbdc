"""Reward functions in TRL's convention: ``f(completions, **dataset_columns) -> list[float]``.

A registry maps short names (used in YAML configs: ``reward_funcs: [math]``) to functions; plug in your own with
``@register_reward("name")``, or pass a dotted path ``"my_pkg.my_module:my_reward"``.
"""

from __future__ import annotations

from collections.abc import Callable

from cipo.dotted import import_dotted

RewardFunc = Callable[..., list[float]]

_REGISTRY: dict[str, RewardFunc | str] = {
    "math": "cipo.rewards.math:math_reward",
    "math_whole_text": "cipo.rewards.math:math_reward_whole_text",  # grades <think> blocks too
    "code": "cipo.rewards.code:code_reward",
}


def register_reward(name: str) -> Callable[[RewardFunc], RewardFunc]:
    """Decorator: make a reward function available by name to configs and the CLI."""

    def decorate(func: RewardFunc) -> RewardFunc:
        _REGISTRY[name] = func
        return func

    return decorate


def _lookup(table: dict[str, Callable | str], name: str, kind: str) -> Callable:
    """A registered entry by name (imported on first use), or any function by dotted path."""
    entry = table.get(name)
    if entry is None:
        if ":" in name:
            return import_dotted(name, kind)
        raise KeyError(f"unknown {kind} {name!r}; registered: {sorted(table)}")
    if isinstance(entry, str):
        entry = table[name] = import_dotted(entry, kind)
    return entry


def get_reward(name: str) -> RewardFunc:
    """A registered reward by name, or a function by dotted path ``package.module:function``."""
    return _lookup(_REGISTRY, name, "reward function")


# Correction feedback (opt-in, beyond the paper): f(completions, **dataset_columns) -> list[str], one text each.
_FEEDBACK: dict[str, Callable | str] = {"code": "cipo.rewards.code:code_feedback_batch"}


def get_feedback(name: str) -> Callable[..., list[str]]:
    """A correction-feedback function by name (``"code"``: first failing test and error) or dotted path."""
    return _lookup(_FEEDBACK, name, "correction feedback")


def registered_rewards() -> list[str]:
    return sorted(_REGISTRY)


def __getattr__(name: str) -> RewardFunc:
    # Lazy: importing cipo.rewards must not start verifier workers or load the sandbox.
    if name in ("math_reward", "code_reward"):
        return get_reward(name.removesuffix("_reward"))
    raise AttributeError(name)
