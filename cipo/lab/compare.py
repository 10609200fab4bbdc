"""GRPO and CIPO from the same warm start, with the same seed, data order and optimizer steps.

CIPO generates more tokens per step than GRPO (its corrections), so the lab also trains GRPO on until it has
generated as many tokens as CIPO did: the *equal-token* baseline. Both GRPO results come from one run: the model
is copied when it reaches CIPO's step count, and training continues until the token count is matched. The
learning rate is constant, so the copy is exactly the model a separate, shorter GRPO run would give.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from cipo import CIPOConfig, CIPOTrainer
from cipo.lab.model import train_top_layers
from cipo.lab.task_api import LabTask, MathTask

if TYPE_CHECKING:  # config.py imports RLConfig from here
    from cipo.lab.config import LabConfig


@dataclass
class RLConfig:
    steps: int = field(default=40, metadata={"help": "Optimizer steps of GRPO and of CIPO."})
    prompts_per_step: int = field(default=8, metadata={"help": "Problems per step."})
    num_generations: int = field(default=8, metadata={"help": "Rollouts per problem (the GRPO group)."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Constant AdamW learning rate."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of rollouts."})
    max_completion_length: int = field(default=48, metadata={"help": "Generation limit of rollouts, in tokens."})
    correction_num_generations: int = field(default=4, metadata={"help": "CIPO: corrections per anchor."})
    correction_anchor_fraction: float = field(default=0.125, metadata={"help": "CIPO: share of rollouts used as anchors."})
    correction_weight: float = field(default=1.0, metadata={"help": "CIPO: weight of the correction loss."})
    replay_ratio: float = field(default=0.25, metadata={"help": "CIPO: initial share of correct anchors."})
    adaptive_replay: bool = field(default=True, metadata={"help": "CIPO: adapt the replay ratio to retention."})
    replay_ratio_bounds: tuple[float, float] = field(
        default=(0.05, 0.75), metadata={"help": "CIPO: bounds of the adaptive replay ratio."}
    )
    risk_penalty: float = field(default=1.0, metadata={"help": "CIPO: penalty of a correction that breaks a correct anchor."})
    difficulty_band: tuple[float, float] = field(
        default=(0.25, 0.75), metadata={"help": "CIPO: group pass-rate band preferred for anchors; 0,1 = off."}
    )
    equal_tokens: bool = field(default=True, metadata={"help": "Also train GRPO until it matches CIPO's generated tokens."})
    max_equal_token_factor: float = field(
        default=3.0, metadata={"help": "The equal-token GRPO run stops after at most this many times `steps`."}
    )
    trainable_layers: int = field(
        default=0, metadata={"help": "Train only the top N decoder layers and the final norm; 0 = the whole model."}
    )


@dataclass
class RunResult:
    name: str
    steps: int
    generated_tokens: int
    seconds: float
    log_history: list[dict]
    tokens_per_step: list[int]
    model: torch.nn.Module | None = None


class TokenCountingReward:
    """The task's reward (``math_reward``, ``code_reward``) that also counts the tokens it scores: every rollout and
    every correction is scored once."""

    def __init__(self, task: LabTask | None = None) -> None:
        self.task = task or MathTask()
        self.per_step: list[int] = []
        self._current = 0
        self.__name__ = self.task.reward_name

    def __call__(self, completions: list, completion_ids: list | None = None, **kwargs) -> list[float]:
        self._current += sum(len(ids) for ids in completion_ids or [])
        return self.task.reward(completions, **kwargs)

    def end_step(self) -> None:
        self.per_step.append(self._current)
        self._current = 0

    @property
    def total(self) -> int:
        return sum(self.per_step) + self._current


class LabCallback(TrainerCallback):
    """A progress bar with the running reward, token bookkeeping, a model copy at ``snapshot_step`` and a stop
    once ``stop_at_tokens`` tokens have been generated (never before ``snapshot_step``)."""

    def __init__(
        self,
        name: str,
        counter: TokenCountingReward,
        max_steps: int,
        snapshot_step: int | None = None,
        stop_at_tokens: int | None = None,
        show_progress: bool = True,
    ) -> None:
        self.name, self.counter, self.snapshot_step, self.stop_at_tokens = name, counter, snapshot_step, stop_at_tokens
        self.snapshot: dict[str, torch.Tensor] | None = None
        self.snapshot_tokens = 0
        self.snapshot_seconds = 0.0
        self.start = time.perf_counter()
        self.bar = tqdm(total=max_steps, desc=name, disable=not show_progress, dynamic_ncols=True)

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        self.counter.end_step()
        self.bar.update(1)
        if state.global_step == self.snapshot_step and model is not None:
            self.snapshot = copy.deepcopy(model.state_dict())
            self.snapshot_tokens = self.counter.total
            self.snapshot_seconds = time.perf_counter() - self.start
        past_snapshot = self.snapshot_step is None or state.global_step >= self.snapshot_step
        if self.stop_at_tokens is not None and past_snapshot and self.counter.total >= self.stop_at_tokens:
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
        if logs and "reward" in logs:
            self.bar.set_postfix(reward=f"{logs['reward']:.2f}", tokens=self.counter.total)

    def close(self) -> None:
        self.bar.total = self.bar.n  # a run stopped by its token budget ends before max_steps
        self.bar.refresh()
        self.bar.close()


def rl_problem_pool(config: LabConfig, task: LabTask, test: list) -> list:
    """The training problems of every RL run of the lab: enough for its longest run, none in ``test``."""
    size = math.ceil(config.rl.steps * config.rl.max_equal_token_factor) * config.rl.prompts_per_step
    stream = task.iter_train_problems(config.task, "rl", {task.key(problem) for problem in test})
    return [next(stream) for _ in range(size)]


def rl_dataset(problems: Sequence, task: LabTask | None = None) -> Dataset:
    task = task or MathTask()
    return Dataset.from_list([task.dataset_row(p) for p in problems])


def cipo_config(
    config: RLConfig, use_correction: bool, max_steps: int, seed: int, output_dir: Path, task: LabTask | None = None
) -> CIPOConfig:
    return CIPOConfig(
        output_dir=str(output_dir),
        use_correction=use_correction,
        correction_instruction=(task or MathTask()).correction_instruction,
        max_steps=max_steps,
        per_device_train_batch_size=config.prompts_per_step * config.num_generations,
        num_generations=config.num_generations,
        learning_rate=config.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        temperature=config.temperature,
        max_completion_length=config.max_completion_length,
        beta=0.0,
        correction_num_generations=config.correction_num_generations,
        correction_anchor_fraction=config.correction_anchor_fraction,
        correction_weight=config.correction_weight,
        replay_ratio=config.replay_ratio,
        adaptive_replay=config.adaptive_replay,
        replay_ratio_bounds=list(config.replay_ratio_bounds),
        risk_penalty=config.risk_penalty,
        difficulty_band=list(config.difficulty_band),
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        bf16=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def train_policy(
    name: str,
    warm_path: Path,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    config: RLConfig,
    use_correction: bool,
    seed: int,
    output_dir: Path,
    max_steps: int,
    snapshot_step: int | None = None,
    stop_at_tokens: int | None = None,
    show_progress: bool = True,
    task: LabTask | None = None,
) -> tuple[RunResult, RunResult | None]:
    """Train from the warm start; returns the final run and, if ``snapshot_step`` was reached, the copy there."""
    counter = TokenCountingReward(task)
    model = (train_top_layers(AutoModelForCausalLM.from_pretrained(warm_path), config.trainable_layers)
             if config.trainable_layers else str(warm_path))  # a path: TRL loads it, exactly as before this option
    trainer = CIPOTrainer(
        model=model,
        reward_funcs=[counter],
        args=cipo_config(config, use_correction, max_steps, seed, output_dir, task),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    callback = LabCallback(name, counter, max_steps, snapshot_step, stop_at_tokens, show_progress)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(callback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    callback.close()
    history = [entry for entry in trainer.state.log_history if "reward" in entry]
    final = RunResult(name, trainer.state.global_step, counter.total, seconds, history, counter.per_step,
                      fresh_copy(warm_path, trainer.model.state_dict()))
    if callback.snapshot is None:
        return final, None
    if snapshot_step == final.steps:
        return final, final
    steps = snapshot_step or 0
    snapshot = RunResult(name, steps, callback.snapshot_tokens, callback.snapshot_seconds, history[:steps],
                         counter.per_step[:steps], fresh_copy(warm_path, callback.snapshot))
    return final, snapshot


def fresh_copy(path: Path, state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A plain model with the given weights. Not ``copy.deepcopy`` of the trained model: the trainer patches
    ``model.forward`` with a bound method, and a deep copy would keep calling the original model."""
    model = AutoModelForCausalLM.from_pretrained(path)
    model.load_state_dict(state_dict)
    return model.eval()
