"""`cipo train` end to end on the shipped example config, with a tiny model and overrides."""

import json
from pathlib import Path

import pytest

from cipo.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_arithmetic.yaml"


def test_train_example_config_runs(tiny_model_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    code = main(
        ["train", "--config", str(EXAMPLE), "--model_name_or_path", str(tiny_model_dir),
         "--output_dir", str(output), "--max_steps", "2", "--per_device_train_batch_size", "8",
         "--max_completion_length", "8", "--correction_anchor_fraction", "0.25"]
    )  # fmt: skip
    assert code == 0
    assert (output / "config.json").exists() and (output / "model.safetensors").exists()
    history = json.loads((output / "trainer_state.json").read_text())["log_history"]
    assert any(entry.get("correction/num_anchors", 0) > 0 for entry in history)


def test_unknown_field_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("model_name_or_path: builtin:tiny-llama\nuse_cpu: true\ncorection_weight: 0.5\n")
    with pytest.raises(ValueError, match="corection_weight"):
        main(["train", "--config", str(config)])
    with pytest.raises(ValueError, match="no_such_flag"):
        main(["train", "--config", str(EXAMPLE), "--no_such_flag", "1"])


def test_bad_value_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CIPOConfig.risk_penalty"):
        main(["train", "--config", str(EXAMPLE), "--risk_penalty", "-1"])


def test_missing_column_is_reported(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    with pytest.raises(ValueError, match="column 'prompt'"):
        main(["train", "--config", str(EXAMPLE), "--model_name_or_path", str(tiny_model_dir),
              "--dataset_name", str(data), "--output_dir", str(tmp_path / "o")])  # fmt: skip


def test_usage() -> None:
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert main(["frobnicate"]) == 2
