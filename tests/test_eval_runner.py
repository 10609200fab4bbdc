"""The evaluation loop with a fake generator: resuming, protocols, failures, seeds, backend selection."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from _eval_helpers import exact_match_reward

from cipo.core.prompts import build_correction_prompt
from cipo.eval.benchmarks import make_prompt
from cipo.eval.generation import (
    Generation,
    GenerationRequest,
    SamplingConfig,
    SeededSampler,
    VLLMGenerator,
    sample_seed,
    select_backend,
)
from cipo.eval.runner import EvalConfig, EvalError, Evaluation, default_ks
from cipo.eval.store import SampleFileError


class FakeGenerator:
    """Answers ``\\boxed{seed % 3}``; counts calls and can fail at a given call to simulate an interruption."""

    backend = "fake"
    default_batch_size = 4

    def __init__(self, fail_at_call: int | None = None) -> None:
        self.calls = 0
        self.requests: list[GenerationRequest] = []
        self.fail_at_call = fail_at_call

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise KeyboardInterrupt
        self.requests += requests
        return [Generation(f"so \\boxed{{{r.seed % 3}}}", 5, "stop") for r in requests]


class NoGenerator(FakeGenerator):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        raise AssertionError(f"nothing should be generated, got {len(requests)} requests")


def make_rows(count: int = 3, attempt: bool = False) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        row = {
            "id": f"gsm8k/{i}",
            "prompt": make_prompt(f"Problem {i}?", "math"),
            "answer": str(i % 3),
            "meta": {},
        }
        if attempt:
            row["attempt"] = f"I think \\boxed{{{(i + 1) % 3}}}"
        rows.append(row)
    return rows


def make_config(output: Path, **overrides: Any) -> EvalConfig:
    settings: dict[str, Any] = {
        "model": "fake-model",
        "benchmark": "gsm8k",
        "n": 4,
        "ks": [1, 2, 4],
        "mode": "correction",
        "output_dir": str(output),
        "progress": False,
        "bootstrap_resamples": 200,
        "reward": "exact-match-test",
    }
    settings.update(overrides)
    return EvalConfig(**settings)


def evaluate(
    output: Path,
    generator: FakeGenerator,
    rows: list[dict[str, Any]] | None = None,
    reward_fn: Any = exact_match_reward,
    **overrides: Any,
) -> dict[str, Any]:
    evaluation = Evaluation(
        make_config(output, **overrides), generator=generator, reward_fn=reward_fn, rows=rows or make_rows()
    )
    return evaluation.run()


def read_samples(output: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (output / "samples.jsonl").read_text().splitlines()]


def test_interrupted_run_resumes_without_recomputing(tmp_path: Path) -> None:
    output = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        evaluate(output, FakeGenerator(fail_at_call=3))
    saved = read_samples(output)
    assert len(saved) == 8  # two batches of 4 written before the interruption

    resumed = FakeGenerator()
    results = evaluate(output, resumed)
    assert resumed.calls == (24 - 8) // 4
    done_seeds = {record["seed"] for record in saved}
    assert not done_seeds & {request.seed for request in resumed.requests}
    samples = read_samples(output)
    assert len(samples) == 24 == len({(s["id"], s["turn"], s["sample"]) for s in samples})

    # Same samples and numbers as a run that was never interrupted.
    fresh = evaluate(tmp_path / "fresh", FakeGenerator())
    key = lambda s: (s["id"], s["turn"], s["sample"])  # noqa: E731
    assert sorted(samples, key=key) == sorted(read_samples(tmp_path / "fresh"), key=key)
    assert results["turn1"] == fresh["turn1"] and results["correction"] == fresh["correction"]


def test_finished_run_reports_again_without_generating(tmp_path: Path) -> None:
    first = evaluate(tmp_path, FakeGenerator())
    again = evaluate(tmp_path, NoGenerator())
    assert again["turn2"] == first["turn2"]
    assert again["throughput_this_run"]["generated_samples"] == 0


def test_more_samples_extend_a_run(tmp_path: Path) -> None:
    evaluate(tmp_path, FakeGenerator(), mode="standard", n=2, ks=[1, 2])
    more = FakeGenerator()
    results = evaluate(tmp_path, more, mode="standard", n=4, ks=[1, 4])
    assert len(more.requests) == 3 * 2 and {r.seed for r in more.requests}.isdisjoint(
        {s["seed"] for s in read_samples(tmp_path)[:6]}
    )
    assert set(results["turn1"]["pass@k"]) == {"1", "4"}


def test_torn_last_line_is_dropped_and_regenerated(tmp_path: Path) -> None:
    evaluate(tmp_path, FakeGenerator(), mode="standard")
    path = tmp_path / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:25])  # killed in the middle of the last write
    again = FakeGenerator()
    evaluate(tmp_path, again, mode="standard")
    assert len(again.requests) == 1
    assert len(read_samples(tmp_path)) == len(lines)


def test_damaged_line_in_the_middle_is_named(tmp_path: Path) -> None:
    evaluate(tmp_path, FakeGenerator(), mode="standard")
    path = tmp_path / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = "garbage\n"
    path.write_text("".join(lines))
    with pytest.raises(SampleFileError, match=rf"{path}, line 5"):
        evaluate(tmp_path, NoGenerator(), mode="standard")


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    evaluate(tmp_path, FakeGenerator(), mode="standard")
    changed = SamplingConfig(temperature=1.0)
    with pytest.raises(
        EvalError, match=r"other settings \(sampling: was .*'temperature': 0.6.*'temperature': 1.0"
    ):
        evaluate(tmp_path, NoGenerator(), mode="standard", sampling=changed)


def test_failing_reward_keeps_generations_for_rescoring(tmp_path: Path) -> None:
    def broken_reward(completions: list[Any], **kwargs: Any) -> list[float]:
        raise RuntimeError("verifier crashed")

    with pytest.raises(EvalError, match=r"reward function failed .*first: gsm8k/0, turn 1.*rerun to score"):
        evaluate(tmp_path, FakeGenerator(), mode="standard", reward_fn=broken_reward)
    saved = read_samples(tmp_path)
    assert len(saved) == 4 and all(record["correct"] is None for record in saved)

    resumed = FakeGenerator()
    results = evaluate(tmp_path, resumed, mode="standard")
    assert len(resumed.requests) == 12 - 4  # the 4 saved generations were scored, not regenerated
    assert results["num_problems"] == 3


def test_correction_turn_asks_to_fix_the_turn1_sample(tmp_path: Path) -> None:
    generator = FakeGenerator()
    results = evaluate(tmp_path, generator)
    samples = {(s["id"], s["turn"], s["sample"]): s for s in read_samples(tmp_path)}
    row = make_rows()[1]
    turn2_request = next(r for r in generator.requests if r.seed == sample_seed(0, "gsm8k/1", 2, 3))
    attempt = samples[("gsm8k/1", 1, 3)]["completion"]
    assert turn2_request.prompt == build_correction_prompt(row["prompt"], attempt)

    pairs = [(samples[(i, 1, j)]["correct"], samples[(i, 2, j)]["correct"]) for i, _, j in samples if _ == 1]
    fixed = sum(1 for a, b in pairs if not a and b) / sum(1 for a, _ in pairs if not a)
    assert results["correction"]["wrong_to_right"] == pytest.approx(fixed)
    turn1_acc = sum(a for a, _ in pairs) / len(pairs)
    assert results["correction"]["acc_t1"] == pytest.approx(turn1_acc)
    assert results["turn1"]["pass@k"]["1"]["mean"] == pytest.approx(turn1_acc)
    assert results["correction"]["delta"] == pytest.approx(results["correction"]["acc_t2"] - turn1_acc)


def test_fix_mode_corrects_the_provided_attempts(tmp_path: Path) -> None:
    generator = FakeGenerator()
    rows = make_rows(attempt=True)
    results = evaluate(tmp_path, generator, rows=rows, mode="fix")
    assert "turn1" not in results and "turn2" in results
    assert len(generator.requests) == 3 * 4
    assert generator.requests[0].prompt == build_correction_prompt(rows[0]["prompt"], rows[0]["attempt"])
    assert results["correction"]["acc_t1"] == 0.0  # every provided attempt is wrong
    assert results["correction"]["right_to_wrong"] is None
    assert {s["turn"] for s in read_samples(tmp_path)} == {2}


def test_fix_mode_needs_attempts(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match=r"mode 'fix' needs an 'attempt'.*gsm8k/0"):
        evaluate(tmp_path, FakeGenerator(), mode="fix")


def test_outputs_and_recorded_settings(tmp_path: Path) -> None:
    results = evaluate(tmp_path, FakeGenerator(), sampling=SamplingConfig(temperature=0.8, top_p=0.9, seed=5))
    assert {p.name for p in tmp_path.iterdir()} >= {
        "samples.jsonl",
        "results.json",
        "results.md",
        "pass_at_k.png",
        "config.json",
    }
    assert results["sampling"] == {"temperature": 0.8, "top_p": 0.9, "max_new_tokens": 1024, "seed": 5}
    assert json.loads((tmp_path / "results.json").read_text())["sampling"]["seed"] == 5
    assert set(results["turn1"]) == {"pass@k", "avg@k", "maj@k"}
    assert results["throughput_this_run"]["generated_samples"] == 24
    table = (tmp_path / "results.md").read_text()
    assert "| pass@4 |" in table and "wrong→right" in table
    record = read_samples(tmp_path)[0]
    assert record["seed"] == sample_seed(5, "gsm8k/0", 1, 0)
    assert set(record) >= {"completion", "reward", "correct", "extracted", "finish_reason", "num_tokens"}


def test_config_validation() -> None:
    with pytest.raises(EvalError, match=r"k values \[8\] need 1 <= k <= n = 4"):
        EvalConfig(model="m", benchmark="gsm8k", n=4, ks=[1, 8])
    with pytest.raises(EvalError, match="custom"):
        EvalConfig(model="m", benchmark="custom")
    assert EvalConfig(model="m", benchmark="gsm8k", n=6).ks == [1, 2, 4, 6]
    assert default_ks(64) == [1, 2, 4, 8, 16, 32, 64]
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)


def test_sample_seeds_are_stable_and_distinct() -> None:
    assert sample_seed(0, "gsm8k/1", 1, 0) == sample_seed(0, "gsm8k/1", 1, 0)
    seeds = {sample_seed(s, p, t, j) for s in (0, 1) for p in ("a", "b") for t in (1, 2) for j in range(8)}
    assert len(seeds) == 64 and all(0 <= s < 2**63 for s in seeds)


# --- generation backends -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "device", "vllm", "gpu", "expected"),
    [
        ("auto", "auto", True, True, "vllm"),
        ("auto", "auto", True, False, "transformers"),
        ("auto", "auto", False, True, "transformers"),
        ("auto", "cpu", True, True, "transformers"),
        ("transformers", "auto", True, True, "transformers"),
        ("vllm", "auto", True, True, "vllm"),
    ],
)
def test_select_backend(requested: str, device: str, vllm: bool, gpu: bool, expected: str) -> None:
    assert select_backend(requested, device=device, vllm_installed=vllm, gpu_available=gpu) == expected


def test_select_backend_errors() -> None:
    with pytest.raises(RuntimeError, match="vLLM is not installed"):
        select_backend("vllm", vllm_installed=False, gpu_available=True)
    with pytest.raises(RuntimeError, match="needs a GPU"):
        select_backend("vllm", vllm_installed=True, gpu_available=False)
    with pytest.raises(ValueError, match="unknown backend"):
        select_backend("tgi")


def test_vllm_generator_sends_one_seeded_request_per_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a stand-in for vLLM's documented API: LLM(...).generate(prompts, [SamplingParams(...)])."""
    created: dict[str, Any] = {}

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class Tokenizer:
        chat_template = "x"

        def apply_chat_template(
            self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
        ) -> str:
            return "".join(m["content"] for m in messages) + "<a>"

        def encode(self, text: str, add_special_tokens: bool) -> list[int]:
            created["add_special_tokens"] = add_special_tokens
            return [len(text)]

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            created["llm"] = kwargs

        def get_tokenizer(self) -> Tokenizer:
            return Tokenizer()

        def generate(
            self, prompts: list[dict[str, Any]], params: list[SamplingParams], use_tqdm: bool
        ) -> list:
            created["prompts"], created["params"] = prompts, params
            completion = types.SimpleNamespace(text="ok", token_ids=[1, 2], finish_reason="length")
            return [types.SimpleNamespace(outputs=[completion]) for _ in prompts]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    generator = VLLMGenerator(
        "some/model", SamplingConfig(temperature=0.7, top_p=0.9, max_new_tokens=32, seed=3)
    )
    out = generator.generate(
        [GenerationRequest([{"role": "user", "content": "hi"}], 11), GenerationRequest("x", 12)]
    )
    assert created["llm"] == {"model": "some/model", "dtype": "auto", "seed": 3}
    assert created["prompts"] == [{"prompt_token_ids": [len("hi<a>")]}, {"prompt_token_ids": [1]}]
    assert created["add_special_tokens"] is False
    assert [p.kwargs for p in created["params"]] == [
        {"n": 1, "temperature": 0.7, "top_p": 0.9, "max_tokens": 32, "seed": seed} for seed in (11, 12)
    ]
    assert out == [Generation("ok", 2, "length")] * 2


def test_seeded_sampler_draws_do_not_depend_on_the_batch() -> None:
    import torch

    logits = torch.randn(1, 50)
    alone = SeededSampler([42], 1.0, 0.9)(None, logits.clone()).argmax(-1)
    batched = SeededSampler([7, 42, 9], 1.0, 0.9)(None, logits.repeat(3, 1)).argmax(-1)
    assert batched[1] == alone[0]
    one_hot = SeededSampler([1], 1.0, 1.0)(None, logits.clone())
    assert torch.isfinite(one_hot).sum() == 1


def test_seeded_sampler_follows_the_distribution_and_top_p() -> None:
    import torch

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    sampler = SeededSampler([0], 1.0, 0.7)
    draws = [int(sampler(None, logits.clone()).argmax()) for _ in range(2000)]
    assert set(draws) == {0, 1}  # 0.5 + 0.3 reaches top_p: tokens 2 and 3 are cut
    assert 0.55 < draws.count(0) / len(draws) < 0.70  # 0.5 / 0.8 = 0.625


def test_store_keeps_completions_on_disk_and_reads_them_back(tmp_path: Path) -> None:
    from cipo.eval.store import SampleStore

    path = tmp_path / "samples.jsonl"
    store = SampleStore(path)
    store.append(
        [
            {"id": "a", "turn": 1, "sample": 0, "completion": "é∑ multi-byte \\boxed{1}"},
            {"id": "b", "turn": 1, "sample": 0, "completion": "x"},
        ]
    )
    store.append([{"id": "a", "turn": 2, "sample": 0, "completion": "third", "correct": True}])
    assert "completion" not in store.get(("a", 1, 0))
    for each in (store, SampleStore(path)):
        assert each.completion(("a", 1, 0)) == "é∑ multi-byte \\boxed{1}"
        assert each.completion(("a", 2, 0)) == "third"
        assert each.full_record(("a", 2, 0))["correct"] is True
