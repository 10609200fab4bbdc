"""benchmarks/train_throughput.py: the step breakdown partitions the step, and a tiny end-to-end run instruments
the current trainer (two loss calls per micro-batch, no merged padding)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"
TIME_ROWS = (
    "generation",
    "correction_generation",
    "reward",
    "logprobs",
    "correction_logprobs",
    "optimization",
    "grpo_other",
    "machinery",
)
MACHINERY_ROWS = (
    "selection",
    "prompt_building",
    "extra_scoring",
    "correction_bookkeeping",
    "advantages",
    "other_machinery",
    "stratified_chunking",
    "loss_bookkeeping",
)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _cipo_raw() -> dict[str, float]:
    """One CIPO step's raw sections as the wrappers record them (seconds), nested as they nest at run time."""
    return {
        "step": 10.0,
        "prepare_inputs": 6.0,
        "generate_and_score": 5.5,
        "originals_chunking": 0.1,
        "cipo_chunk_calls": 2,
        "generation": 2.0,
        "reward": 0.2,
        "logprobs": 0.3,
        "cipo_tail": 2.5,
        "selection": 0.05,
        "prompt_building": 0.1,
        "correction_phase": 2.0,
        "correction_generation": 1.5,
        "correction_logprobs": 0.1,
        "extra_scoring": 0.2,
        "advantages": 0.05,
        "loss_total": 2.0,
        "loss_forward": 1.0,
        "correction_loss_forward": 0.9,
    }


def test_time_rows_partition_the_step(bench: ModuleType) -> None:
    figures = bench.derive_step(_cipo_raw())
    assert sum(figures[row] for row in TIME_ROWS) == pytest.approx(figures["step"])
    assert sum(figures[row] for row in MACHINERY_ROWS) == pytest.approx(figures["machinery"])
    parts = figures["loss_forward"] + figures["correction_loss_forward"] + figures["backward_and_step"]
    assert parts == pytest.approx(figures["optimization"])
    # What the raw sections imply: chunking beyond the originals, loss calls' remainder, the parent's leftovers.
    assert figures["stratified_chunking"] == pytest.approx(0.4)
    assert figures["loss_bookkeeping"] == pytest.approx(0.1)
    assert figures["correction_bookkeeping"] == pytest.approx(0.2)
    assert figures["other_machinery"] == pytest.approx(0.3)
    assert figures["backward_and_step"] == pytest.approx(2.0)
    assert figures["grpo_other"] == pytest.approx(0.6)


def test_grpo_step_has_no_machinery(bench: ModuleType) -> None:
    raw = {"step": 4.0, "prepare_inputs": 2.0, "generate_and_score": 1.8, "generation": 1.5, "loss_total": 1.0}
    raw["loss_forward"] = 0.99  # CIPO's pass-through to the parent's loss counts as the originals' loss
    figures = bench.derive_step(raw)
    assert figures["machinery"] == 0
    assert figures["loss_forward"] == pytest.approx(1.0)
    assert sum(figures[row] for row in TIME_ROWS) == pytest.approx(4.0)


def test_positions_check_reports_a_mismatch(bench: ModuleType) -> None:
    assert bench.positions_check(Counter(trained_positions=12, batch_positions=12))[0]
    ok, message = bench.positions_check(Counter(trained_positions=14, batch_positions=12))
    assert not ok and "MISMATCH" in message


def test_tiny_run_instruments_the_current_trainer(bench: ModuleType, capsys: pytest.CaptureFixture) -> None:
    argv = "--steps 1 --warmup 0 --batch_size 8 --max_completion_length 6 --hidden_size 32 --layers 2"
    assert bench.main([*argv.split(), "--correction_anchor_fraction", "0.25"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    grpo, cipo = summary["grpo"], summary["cipo"]
    assert summary["positions_match"] is True
    assert summary["correction_generate_calls_per_step"] == 1
    assert cipo["correction_loss_forward"] > 0 and grpo["correction_loss_forward"] == 0
    assert 0 < cipo["correction_trained_tokens"] < cipo["trained_tokens"]
    assert cipo["trained_positions"] == cipo["batch_positions"] > grpo["trained_positions"]
    assert cipo["machinery"] > 0 and grpo["machinery"] == 0
    for run in (grpo, cipo):
        assert sum(run[row] for row in TIME_ROWS) == pytest.approx(run["step"], rel=1e-3)
    assert summary["machinery_overhead"] == pytest.approx(1 + cipo["machinery"] / grpo["step"], abs=1e-4)
    assert summary["step_time_ratio"] == pytest.approx(cipo["step"] / grpo["step"], abs=1e-4)
