"""`cipo report`: report.md and plots from a `cipo train` output folder (synthetic folders, and one real run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cipo.cli import main
from cipo.train_report import CONFIG_FILE, STATE_FILE, ReportError, load_run, write_report

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_arithmetic.yaml"
CORRECTION_PNGS = ("correction_rates.png", "replay_ratio.png")


def _entry(step: int, correction: bool = True, retention: bool = True) -> dict:
    entry = {"step": step, "loss": 0.01 * step, "reward": 0.1 * step}
    if correction:
        entry |= {"correction/success_rate": 0.05 * step, "correction/fix_rate": 0.02 * step,
                  "correction/replay_ratio": 0.25, "correction/num_anchors": 4.0}  # fmt: skip
        if retention:
            entry |= {"correction/retention": 0.9, "correction/break_rate": 0.1}
    return entry


def _write_state(folder: Path, history: list[dict], global_step: int, max_steps: int = 10) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {"global_step": global_step, "max_steps": max_steps, "log_history": history}
    (folder / STATE_FILE).write_text(json.dumps(state))


def test_grpo_run_says_what_is_missing_and_draws_no_empty_plot(tmp_path: Path) -> None:
    _write_state(tmp_path, [_entry(step, correction=False) for step in (1, 2, 3)], global_step=3)
    (tmp_path / CONFIG_FILE).write_text(
        json.dumps({"training": {"use_correction": False}, "cipo_fields": []})
    )
    text = write_report(tmp_path).read_text()
    assert (tmp_path / "reward.png").stat().st_size > 0
    assert not any((tmp_path / png).exists() for png in CORRECTION_PNGS)
    assert "plain GRPO" in text and "`correction/retention`" in text.split("Not logged in this run:")[1]
    assert "correction_rates.png" not in text and "![Training reward](reward.png)" in text
    assert "steps: 3 of 10" in text


def test_retention_never_logged_is_said_plainly(tmp_path: Path) -> None:
    _write_state(tmp_path, [_entry(step, retention=False) for step in (1, 2)], global_step=2)
    text = write_report(tmp_path).read_text()
    missing = text.split("Not logged in this run:")[1].split("\n")[0]
    assert "`correction/retention`" in missing and "`correction/break_rate`" in missing
    assert "`correction/fix_rate`" not in missing
    assert all((tmp_path / png).exists() for png in CORRECTION_PNGS)
    assert f"No {CONFIG_FILE}" in text  # synthetic folder: no configuration was recorded


def test_newest_checkpoint_is_read_when_training_did_not_finish(tmp_path: Path) -> None:
    history = [_entry(step) for step in range(1, 13)]
    _write_state(tmp_path / "checkpoint-5", history[:5], global_step=5)
    _write_state(tmp_path / "checkpoint-12", history, global_step=12)
    _write_state(tmp_path / "checkpoint-9", history[:9], global_step=9)
    run = load_run(tmp_path)
    assert run.state_path == tmp_path / "checkpoint-12" / STATE_FILE
    text = write_report(tmp_path).read_text()
    assert "read from `checkpoint-12/trainer_state.json`" in text and "steps: 12 of 10" in text
    assert "did not finish" in text  # no closing train_runtime entry in this history
    # summary row of the reward: 12 logged steps, first 0.1, last 1.2
    assert "| mean rollout reward | `reward` | 12 | 0.1 | 1.2 |" in text


def test_long_runs_get_a_thinned_table(tmp_path: Path) -> None:
    _write_state(tmp_path, [_entry(step) for step in range(1, 101)], global_step=100, max_steps=100)
    text = write_report(tmp_path).read_text()
    table = text.split("## Logged steps")[1].split("## Configuration")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert 10 <= len(rows) <= 21 and rows[-1].startswith("| 100 |")


def test_bad_folders_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReportError, match="no such directory"):
        write_report(tmp_path / "absent")
    (tmp_path / "checkpoint-3").mkdir()
    with pytest.raises(ReportError, match=rf"{tmp_path}: no trainer_state.json.*checkpoint"):
        write_report(tmp_path)
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(ReportError, match=rf"{tmp_path / STATE_FILE}: not readable as JSON"):
        write_report(tmp_path)
    (tmp_path / STATE_FILE).write_text(json.dumps({"global_step": 1}))
    with pytest.raises(ReportError, match="no 'log_history'"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path / "absent")]) == 1
    assert "cipo report: error:" in capsys.readouterr().err


def test_train_then_report_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "run"
    code = main(
        ["train", "--config", str(EXAMPLE), "--model_name_or_path", "builtin:tiny-llama",
         "--output_dir", str(output), "--max_steps", "2", "--per_device_train_batch_size", "8",
         "--num_generations", "4", "--max_completion_length", "8", "--correction_anchor_fraction", "0.25",
         "--use_correction", "true", "--use_cpu", "true", "--bf16", "false", "--save_strategy", "no",
         "--report_to", "none", "--logging_steps", "1"]
    )  # fmt: skip
    assert code == 0
    assert f"Report: cipo report {output}" in capsys.readouterr().out
    record = json.loads((output / CONFIG_FILE).read_text())
    assert (
        record["finished_at"] >= record["started_at"]
        and "correction_anchor_fraction" in record["cipo_fields"]
    )

    assert main(["report", str(output)]) == 0
    text = (output / "report.md").read_text()
    for png in ("reward.png", *CORRECTION_PNGS):
        assert (output / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in text
    for section in ("## Steps and wall time", "## Metrics over steps", "## Logged steps", "## Configuration"):
        assert section in text
    history = json.loads((output / STATE_FILE).read_text())["log_history"]
    anchors = [entry["correction/num_anchors"] for entry in history if "correction/num_anchors" in entry]
    assert (
        len(anchors) == 2 and f"| anchors per step | `correction/num_anchors` | 2 | {anchors[0]:g} |" in text
    )
    assert "steps: 2 of 2" in text and "| `correction_anchor_fraction` | `0.25` |" in text
    assert f"{record['finished_at'] - record['started_at']:.1f} s" in text
