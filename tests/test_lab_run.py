"""A micro lab run (the tiny preset, a couple of steps): every phase runs, the report has every section, the warm
start is cached, and the same seed gives the same numbers."""

from __future__ import annotations

import json

import pytest

from cipo.lab.cli import main
from cipo.lab.config import LabConfig, apply_override, quick, smol, tiny

REPORT_SECTIONS = ("## Results", "### Every seed", "## Plots", "## What ran", "## Examples",
                   "## Timings and versions", "## Exact configuration")
PLOTS = ("training_reward.png", "correction_metrics.png", "pass_at_k.png", "self_correction.png")


def run_tiny(tmp_path, name: str, cache: str = "cache"):
    output = tmp_path / name
    assert main(["--preset", "tiny", "--output-dir", str(output), "--cache-dir", str(tmp_path / cache),
                 "--no-progress"]) == 0
    (run_dir,) = output.glob("lab-*")
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def without_timings(value: object) -> object:
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items() if key != "train_seconds"}
    return [without_timings(item) for item in value] if isinstance(value, list) else value


def numbers(metrics: dict) -> dict:
    """Everything that must be reproducible: evaluations and training curves, not timings."""
    return {"warm": metrics["warm_start"]["eval"], "runs": without_timings(metrics["runs"])}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs sharing a warm-start cache, and a third that trains its warm start again."""
    tmp_path = tmp_path_factory.mktemp("lab")
    return run_tiny(tmp_path, "first"), run_tiny(tmp_path, "second"), run_tiny(tmp_path, "third", cache="cache2")


def test_micro_run_writes_a_complete_report(runs):
    (run_dir, metrics), _, _ = runs
    report = (run_dir / "report.md").read_text()
    for section in REPORT_SECTIONS:
        assert section in report
    for plot in PLOTS:
        assert (run_dir / plot).stat().st_size > 1000
        assert f"({plot})" in report
    for model in ("Warm start", "GRPO", "CIPO", "GRPO, equal tokens"):
        assert f"| {model} |" in report
    run = metrics["runs"][0]
    assert run["grpo"]["steps"] == run["cipo"]["steps"] == 2
    assert run["cipo"]["generated_tokens"] > run["grpo"]["generated_tokens"]
    assert run["grpo_equal_tokens"]["generated_tokens"] >= run["cipo"]["generated_tokens"] or (
        run["grpo_equal_tokens"]["steps"] == 4  # the equal-token run may hit its step cap
    )
    assert any("correction/num_anchors" in entry for entry in run["cipo"]["history"])
    evaluation = run["cipo"]["eval"]
    assert list(evaluation["pass_at_k"]) == ["1", "2", "3", "4"]
    assert set(evaluation["self_correction"]) >= {"acc_t1", "acc_t2", "delta", "wrong_to_right", "right_to_wrong"}
    assert metrics["environment"]["trl"] and 0 < metrics["peak_memory_mib"]["lab_process"] < 4096
    assert not (run_dir / "trainer").exists()


def test_same_seed_same_numbers_and_cached_warm_start(runs):
    (_, first), (_, second), (_, third) = runs
    assert first["warm_start"]["cached"] is False and second["warm_start"]["cached"] is True
    assert third["warm_start"]["cached"] is False
    assert numbers(first) == numbers(second) == numbers(third)
    assert first["warm_start"]["losses"] == third["warm_start"]["losses"]


def test_report_can_be_rebuilt(runs):
    (run_dir, _), _, _ = runs
    (run_dir / "report.md").unlink()
    assert main(["--report-only", str(run_dir)]) == 0
    assert "## Results" in (run_dir / "report.md").read_text()


def test_report_has_the_claims_table_from_stored_per_problem_results(runs):
    (run_dir, metrics), _, _ = runs
    evaluation = metrics["runs"][0]["cipo"]["eval"]
    assert len(evaluation["correct_counts"]) == len(evaluation["correction_counts"]) == metrics["test_problems"]
    assert metrics["test_problems"] == 4 + 2  # tiny: base problems and the hard tail
    assert {row["claim"] for row in metrics["claims"]} == {"C1", "C2", "C3"}
    assert all(row["verdict"] == "undecided" for row in metrics["claims"])  # one seed decides nothing
    report = (run_dir / "report.md").read_text()
    assert "## Claims" in report and "## Ablations" not in report and metrics["ablation"] == []


@pytest.mark.slow
def test_ablate_trains_every_variant_and_writes_the_table(tmp_path):
    from cipo.lab.ablation import GRPO_VARIANT, VARIANTS

    assert main(["--preset", "tiny", "--ablate", "--output-dir", str(tmp_path / "out"), "--cache-dir",
                 str(tmp_path / "cache"), "--no-progress"]) == 0
    (run_dir,) = (tmp_path / "out").glob("lab-*")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert list(metrics["runs"][0]["ablations"]) == list(VARIANTS)
    assert [row["variant"] for row in metrics["ablation"]] == [GRPO_VARIANT, *VARIANTS]
    assert "## Ablations" in (run_dir / "report.md").read_text()


def test_overrides_and_presets():
    config = quick()
    apply_override(config, "rl.steps=7")
    apply_override(config, "task.levels=1,3")
    apply_override(config, "rl.adaptive_replay=false")
    apply_override(config, "seeds=3")
    assert (config.rl.steps, config.task.levels, config.rl.adaptive_replay, config.seeds) == (7, (1, 3), False, 3)
    with pytest.raises(ValueError, match="unknown field"):
        apply_override(config, "rl.nope=1")
    with pytest.raises(ValueError, match="section"):
        apply_override(config, "nope.steps=1")
    assert isinstance(tiny(), LabConfig) and quick().eval.num_samples >= 64


def test_a_pretrained_start_replaces_the_warm_start(tmp_path):
    """warm_start.pretrained: no tiny model is built or trained, every run starts from the given model, and the report
    calls it the base model; n = 3 samples give a pass@3 column, not pass@64."""
    from tiny_models import save_tiny_model

    pretrained = save_tiny_model(tmp_path / "pretrained")
    assert main(["--preset", "tiny", "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
                 "--no-progress", "--set", f"warm_start.pretrained={pretrained}", "--set", "rl.trainable_layers=1",
                 "--set", "eval.num_samples=3", "--set", "task.instruction=Be brief."]) == 0
    assert not (tmp_path / "cache").exists()  # nothing was trained or cached
    (run_dir,) = (tmp_path / "out").glob("lab-*")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    warm = metrics["warm_start"]
    assert (warm["pretrained"], warm["path"], warm["losses"], warm["num_layers"]) == (str(pretrained),
                                                                                      str(pretrained), [], 2)
    report = (run_dir / "report.md").read_text()
    assert "| Base model | 0 (pretrained) |" in report and "| Warm start |" not in report
    assert f"the pretrained `{pretrained}`" in report and "top 1 decoder layers and final norm" in report
    assert "| pass@3 |" in report and "pass@64" not in report
    assert "followed by the instruction `Be brief.`" in report
    assert "- **Trained − base model, pass@1** (points, 95% CI over problems): GRPO " in report
    assert metrics["runs"][0]["cipo"]["steps"] == 2


def test_the_smol_preset_is_the_real_model_on_a_task_it_sometimes_solves():
    config = smol()
    assert config.warm_start.pretrained == "builtin:smollm2-135m-instruct"
    assert (config.task.levels, config.task.hard_levels, config.rl.trainable_layers) == ((0,), (1,), 2)
    assert "\\boxed{}" in config.task.instruction
    assert main(["--preset", "smol", "--show-config"]) == 0


def test_show_config(capsys):
    assert main(["--show-config", "--seeds", "2", "--set", "eval.num_samples=128"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["seeds"] == 2 and shown["eval"]["num_samples"] == 128 and shown["preset"] == "quick"


@pytest.mark.slow
def test_quick_warm_start_is_in_the_target_band():
    """The quick preset's warm start (trained, or reused from runs/cache) solves some problems, not most, and its
    reviews fix some of its near misses."""
    from pathlib import Path

    from cipo.lab.evaluate import evaluate
    from cipo.lab.tasks import make_test_split
    from cipo.lab.warmstart import load_model, load_or_train_warm_start

    config = quick()
    path, _ = load_or_train_warm_start(config.task, config.model, config.warm_start, Path(config.cache_dir), False)
    model, tokenizer = load_model(path)
    evaluation = evaluate(model, tokenizer, make_test_split(config.task), config.eval, show_progress=False)
    assert 0.15 <= evaluation.pass_at_k[1] <= 0.6
    assert evaluation.pass_at_k[64] <= 0.9  # the hard tail: some problems no sample solves
    assert evaluation.correction["wrong_to_right"] > 0.2


def test_an_interrupted_run_keeps_its_finished_seeds(tmp_path, monkeypatch):
    """The report is rewritten after each finished unit: a run that dies in its ablations keeps every seed's main
    runs, their claims table and a report saying how far it got."""
    import cipo.lab.runner as runner

    def broken_ablations(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_ablations", broken_ablations)
    with pytest.raises(KeyboardInterrupt):
        main(["--preset", "tiny", "--seeds", "2", "--ablate", "--output-dir", str(tmp_path / "out"),
              "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    (run_dir,) = (tmp_path / "out").glob("lab-*")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["seeds"] == [0, 1] and metrics["finished"] == "main runs of seed 1"
    assert {row["seeds"] for row in metrics["claims"]} == {2}
    assert "**Partial run**: the run stopped after the main runs of seed 1" in (run_dir / "report.md").read_text()


def test_resume_finishes_an_interrupted_run_as_one_uninterrupted_run_would(tmp_path, monkeypatch):
    """--resume reads the run's stored configuration and runs only what is missing (here seed 1's ablations)."""
    import cipo.lab.runner as runner

    real_ablations = runner.run_ablations
    common_args = ["--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]

    def dies_on_seed_1(config, seed, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if seed == 1:
            raise KeyboardInterrupt
        return real_ablations(config, seed, *args, **kwargs)

    monkeypatch.setattr(runner, "run_ablations", dies_on_seed_1)
    with pytest.raises(KeyboardInterrupt):
        main(["--preset", "tiny", "--seeds", "2", "--ablate", *common_args])
    (run_dir,) = (tmp_path / "out").glob("lab-*")
    interrupted = json.loads((run_dir / "metrics.json").read_text())
    assert interrupted["finished"] == "ablations of seed 0"

    monkeypatch.setattr(runner, "run_ablations", real_ablations)
    assert main(["--resume", str(run_dir), "--no-progress"]) == 0
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert resumed["finished"] == "all" and resumed["resumed"] == [f"cipo lab --resume {run_dir} --no-progress"]
    assert resumed["runs"][0] == interrupted["runs"][0]  # kept as it was, not run again
    assert "**Partial run**" not in (run_dir / "report.md").read_text()

    main(["--preset", "tiny", "--seeds", "2", "--ablate", "--output-dir", str(tmp_path / "whole"),
          "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    (whole_dir,) = (tmp_path / "whole").glob("lab-*")
    whole = json.loads((whole_dir / "metrics.json").read_text())
    assert numbers(resumed) == numbers(whole)
    assert resumed["ablation"] == whole["ablation"] and resumed["claims"] == whole["claims"]


def test_resume_refuses_a_folder_without_metrics_and_changed_settings(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--resume", str(tmp_path)])
    assert "no metrics.json to resume from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--resume", str(tmp_path), "--seeds", "3", "--seed", "0"])
    assert "drop --seeds, --seed" in capsys.readouterr().err
