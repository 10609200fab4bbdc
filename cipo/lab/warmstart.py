"""Warm start: supervised training of the tiny model on worked solutions with controlled slips.

Two kinds of examples, in the exact token layout TRL uses at RL time (chat template with a generation prompt, then
the completion and ``<|end|>``):

* *solve*: the problem, then a worked solution in which each step slips with probability ``slip_rate``; the model
  learns to solve, and to slip now and then, so that its failures are near misses;
* *review*: the conversation ``build_correction_prompt`` produces (problem, an attempt, the default review
  instruction), then ``tasks.review_target``: correct attempts are kept, wrong ones fixed from their first slip.

The result is saved with ``save_pretrained`` and cached under a hash of everything that determines it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from cipo.core.prompts import build_correction_prompt
from cipo.lab.model import TinyModelConfig, build_model, count_parameters, train_tokenizer
from cipo.lab.task_api import LabTask, get_task
from cipo.lab.tasks import TaskConfig

CACHE_VERSION = 1  # bump when the warm-start code changes what it produces
# Warm starts that ship with cipo, found by the same hash as the cache: a fresh clone need not train them.
SHIPPED_DIR = Path(__file__).resolve().parent / "warm_starts"


@dataclass
class WarmStartConfig:
    steps: int = field(default=1500, metadata={"help": "Optimizer steps of supervised training."})
    batch_size: int = field(default=32, metadata={"help": "Sequences per optimizer step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak AdamW learning rate (cosine decay)."})
    warmup_steps: int = field(default=50, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    slip_rate: float = field(default=0.25, metadata={"help": "Probability that a step of a *solve* example slips."})
    review_fraction: float = field(default=0.5, metadata={"help": "Fraction of examples that are reviews."})
    review_wrong_fraction: float = field(
        default=0.5, metadata={"help": "Fraction of reviewed attempts that contain a slip (the rest are kept)."}
    )
    review_slip_rate: float = field(
        default=0.25, metadata={"help": "Probability that a step a review recomputes slips again."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of initialization, data order and slips."})
    pretrained: str = field(
        default="",
        metadata={"help": "Start from this pretrained model instead (a builtin: name, a folder or a .gguf file): no "
                  "tiny model, no supervised training; '' = train the warm start."},
    )
    use_shipped: bool = field(
        default=True,
        metadata={"help": "Use the warm start shipped in cipo/lab/warm_starts when one has this configuration's hash "
                  "(the quick preset's does); false = train it here (or take it from the cache)."},
    )


@dataclass
class Example:
    prompt: list[dict[str, str]]
    completion: str


def solve_example(lab_task: LabTask, problem: Any, rng: random.Random, config: WarmStartConfig) -> Example:
    return Example(problem.messages(), lab_task.solve_text(problem, rng, config.slip_rate))


def review_example(lab_task: LabTask, problem: Any, rng: random.Random, config: WarmStartConfig) -> Example:
    attempt, target = lab_task.review_texts(problem, rng, config)
    prompt = build_correction_prompt(problem.messages(), attempt, instruction=lab_task.correction_instruction)
    return Example(prompt, target)


def make_examples(task: TaskConfig, config: WarmStartConfig, count: int) -> list[Example]:
    lab_task = get_task(task.name)
    exclude = {lab_task.key(p) for p in lab_task.make_test_split(task)}
    problems = lab_task.iter_train_problems(task, f"sft-{config.seed}", exclude)
    rng = random.Random(f"sft-{config.seed}")
    examples = []
    for _ in range(count):
        make = review_example if rng.random() < config.review_fraction else solve_example
        examples.append(make(lab_task, next(problems), rng, config))
    return examples


def tokenize_example(tokenizer: PreTrainedTokenizerBase, example: Example) -> tuple[list[int], int]:
    """Token ids of prompt + completion + EOS, and the prompt length (the loss covers the rest)."""
    prompt_ids = tokenizer.apply_chat_template(example.prompt, add_generation_prompt=True, tokenize=True)
    if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "keys"):
        prompt_ids = prompt_ids["input_ids"]
    completion_ids = tokenizer.encode(example.completion, add_special_tokens=False) + [tokenizer.eos_token_id]
    return list(prompt_ids) + completion_ids, len(prompt_ids)


def collate(batch: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths (less padding): sort within chunks of 16 batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    chunk = batch_size * 16
    for start in range(0, len(order), chunk):
        block = sorted(order[start : start + chunk], key=lengths.__getitem__)
        batches += [block[i : i + batch_size] for i in range(0, len(block), batch_size)]
    rng.shuffle(batches)
    return [b for b in batches if len(b) == batch_size]


def lr_at(step: int, config: WarmStartConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_warm_start(
    task: TaskConfig, model_config: TinyModelConfig, config: WarmStartConfig, show_progress: bool = True
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase, list[float]]:
    examples = make_examples(task, config, config.steps * config.batch_size)
    tokenizer = train_tokenizer(
        [text for ex in examples[:2000] for text in (ex.prompt[-1]["content"], ex.completion)],
        vocab_size=model_config.vocab_size,
    )
    model = build_model(model_config, tokenizer, seed=config.seed)
    tokenized = [tokenize_example(tokenizer, ex) for ex in examples]
    batches = length_grouped_batches([len(ids) for ids, _ in tokenized], config.batch_size, random.Random(config.seed))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, betas=(0.9, 0.98)
    )
    losses: list[float] = []
    model.train()
    bar = tqdm(batches[: config.steps], desc="warm start (SFT)", disable=not show_progress, dynamic_ncols=True)
    for step, batch in enumerate(bar):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        loss = model(**collate([tokenized[i] for i in batch], tokenizer.pad_token_id)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    return model, tokenizer, losses


def config_hash(*configs: object) -> str:
    payload = json.dumps([CACHE_VERSION, *[_hashed_fields(c) for c in configs]], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _hashed_fields(config: object) -> dict:
    """The fields that determine a warm start; the default task name and an empty instruction are left out, so
    that the math task's hashes are those from before there were several tasks and instructions. So is the hard
    tail: its problems are never drawn into the warm start's data nor equal to one of them
    (``tasks.base_reachable``), so they cannot change it."""
    fields = {"type": type(config).__name__, **dataclasses.asdict(config)}
    if isinstance(config, TaskConfig):
        del fields["hard_levels"], fields["hard_test_size"]
        if fields["name"] == "math":
            del fields["name"]
        if not fields["instruction"]:  # as before there was an instruction field
            del fields["instruction"]
    if isinstance(config, WarmStartConfig):  # where it comes from, not what it is
        del fields["use_shipped"]
        if not fields["pretrained"]:
            del fields["pretrained"]
    return fields


def load_or_train_warm_start(
    task: TaskConfig,
    model_config: TinyModelConfig,
    config: WarmStartConfig,
    cache_dir: Path,
    show_progress: bool = True,
) -> tuple[Path, dict]:
    """The directory of the warm-start model (trained now, or found in the cache) and its training record."""
    if config.pretrained:
        return pretrained_start(config.pretrained)
    path = cache_dir / f"warm-{config_hash(task, model_config, config)}"
    shipped = SHIPPED_DIR / path.name
    for found in (path, shipped) if config.use_shipped else (path,):
        if (found / "warm_start.json").exists():
            record = json.loads((found / "warm_start.json").read_text())
            return found, {**record, "cached": True, "shipped": found == shipped}
    start = time.perf_counter()
    model, tokenizer, losses = train_warm_start(task, model_config, config, show_progress)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    record = {
        "seconds": time.perf_counter() - start,
        "parameters": count_parameters(model),
        "vocab_size": len(tokenizer),
        "losses": losses,
    }
    (tmp / "warm_start.json").write_text(json.dumps(record))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path, {**record, "cached": False}


def pretrained_start(name: str) -> tuple[Path, dict]:
    """A pretrained model as the lab's starting point: resolved like any model name (``builtin:`` names and
    ``.gguf`` files are converted once and cached), with a record in the shape of a trained warm start's."""
    from cipo.builtin_models import resolve_model

    path = Path(resolve_model(name))
    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):  # the parameter count without loading the weights
        parameters = count_parameters(AutoModelForCausalLM.from_config(config))
    record = {"seconds": 0.0, "parameters": parameters, "vocab_size": len(AutoTokenizer.from_pretrained(path)),
              "losses": [], "pretrained": name, "num_layers": config.num_hidden_layers}
    return path, {**record, "cached": True}


def load_model(path: Path | str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return model, AutoTokenizer.from_pretrained(path)
