"""`cipo eval` end to end on a tiny local model, plus --compare and argument errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _eval_helpers import build_tiny_chat_model

from cipo.eval.cli import main

REWARD = "_eval_helpers:exact_match_reward"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("eval-model") / "tiny")


@pytest.fixture(scope="module")
def gsm8k_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval-data") / "gsm8k.test.jsonl"
    records = [
        {"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run_cli(model: Path, data: Path, output: Path, *extra: str) -> int:
    return main(
        [
            "--model",
            str(model),
            "--benchmark",
            "gsm8k",
            "--data",
            str(data),
            "--n",
            "2",
            "--k",
            "1,2",
            "--limit",
            "2",
            "--max-new-tokens",
            "6",
            "--temperature",
            "1.0",
            "--batch-size",
            "4",
            "--reward",
            REWARD,
            "--output",
            str(output),
            "--no-progress",
            "--bootstrap",
            "100",
            *extra,
        ]
    )


def test_tiny_model_end_to_end_with_correction(
    tiny_model: Path, gsm8k_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "run"
    assert run_cli(tiny_model, gsm8k_file, output, "--correction") == 0
    printed = capsys.readouterr().out
    assert "| pass@2 |" in printed and "Acc@t1" in printed and "samples/s" in printed
    for name in ("samples.jsonl", "results.json", "results.md", "pass_at_k.png", "config.json"):
        assert (output / name).stat().st_size > 0, name
    samples = [json.loads(line) for line in (output / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * 2 * 2
    assert all(s["num_tokens"] <= 6 and s["finish_reason"] in ("stop", "length") for s in samples)
    results = json.loads((output / "results.json").read_text())
    assert results["mode"] == "correction" and results["backend"] == "transformers"
    assert results["sampling"]["max_new_tokens"] == 6 and results["sampling"]["temperature"] == 1.0
    assert set(results["correction"]) >= {"acc_t1", "acc_t2", "delta", "wrong_to_right", "right_to_wrong"}
    assert (output / "pass_at_k.png").read_bytes()[:4] == b"\x89PNG"

    # The same command again re-reports from samples.jsonl without loading the model.
    assert run_cli(tiny_model, gsm8k_file, output, "--correction") == 0
    assert len((output / "samples.jsonl").read_text().splitlines()) == 8
    again = json.loads((output / "results.json").read_text())
    assert again["turn1"] == results["turn1"] and again["backend"] is None


def test_compare_two_runs(
    tiny_model: Path, gsm8k_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(tiny_model, gsm8k_file, tmp_path / "a") == 0
    assert run_cli(tiny_model, gsm8k_file, tmp_path / "b", "--seed", "1") == 0
    capsys.readouterr()
    assert (
        main(["--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "cmp")]) == 0
    )
    table = capsys.readouterr().out
    assert "| metric | a | b |" in table and "| pass@2 |" in table
    assert (tmp_path / "cmp" / "compare.md").exists() and (
        tmp_path / "cmp" / "compare_pass_at_k.png"
    ).exists()


def test_errors_are_reported_with_the_culprit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "m", "--benchmark", "gsm8k", "--data", str(tmp_path / "missing.jsonl")]) == 1
    assert "missing.jsonl does not exist" in capsys.readouterr().err
    assert main(["--model", "m", "--benchmark", "gsm8k", "--n", "4", "--k", "1,8"]) == 1
    assert "k values [8] need 1 <= k <= n = 4" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "no hashes"}\n', encoding="utf-8")
    assert main(["--model", "m", "--benchmark", "gsm8k", "--data", str(bad), "--reward", REWARD]) == 1
    assert f"{bad}, line 1: field 'answer'" in capsys.readouterr().err
    assert main(["--compare", str(tmp_path / "nothing")]) == 1
    assert "results.json does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--benchmark", "gsm8k"])  # no --model
    with pytest.raises(SystemExit):
        main(["--model", "m", "--benchmark", "gsm8k", "--correction", "--fix-attempts"])


def test_module_entry_point_runs(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-m", "cipo.eval.cli", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0
    assert "--correction" in result.stdout and "--compare" in result.stdout


def test_transformers_backend_seeds_samples_not_batches(tiny_model: Path) -> None:
    from cipo.eval.generation import GenerationRequest, SamplingConfig, TransformersGenerator

    prompt = [{"role": "user", "content": "What is 2 + 2?"}]
    longer = [{"role": "user", "content": "A much longer question, so that the batch needs left padding?"}]
    sampler = TransformersGenerator(str(tiny_model), SamplingConfig(temperature=1.0, max_new_tokens=8))
    alone = sampler.generate([GenerationRequest(prompt, 123)])
    batched = sampler.generate([GenerationRequest(longer, 5), GenerationRequest(prompt, 123)])
    assert batched[1] == alone[0]
    assert sampler.generate([GenerationRequest(prompt, 124)]) != alone  # another seed, another sample

    greedy = TransformersGenerator(str(tiny_model), SamplingConfig(temperature=0.0, max_new_tokens=8))
    first, second = greedy.generate([GenerationRequest(prompt, 1), GenerationRequest(prompt, 2)])
    assert first == second and first.num_tokens <= 8


def test_fix_provided_attempts_from_a_custom_file(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "debug.jsonl"
    records = [
        {"uid": i, "q": f"Compute {i} * 2.", "gold": 2 * i, "wrong": f"\\boxed{{{i}}}"} for i in (3, 4)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    output = tmp_path / "fix"
    code = main([
        "--model", str(tiny_model), "--benchmark", "custom", "--task", "math", "--data", str(data),
        "--columns", "problem=q,answer=gold,id=uid,attempt=wrong", "--fix-attempts", "--n", "2",
        "--max-new-tokens", "4", "--reward", REWARD, "--output", str(output), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    results = json.loads((output / "results.json").read_text())
    assert results["mode"] == "fix" and results["benchmark"] == "custom" and results["num_problems"] == 2
    assert results["correction"]["acc_t1"] == 0.0 and results["correction"]["num_pairs"] == 4
    ids = {json.loads(line)["id"] for line in (output / "samples.jsonl").read_text().splitlines()}
    assert ids == {"custom/3", "custom/4"}
