"""The ``code`` reward: program extraction, the ``tests`` column, TRL's calling convention, partial credit and
execution feedback. Runs at the default isolation level (``$CIPO_SANDBOX_ISOLATION`` forces another)."""

from __future__ import annotations

import json
import time

import pytest

from cipo.rewards import code as code_module
from cipo.rewards import get_feedback, get_reward
from cipo.rewards.code import (
    INVALID_TESTS,
    NO_CODE,
    CodeReward,
    CodeRewardConfig,
    code_feedback,
    code_reward,
    evaluate_completions,
    extract_program,
    parse_tests,
)
from cipo.sandbox import AssertTests, CallTests, StdioTests

ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]
GOOD = "```python\ndef add(a, b):\n    return a + b\n```"
HALF = "```python\ndef add(a, b):\n    return a + b if a > 0 else 7\n```"


def _trl_call(reward: CodeReward, completions: list, tests: list, **extra: object) -> list[float]:
    metrics: dict[str, float] = {}
    scores = reward(
        prompts=["Write add."] * len(completions),
        completions=completions,
        completion_ids=[[1, 2, 3]] * len(completions),
        tests=tests,
        difficulty=["easy"] * len(completions),
        trainer_state=object(),
        log_extra=lambda *args, **kwargs: None,
        log_metric=lambda name, value: metrics.__setitem__(name, value),
        **extra,
    )
    assert set(metrics) == {"code/timeout_rate", "code/sandbox_error_rate"}
    return scores


# -- extracting the program -------------------------------------------------------------------------------------


def test_extract_program_takes_the_last_python_block() -> None:
    text = "Plan:\n```python\nx = 1\n```\nBetter:\n```py\nx = 2\n```\nOutput:\n```\n2\n```\n"
    assert extract_program(text) == "x = 2\n"
    assert extract_program("Here:\n```\nprint(1)\n```") == "print(1)\n"
    assert (
        extract_program("```python\ndef f():\n    return 1") == "def f():\n    return 1"
    )  # cut-off generation
    assert extract_program("def f():\n    return 1\n") == "def f():\n    return 1\n"
    assert extract_program([{"role": "assistant", "content": GOOD}]) == "def add(a, b):\n    return a + b\n"
    assert extract_program(None) == "" and extract_program(42) == ""
    assert extract_program("inline ```python x``` mention\n```python\ny = 1\n```") == "y = 1\n"


# -- the tests column -------------------------------------------------------------------------------------------


def test_parse_tests_formats() -> None:
    assert parse_tests(ADD_TESTS) == AssertTests(tests=tuple(ADD_TESTS))
    assert parse_tests(json.dumps(ADD_TESTS)) == AssertTests(tests=tuple(ADD_TESTS))
    assert parse_tests("assert add(1, 2) == 3") == AssertTests(tests=("assert add(1, 2) == 3",))
    # A dataset column of dicts fills absent keys with None.
    hf_row = {
        "style": "assert",
        "tests": ADD_TESTS,
        "check": None,
        "entry_point": None,
        "setup": None,
        "cases": None,
    }
    assert parse_tests(hf_row).tests == tuple(ADD_TESTS)
    assert (
        parse_tests({"tests": ADD_TESTS, "setup": ["import math", "import re"]}).setup
        == "import math\nimport re"
    )
    stdio = parse_tests(json.dumps({"style": "stdio", "cases": [{"input": "1\n", "output": "2\n"}]}))
    assert isinstance(stdio, StdioTests) and stdio.cases[0].output == "2\n"
    call = parse_tests({"style": "call", "entry_point": "f", "cases": [{"args": [1], "expected": [2]}]})
    assert isinstance(call, CallTests) and call.cases[0].args == (1,) and call.cases[0].kwargs == {}


@pytest.mark.parametrize(
    "bad",
    [
        None,
        42,
        [1, 2],
        {"style": "fuzzy"},
        {"style": "assert"},
        {"style": "assert", "check": "def check(c): pass"},
        {"style": "call", "cases": [{"args": [], "expected": 1}]},
        {"style": "call", "entry_point": "f", "cases": [{"args": [object()], "expected": 1}]},
        {"style": "call", "entry_point": "f", "cases": [{"args": []}]},
        {"style": "stdio", "cases": []},
        {"style": "stdio", "cases": [{"input": 1, "output": "1"}]},
    ],
)
def test_parse_tests_rejects_malformed_values(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_tests(bad)


def test_dataset_helpers() -> None:
    humaneval = {
        "prompt": "def f(x):\n",
        "test": "def check(candidate):\n    assert candidate(1)\n",
        "entry_point": "f",
    }
    assert parse_tests(code_module.tests_from_humaneval(humaneval)) == AssertTests(
        check=humaneval["test"], entry_point="f", prelude="def f(x):\n"
    )
    mbpp = {"test_list": ADD_TESTS, "test_imports": ["import math"]}
    assert parse_tests(code_module.tests_from_mbpp(mbpp)) == AssertTests(
        tests=tuple(ADD_TESTS), setup="import math"
    )


# -- the reward -------------------------------------------------------------------------------------------------


def test_reward_in_trl_convention() -> None:
    completions = [GOOD, [{"role": "assistant", "content": GOOD}], HALF, "no code at all", None, GOOD]
    tests = [ADD_TESTS, json.dumps(ADD_TESTS), ADD_TESTS, ADD_TESTS, ADD_TESTS, {"style": "nonsense"}]
    assert _trl_call(code_reward, completions, tests) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    partial = CodeReward(CodeRewardConfig(partial_credit=True))
    assert _trl_call(partial, completions, tests) == pytest.approx([1.0, 1.0, 2 / 3, 0.0, 0.0, 0.0])
    assert code_reward.__name__ == "code_reward"
    assert get_reward("code") is code_reward


def test_statuses_without_running() -> None:
    garbage = [{"style": "call"}, {"style": ["assert"]}, "[" * 100_000 + "]" * 100_000, {"tests": [None]}]
    reports = evaluate_completions(["```python\n\n```"] + [GOOD] * len(garbage), [ADD_TESTS, *garbage])
    assert [report.status for report in reports] == [NO_CODE] + [INVALID_TESTS] * len(garbage)


def test_odd_text_does_not_break_the_sandbox() -> None:
    programs = [
        "print('\\udcff')",
        "x = 1\0",
        "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe')\n",
        "print(input())",
    ]
    tests = {"style": "stdio", "cases": [{"input": "\udcff \x00", "output": "?"}]}
    reports = evaluate_completions([f"```python\n{p}\n```" for p in programs], [tests] * len(programs))
    assert [report.status for report in reports] == ["failed", "error", "failed", "failed"]


def test_reward_for_every_style() -> None:
    stdio = {
        "style": "stdio",
        "cases": [{"input": "3 4\n", "output": "7\n"}, {"input": "0 0\n", "output": "0\n"}],
    }
    call = {
        "style": "call",
        "entry_point": "add",
        "cases": [
            {"args": [1, 2], "expected": 3},
            {"args": [1.5, 1], "expected": 2.5},
            {"args": [0, 5], "expected": 5},
        ],
    }
    humaneval = {
        "style": "assert",
        "check": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(0, 0) == 0\n",
        "entry_point": "add",
        "prelude": "def add(a, b):\n    '''Add two numbers.'''\n",
    }
    stdio_program = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    continuation = "    return a + b\n"  # a base model continuing the prompt in the prelude
    completions = [stdio_program, GOOD, continuation, GOOD, HALF]
    tests = [stdio, call, humaneval, humaneval, call]
    assert code_reward(completions, tests) == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_batch_runs_concurrently() -> None:
    program = "```python\nimport time\ntime.sleep(1)\ndef add(a, b):\n    return a + b\n```"
    code_reward([GOOD], [ADD_TESTS])  # the pool is up
    started = time.monotonic()
    assert code_reward([program] * 6, [ADD_TESTS] * 6) == [1.0] * 6
    assert time.monotonic() - started < 5.5  # one at a time would take 6 s


# -- feedback ---------------------------------------------------------------------------------------------------


def test_code_feedback_names_the_first_failing_test() -> None:
    feedback = code_feedback(HALF, ADD_TESTS)
    assert feedback == "Failing test: assert add(-1, 1) == 0\nError: AssertionError: 7 == 0 is false"
    assert code_feedback(GOOD, ADD_TESTS) == "All tests passed."
    crash = code_feedback("```python\ndef add(a, b):\n    return a / 0\n```", ADD_TESTS)
    assert crash.startswith("Failing test: assert add(1, 2) == 3\nError: ZeroDivisionError: division by zero")
    assert code_feedback("nothing here", {"style": "nonsense"}) == ""


def test_feedback_batch_in_the_trainer_convention() -> None:
    # The trainer calls the registered feedback function with the anchors' completions and dataset columns.
    texts = get_feedback("code")([GOOD, HALF], tests=[ADD_TESTS, ADD_TESTS], difficulty=["easy", "hard"])
    assert texts == ["All tests passed.", code_feedback(HALF, ADD_TESTS)]
