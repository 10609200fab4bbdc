"""The lab's configuration: one dataclass per component, gathered in ``LabConfig``, and the presets."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field

from cipo.lab.compare import RLConfig
from cipo.lab.evaluate import EvalConfig
from cipo.lab.model import TinyModelConfig
from cipo.lab.tasks import TaskConfig
from cipo.lab.warmstart import WarmStartConfig

SECTIONS = ("task", "model", "warm_start", "rl", "eval")


@dataclass
class LabConfig:
    preset: str = field(default="quick", metadata={"help": "Name of the preset these values started from."})
    seed: int = field(default=0, metadata={"help": "First seed of the GRPO/CIPO runs and of their evaluation."})
    seeds: int = field(default=1, metadata={"help": "Number of seeds (seed, seed+1, ...): report mean and spread."})
    threads: int = field(default=2, metadata={"help": "torch CPU threads (results are reproducible per setting)."})
    output_dir: str = field(default="runs", metadata={"help": "Reports go to <output_dir>/lab-<timestamp>/."})
    cache_dir: str = field(default="runs/cache", metadata={"help": "Warm starts are cached here by config hash."})
    show_progress: bool = field(default=True, metadata={"help": "Progress bars on stderr."})
    ablate: bool = field(
        default=False, metadata={"help": "Also train CIPO with each part switched off (cipo.lab.ablation)."}
    )
    task: TaskConfig = field(default_factory=TaskConfig)
    model: TinyModelConfig = field(default_factory=TinyModelConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def quick() -> LabConfig:
    """The default: 145 s on two idle CPU cores from a fresh clone, whose warm start ships with cipo."""
    return LabConfig(preset="quick")


def tiny() -> LabConfig:
    """Seconds, not minutes: a smoke test of every phase (the numbers mean nothing)."""
    return LabConfig(
        preset="tiny",
        task=TaskConfig(levels=(1,), test_size=4, hard_test_size=2),
        model=TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, vocab_size=300),
        warm_start=WarmStartConfig(steps=4, batch_size=8, warmup_steps=1),
        rl=RLConfig(steps=2, prompts_per_step=2, num_generations=4, max_completion_length=24,
                    correction_num_generations=2, correction_anchor_fraction=0.25, max_equal_token_factor=2.0),
        eval=EvalConfig(num_samples=4, correction_attempts=2, max_new_tokens=24, batch_size=64),
    )


SMOL_INSTRUCTION = "Answer with only the final result in \\boxed{}."


def smol() -> LabConfig:
    """The real pretrained SmolLM2-135M-Instruct instead of the tiny warm start: sums and differences of two digits
    (level 0), whose group pass rates lie between 0 and 1 for this model, with three-term chains (level 1) as the
    hard tail; the top 2 of its 30 layers trained. Sized from the per-step cost on two idle cores (GRPO about 20 s,
    CIPO about 40 s a step) to end within an hour: 36-39 minutes (docs/lab.md, "A real model")."""
    return LabConfig(
        preset="smol",
        task=TaskConfig(levels=(0,), test_size=32, hard_levels=(1,), hard_test_size=16, instruction=SMOL_INSTRUCTION),
        warm_start=WarmStartConfig(pretrained="builtin:smollm2-135m-instruct"),
        rl=RLConfig(steps=24, prompts_per_step=4, num_generations=8, learning_rate=5e-5, max_completion_length=32,
                    correction_num_generations=4, correction_anchor_fraction=0.125, trainable_layers=2,
                    max_equal_token_factor=2.5),
        eval=EvalConfig(num_samples=16, correction_attempts=4, max_new_tokens=32, batch_size=64),
    )


PRESETS = {"quick": quick, "tiny": tiny, "smol": smol}


def config_from_dict(data: dict) -> LabConfig:
    """The configuration that ``LabConfig.to_dict`` wrote into a run's ``metrics.json`` (JSON lists back to tuples)."""
    config = LabConfig()
    for name, value in data.items():
        if name in SECTIONS:
            for field_name, field_value in value.items():
                _set_stored(getattr(config, name), field_name, field_value)
        else:
            _set_stored(config, name, value)
    return config


def _set_stored(target: object, name: str, value: object) -> None:
    hint = field_hint(target, name)
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if isinstance(value, list) and any(typing.get_origin(option) is tuple for option in options):
        value = tuple(value)
    setattr(target, name, value)


def apply_override(config: LabConfig, assignment: str) -> None:
    """Set one field from ``section.field=value`` (or ``field=value`` for top-level fields)."""
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise ValueError(f"override {assignment!r} is not of the form section.field=value")
    *path, name = key.strip().split(".")
    target = config
    for part in path:
        if part not in SECTIONS or not hasattr(target, part):
            raise ValueError(f"unknown config section {part!r}; sections: {', '.join(SECTIONS)}")
        target = getattr(target, part)
    setattr(target, name, parse_value(raw.strip(), field_hint(target, name)))


def field_hint(target: object, name: str) -> object:
    """The type hint of field ``name`` of the dataclass ``target``; a clear error when there is no such field."""
    fields = [f.name for f in dataclasses.fields(target)]
    if name not in fields:
        raise ValueError(f"unknown field {name!r} in {type(target).__name__}; fields: {', '.join(fields)}")
    return typing.get_type_hints(type(target))[name]


def parse_value(raw: str, hint: object) -> object:
    if hint is bool:
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"not a boolean: {raw!r}")
        return raw.lower() in ("true", "1", "yes")
    if hint in (int, float, str):
        return hint(raw)
    origin = typing.get_origin(hint)
    if origin is tuple:
        item_type = typing.get_args(hint)[0]
        return tuple(item_type(x) for x in raw.strip("()[]").split(",") if x.strip())
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if raw.lower() == "none" else parse_value(raw, options[0])
    raise ValueError(f"cannot parse a value of type {hint}")
