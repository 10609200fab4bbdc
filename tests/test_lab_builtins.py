"""The lab's warm start and problems as built-in names of ``cipo train`` (``cipo.lab.builtins``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cipo import builtin_models
from cipo.builtin_models import resolve_model
from cipo.data import DataArguments, load_train_dataset
from cipo.lab import builtins
from cipo.lab.compare import rl_problem_pool
from cipo.lab.config import quick, tiny
from cipo.lab.task_api import get_task

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "train_lab_math.yaml"


def test_lab_math_is_the_labs_training_pool_and_never_its_test_split() -> None:
    config = quick()
    task = get_task(config.task.name)
    test = task.make_test_split(config.task)
    pool = rl_problem_pool(config, task, test)
    dataset = load_train_dataset(DataArguments(dataset_name="builtin:lab-math"))

    assert len(dataset) == len(pool) == 40 * 3 * 8  # steps x max_equal_token_factor x prompts_per_step
    assert dataset[0] == {"prompt": [{"role": "user", "content": pool[0].text}], "answer": str(pool[0].answer)}
    test_prompts = {problem.text for problem in test}
    assert not test_prompts & {row["prompt"][0]["content"] for row in dataset}


def test_unknown_builtin_dataset_lists_both() -> None:
    with pytest.raises(ValueError, match="builtin:arithmetic, builtin:lab-math"):
        load_train_dataset(DataArguments(dataset_name="builtin:chess"))


def test_warm_start_is_trained_once_then_taken_from_the_cache(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    first = builtins.warm_start_path("tiny", cache_dir=tmp_path)
    assert "trained" in capsys.readouterr().err
    second = builtins.warm_start_path("tiny", cache_dir=tmp_path)
    assert first == second and "trained" not in capsys.readouterr().err
    assert Path(first).parent == tmp_path and (Path(first) / "config.json").exists()
    assert json.loads((Path(first) / "warm_start.json").read_text())["parameters"] > 0


def test_builtin_warm_start_is_the_one_the_lab_trains(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    # The README: "the same one make lab trains". The lab calls load_or_train_warm_start with its preset's sections.
    from cipo.lab.warmstart import load_or_train_warm_start

    config = tiny()
    lab_path, _ = load_or_train_warm_start(config.task, config.model, config.warm_start, tmp_path, False)
    capsys.readouterr()
    assert builtins.warm_start_path("tiny", cache_dir=tmp_path) == str(lab_path)
    assert "trained" not in capsys.readouterr().err


def test_warm_start_cache_follows_the_environment(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(builtins.CACHE_ENV, str(tmp_path))
    assert Path(builtins.warm_start_path("tiny")).parent == tmp_path


def test_builtin_model_name_resolves_through_the_lab(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    calls = []
    monkeypatch.setattr(builtins, "warm_start_path", lambda: calls.append(1) or str(tmp_path))
    assert resolve_model("builtin:lab-warm-start") == str(tmp_path)
    assert calls == [1]
    assert "lab-warm-start" in builtin_models.BUILTIN_NAMES


def test_the_example_trains_with_the_labs_rl_settings() -> None:
    from test_recipes import parse_cipo_args

    data_args, args, model_args = parse_cipo_args(["--config", str(EXAMPLE)])
    rl = quick().rl
    assert model_args.model_name_or_path == "builtin:lab-warm-start"
    assert data_args.dataset_name == "builtin:lab-math"
    assert args.per_device_train_batch_size == rl.prompts_per_step * rl.num_generations
    assert (args.num_generations, args.learning_rate, args.max_completion_length) == (
        rl.num_generations, rl.learning_rate, rl.max_completion_length,
    )
    assert (args.correction_num_generations, args.correction_anchor_fraction, args.beta) == (
        rl.correction_num_generations, rl.correction_anchor_fraction, 0.0,
    )
    assert tiny().rl.steps < args.max_steps


@pytest.mark.slow
def test_the_example_learns(tmp_path: Path) -> None:
    """The README's first training example: reward rises over its 20 steps (trains the warm start if uncached)."""
    output = tmp_path / "run"
    env = {**os.environ, builtins.CACHE_ENV: os.environ.get(builtins.CACHE_ENV, str(ROOT / "runs" / "cache"))}
    subprocess.run([sys.executable, "-m", "cipo.cli", "train", "--config", str(EXAMPLE), "--output_dir", str(output)],
                   check=True, cwd=ROOT, env=env, timeout=1800)
    history = json.loads((output / "trainer_state.json").read_text())["log_history"]
    rewards = [entry["reward"] for entry in history if "reward" in entry]
    assert len(rewards) == 20
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.05
