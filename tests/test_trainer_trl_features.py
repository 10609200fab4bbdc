"""CIPO with corrections on, through TRL's real generation path, for the features TRL's own tests cover only with
mocked ``generate`` calls: ``mask_truncated_completions``, ``tools`` and ``environment_factory``.

The tiny random model (character tokenizer, TRL's Qwen2.5 chat template so TRL accepts it for tool calling) will
not write valid tool calls; these tests check that the path runs and that correction rows are built as intended.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from test_trainer import PROMPTS, hash_reward, tiny_args
from transformers import AutoTokenizer
from trl_suite.standins import save_qwen_char_model

from cipo import CIPOTrainer
from cipo.trainer import CORRECTIONS

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.fixture(scope="module")
def qwen_char_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("qwen-char")
    save_qwen_char_model(folder)
    return folder


def make_trainer(model_dir: Path, tmp_path: Path, train_dataset: Dataset | None = None, **kwargs):  # noqa: ANN003, ANN201
    """A CIPO trainer (2 of 8 rollouts become anchors, 2 corrections each); ``kwargs`` split into config/trainer."""
    trainer_keys = {"tools", "environment_factory", "reward_funcs"}
    trainer_kwargs = {key: kwargs.pop(key) for key in list(kwargs) if key in trainer_keys}
    trainer_kwargs.setdefault("reward_funcs", [hash_reward])
    torch.manual_seed(0)
    trainer = CIPOTrainer(
        model=str(model_dir),
        args=tiny_args(tmp_path, **kwargs),
        train_dataset=train_dataset,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        **trainer_kwargs,
    )
    trainer.model.train()
    return trainer


def generation_batch(trainer: CIPOTrainer, rows: list[dict]) -> tuple[dict, dict]:
    batch = trainer._generate_and_score_completions(rows)
    assert CORRECTIONS in batch, "no correction rows were generated"
    return batch, batch[CORRECTIONS]


def prompt_rows() -> list[dict]:
    return [{"prompt": PROMPTS[p], "answer": str(p)} for p in (0, 1) for _ in range(4)]


def assert_truncated_rows_masked(trainer: CIPOTrainer, rows: dict) -> int:
    """Every completion without EOS has a zero mask; returns how many were truncated."""
    eos = trainer.processing_class.eos_token_id
    truncated = ~(rows["completion_ids"] == eos).any(dim=1)
    assert torch.all(rows["completion_mask"][truncated].sum(dim=1) == 0)
    return int(truncated.sum())


def test_mask_truncated_completions_masks_originals_and_corrections(
    qwen_char_model: Path, tmp_path: Path
) -> None:
    trainer = make_trainer(
        qwen_char_model, tmp_path, Dataset.from_list(prompt_rows()), mask_truncated_completions=True
    )
    batch, corrections = generation_batch(trainer, prompt_rows())
    assert corrections["completion_ids"].shape[0] == 2 * 2  # 2 anchors x correction_num_generations
    # Six tokens from a random model almost never end with EOS: the masks are the thing under test.
    assert assert_truncated_rows_masked(trainer, batch) > 0
    assert assert_truncated_rows_masked(trainer, corrections) > 0
    assert corrections["num_items_in_batch"].item() == corrections["completion_mask"].sum().item()


def multiply(a: int, b: int) -> int:
    """
    Multiplies two integers.

    Args:
        a: The first integer.
        b: The second integer.

    Returns:
        The product.
    """
    return a * b


def test_tools_path_builds_corrections(qwen_char_model: Path, tmp_path: Path) -> None:
    trainer = make_trainer(qwen_char_model, tmp_path, Dataset.from_list(prompt_rows()), tools=[multiply])
    batch, corrections = generation_batch(trainer, prompt_rows())
    assert batch["completion_ids"].shape[0] == 8
    assert corrections["completion_ids"].shape[0] == 4
    assert "tool_mask" not in batch or batch["tool_mask"].shape == batch["completion_mask"].shape
    trainer.train()  # one optimizer step through the joint loss with tools enabled
    assert trainer.state.log_history[0]["correction/num_anchors"] == 2


class CounterEnvironment:
    """An environment that owns the prompt: ``reset`` returns it; one tool, ``increment``."""

    def reset(self, **kwargs) -> str:  # noqa: ANN003
        self.counter = 0
        return "Count to three."

    def increment(self, step: int) -> int:
        """
        Add a step to the counter.

        Args:
            step: Value to add to the counter.

        Returns:
            The counter's new value.
        """
        self.counter += step
        return self.counter


def test_environment_factory_without_prompt_column(qwen_char_model: Path, tmp_path: Path) -> None:
    # No train_dataset: TRL drives the loop with placeholder rows and the prompt comes from reset().
    trainer = make_trainer(qwen_char_model, tmp_path, environment_factory=CounterEnvironment, max_steps=1)
    trainer.train()
    logged = trainer.state.log_history[0]
    assert logged["correction/num_anchors"] == 2
    assert "correction/reward" in logged


def test_multiple_environments_with_environment_column(qwen_char_model: Path, tmp_path: Path) -> None:
    # The dataset routes rows to environments and carries no prompt column (TRL's multi-environment shape).
    dataset = Dataset.from_list([{"environment": name} for name in ("first", "second") * 8])
    factories = {"first": CounterEnvironment, "second": CounterEnvironment}
    trainer = make_trainer(qwen_char_model, tmp_path, dataset, environment_factory=factories)
    trainer.train()
    assert trainer.state.log_history[0]["correction/num_anchors"] == 2
