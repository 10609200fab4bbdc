"""Training data for ``cipo train``: local jsonl/json/parquet/csv, a datasets hub id, or a built-in set.

Rows come out with a ``prompt`` column (conversational when asked, the TRL convention) and, when mapped, an
``answer`` column for the math verifier. Every other column is kept: reward functions receive it unchanged.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, load_dataset

from cipo.dotted import import_dotted

BUILTIN_PREFIX = "builtin:"
_LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
ARITHMETIC_INSTRUCTION = "Put the final answer in \\boxed{}."


@dataclass
class DataArguments:
    """Where the training prompts come from and which columns hold what."""

    dataset_name: str = field(
        default="builtin:arithmetic",
        metadata={
            "help": "A local .jsonl/.json/.parquet/.csv file, a datasets hub id, or a built-in set "
            "('builtin:arithmetic', or 'builtin:lab-math': the lab's problems, for builtin:lab-warm-start)."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_split: str = field(default="train", metadata={"help": "Split to train on."})
    prompt_column: str = field(default="prompt", metadata={"help": "Column holding the prompt (text or messages)."})
    answer_column: str | None = field(
        default="answer", metadata={"help": "Column holding the gold answer, renamed to 'answer'. None = keep as is."}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message prepended to text prompts turned conversational."}
    )
    conversational: bool = field(
        default=True,
        metadata={"help": "Wrap text prompts as a user message so the tokenizer's chat template applies."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only the first N rows."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["math"],
        metadata={"help": "Reward functions by registry name ('math', 'code') or 'package.module:function'."},
    )


def arithmetic_rows(num_rows: int = 256, seed: int = 0, max_operand: int = 20) -> list[dict[str, Any]]:
    """A small built-in set: sums and differences of small numbers, graded by the math verifier."""
    rng = random.Random(seed)
    rows = []
    for _ in range(num_rows):
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        op = rng.choice("+-")
        value = a + b if op == "+" else a - b
        rows.append({"prompt": f"Compute {a}{op}{b}. {ARITHMETIC_INSTRUCTION}", "answer": str(value)})
    return rows


# name -> a function returning rows, or the "module:function" of one that another package provides (imported when used)
BUILTIN_DATASETS: dict[str, Callable[[], list[dict[str, Any]]] | str] = {
    "arithmetic": arithmetic_rows,
    "lab-math": "cipo.lab.builtins:train_rows",  # the lab's RL problems, in the lab warm start's format
}


def _load_raw(args: DataArguments) -> tuple[Dataset, str]:
    """The dataset as stored, and a name for error messages."""
    name = args.dataset_name
    if name.startswith(BUILTIN_PREFIX):
        rows = BUILTIN_DATASETS.get(name.removeprefix(BUILTIN_PREFIX))
        if rows is None:
            available = ", ".join(BUILTIN_PREFIX + key for key in BUILTIN_DATASETS)
            raise ValueError(f"unknown built-in dataset {name!r}; available: {available}")
        return Dataset.from_list(import_dotted(rows, "built-in dataset")() if isinstance(rows, str) else rows()), name
    path = Path(name)
    if path.exists():
        loader = _LOCAL_FORMATS.get(path.suffix.lower())
        if loader is None:
            raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of {sorted(_LOCAL_FORMATS)}")
        if loader == "json" and path.suffix.lower() == ".jsonl":
            _check_json_lines(path)
        try:
            return load_dataset(loader, data_files=str(path), split="train"), str(path)
        except ValueError as error:
            if "no data" in str(error):
                raise ValueError(f"{path}: the dataset is empty") from error
            raise ValueError(f"{path}: could not be read as {loader}: {error}") from error
    if name.endswith(tuple(_LOCAL_FORMATS)):
        raise FileNotFoundError(f"dataset file {name} does not exist")
    return load_dataset(name, args.dataset_config, split=args.dataset_split), f"{name} [{args.dataset_split}]"


def _check_json_lines(path: Path) -> None:
    """Name the first malformed line of a jsonl file (datasets' own error does not)."""
    with path.open(encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: row {line_number}: invalid JSON ({error.msg})") from error
            if not isinstance(row, dict):
                raise ValueError(f"{path}: row {line_number}: expected a JSON object, got {type(row).__name__}")


def _require_column(dataset: Dataset, column: str, source: str, flag: str) -> None:
    if column not in dataset.column_names:
        raise ValueError(
            f"{source}: column {column!r} (from {flag}) not found; available columns: {dataset.column_names}"
        )


def _check_prompts(prompts: list[Any], source: str, column: str) -> None:
    for row, prompt in enumerate(prompts):
        if not prompt or not isinstance(prompt, str | list):
            raise ValueError(f"{source}: row {row}, column {column!r}: empty or invalid prompt {prompt!r}")


def _as_conversation(text: str, system_prompt: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, {"role": "user", "content": text}]


def load_train_dataset(args: DataArguments) -> Dataset:
    """Load, check and map the training set; errors name the source, the row and the column."""
    dataset, source = _load_raw(args)
    if len(dataset) == 0:
        raise ValueError(f"{source}: the dataset is empty")
    _require_column(dataset, args.prompt_column, source, "--prompt_column")
    if args.answer_column is not None:
        _require_column(dataset, args.answer_column, source, "--answer_column")
    if args.max_train_samples is not None:
        dataset = dataset.select(range(min(args.max_train_samples, len(dataset))))
    _check_prompts(dataset[args.prompt_column], source, args.prompt_column)

    dataset = _rename(dataset, args.prompt_column, "prompt")
    if args.answer_column is not None:
        dataset = _rename(dataset, args.answer_column, "answer")
    if args.conversational and isinstance(dataset[0]["prompt"], str):
        system_prompt = args.system_prompt
        dataset = dataset.map(lambda row: {"prompt": _as_conversation(row["prompt"], system_prompt)})
    return dataset


def _rename(dataset: Dataset, source: str, target: str) -> Dataset:
    if source == target:
        return dataset
    if target in dataset.column_names:
        dataset = dataset.remove_columns(target)
    return dataset.rename_column(source, target)
