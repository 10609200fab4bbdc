"""The lab's code task: seeded, disjoint problems whose gold programs pass their tests in the real sandbox and whose
slipped programs fail them, and a micro ``cipo lab --task code`` run whose rewards come from the sandbox."""

from __future__ import annotations

import json
import random

import pytest

import cipo.rewards.code as code_module
from cipo.lab.cli import main
from cipo.lab.code_task import (
    CODE_TASK,
    LEVELS,
    CodeProblem,
    iter_train_problems,
    make_test_split,
    one_slip_program,
)
from cipo.lab.task_api import get_task
from cipo.lab.tasks import TaskConfig
from cipo.lab.warmstart import WarmStartConfig, _hashed_fields, make_examples
from cipo.rewards.code import code_reward

CONFIG = TaskConfig(name="code", levels=tuple(LEVELS), hard_levels=(), test_size=40)


def test_generator_is_seeded_and_splits_are_disjoint():
    test = make_test_split(CONFIG)
    assert test == make_test_split(CONFIG) and len(test) == 40
    assert len({p.key for p in test}) == 40 and {p.level for p in test} == set(LEVELS)
    stream = iter_train_problems(CONFIG, "rl", {p.key for p in test})
    train = [next(stream) for _ in range(300)]
    assert not {p.key for p in train} & {p.key for p in test}
    again = iter_train_problems(CONFIG, "rl", {p.key for p in test})
    assert train[:20] == [next(again) for _ in range(20)]
    assert make_test_split(TaskConfig(name="code", seed=7)) != make_test_split(TaskConfig(name="code"))


def test_gold_programs_pass_and_slipped_ones_fail_in_the_sandbox():
    problems = make_test_split(CONFIG)
    rng = random.Random(0)
    tests = [json.dumps(p.tests) for p in problems]
    gold = code_reward([p.program() for p in problems], tests)
    slipped = code_reward([one_slip_program(p, rng) for p in problems], tests)
    assert gold == [1.0] * len(problems) and slipped == [0.0] * len(problems)
    assert CODE_TASK.grade(problems[:2], ["no code", problems[1].program()]) == [False, True]


def test_problem_text_and_tests():
    problem = CodeProblem(level=2, a=2, b=3)
    assert problem.text == "Write f(x) = a*x+b in Python: f(0)=3, f(1)=5, f(2)=7."
    assert problem.program() == "```python\ndef f(x):\n    return 2*x+3\n```"
    cases = problem.tests["cases"]
    assert problem.tests["style"] == "call" and len(cases) > 3  # the shown values and hidden ones
    assert cases[-1] == {"args": [10], "kwargs": {}, "expected": 23}


def test_warm_start_examples_include_reviews_with_the_code_instruction():
    examples = make_examples(CONFIG, WarmStartConfig(), 200)
    reviews = [e for e in examples if len(e.prompt) == 3]
    assert 50 < len(reviews) < 150
    assert all(e.prompt[2]["content"] == CODE_TASK.correction_instruction for e in reviews)
    assert any(e.prompt[1]["content"] != e.completion for e in reviews)  # some attempts are fixed
    assert all(e.completion.startswith("```python\ndef f(x):") for e in examples)


def test_task_selection_and_math_hash_unchanged():
    assert get_task("math").name == "math" and get_task("code") is CODE_TASK
    with pytest.raises(ValueError, match="unknown lab task"):
        get_task("chess")
    assert "name" not in _hashed_fields(TaskConfig())  # the math task's warm-start cache keys did not change
    assert _hashed_fields(TaskConfig(name="code"))["name"] == "code"


def test_micro_code_run_is_graded_in_the_sandbox(tmp_path, monkeypatch):
    executed: list[int] = []
    run_test_batch = code_module.run_test_batch

    def counting_run_test_batch(batch, *args, **kwargs):  # noqa: ANN001, ANN202
        executed.append(len(batch))
        return run_test_batch(batch, *args, **kwargs)

    monkeypatch.setattr(code_module, "run_test_batch", counting_run_test_batch)
    scores: list[float] = []
    reward = CODE_TASK.reward

    def recording_reward(completions, **kwargs):  # noqa: ANN001, ANN202
        result = reward(completions, **kwargs)
        scores.extend(result)
        return result

    monkeypatch.setattr(CODE_TASK, "reward", recording_reward)
    output = tmp_path / "runs"
    assert main(["--preset", "tiny", "--task", "code", "--output-dir", str(output), "--cache-dir",
                 str(tmp_path / "cache"), "--no-progress"]) == 0
    (run_dir,) = output.glob("lab-*")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = (run_dir / "report.md").read_text()
    for section in ("## Results", "### Every seed", "## Plots", "## What ran", "## Examples",
                    "## Timings and versions", "## Exact configuration"):
        assert section in report
    assert "code_reward" in report and metrics["config"]["task"]["name"] == "code"
    run = metrics["runs"][0]
    assert any("correction/num_anchors" in entry for entry in run["cipo"]["history"])
    assert scores and set(scores) <= {0.0, 1.0}
    assert sum(executed) > 0  # programs ran in the sandbox (training and evaluation)
    assert list(run["cipo"]["eval"]["pass_at_k"]) == ["1", "2", "3", "4"]
