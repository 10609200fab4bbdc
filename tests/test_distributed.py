"""Two CPU processes under ``accelerate launch`` with the DDP recipe, corrections on: the run completes, both ranks
train on corrections, and the anchor count is the two-process one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_two_cpu_processes(recipe: str, model_dir: Path, output: Path) -> list[dict]:
    """``accelerate launch`` the arithmetic recipe on 2 CPU processes; the logged steps with correction metrics."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ROOT / "examples" / "accelerate" / recipe),
        "--num_processes", "2",
        "--mixed_precision", "no",
        "--main_process_port", str(free_port()),
        "-m", "cipo.cli", "train",
        "--config", str(ROOT / "examples" / "train_arithmetic.yaml"),
        "--model_name_or_path", str(model_dir),
        "--per_device_train_batch_size", "8",
        "--max_completion_length", "12",
        "--max_steps", "2",
        "--bf16", "false",
        "--save_strategy", "steps",
        "--save_steps", "2",
        "--disable_tqdm", "true",
        "--output_dir", str(output),
    ]  # fmt: skip
    # `accelerate launch --cpu` starts a single process; without a GPU, the DDP config's launcher (torchrun)
    # starts two and the recipe's use_cpu makes them a gloo group on the CPU.
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    history = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    return [entry for entry in history if "correction/num_anchors" in entry]


def test_ddp_recipe_runs_cipo_on_two_cpu_processes(tiny_model_dir: Path, tmp_path: Path) -> None:
    steps = run_two_cpu_processes("ddp.yaml", tiny_model_dir, tmp_path / "ddp")
    assert len(steps) == 2
    for entry in steps:
        # 2 processes x 8 rows = 16 rollouts; 0.125 of them = 2 anchors, a multiple of the unit 2 x 1 / gcd(4, 1).
        assert entry["correction/num_anchors"] == 2
        assert entry["correction/completions/mean_length"] > 0  # the corrections were generated
    # Each step drew 2 ranks x 8 rows / 4 generations = 4 of the 256 prompts: both ranks took part.
    assert steps[-1]["epoch"] == pytest.approx(2 * 4 / 256)


@pytest.mark.slow
def test_fsdp2_recipe_runs_cipo_on_two_cpu_processes(tiny_model_dir: Path, tmp_path: Path) -> None:
    # FSDP2 (gloo, CPU): every rank must make the same model calls, or the sharded all-gathers hang.
    steps = run_two_cpu_processes("fsdp2.yaml", tiny_model_dir, tmp_path / "fsdp2")
    assert len(steps) == 2
    for entry in steps:
        assert entry["correction/num_anchors"] == 2
        assert entry["correction/completions/mean_length"] > 0
