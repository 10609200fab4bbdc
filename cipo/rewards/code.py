"""The ``code`` reward: run the program in each completion against its row's tests, in the sandbox.

``code_reward(completions, tests)`` follows TRL's convention (extra columns and trainer keywords are ignored) and
scores 1.0 when every test passes, else 0.0; with ``CodeRewardConfig(partial_credit=True)`` it scores the
fraction of tests passed. It never raises on a bad completion or a malformed ``tests`` value: those score 0.0.

The program is the last fenced ```python block of the completion (else the last unlabeled fenced block, else
the text after an unclosed ```python fence, else the whole text).

The ``tests`` column: a dict, or the same dict as a JSON string (best when one dataset mixes styles), with a
``style`` key:

* ``{"style": "assert", "tests": ["assert add(1, 2) == 3", ...], "setup": "import math", "prelude": "..."}``:
  each snippet is one test, run after the program in its process. For HumanEval, give the test code as
  ``"check"`` (it defines ``check(candidate)``) and the function name as ``"entry_point"``: each top-level
  statement of ``check`` then counts as one test. ``setup`` (str or list of str) runs before the tests, in their
  namespace (MBPP's ``test_imports``). ``prelude`` is code the program is appended to (a prompt's imports and
  helpers, or the whole HumanEval prompt for completions that continue it); the tests use the prelude's helpers,
  never the program's redefinitions of them.
* ``{"style": "stdio", "cases": [{"input": "1 2\\n", "output": "3\\n"}, ...]}``: the program runs once per case
  with ``input`` on stdin; its stdout must equal ``output`` up to trailing whitespace.
* ``{"style": "call", "entry_point": "add", "cases": [{"args": [1, 2], "kwargs": {}, "expected": 3}, ...]}``:
  ``add(*args, **kwargs)`` must return ``expected``. Values are JSON-style: lists and tuples are the same, floats
  match within 1e-6 (relative), dict keys may be strings. ``"entry_point": "Solution.add"`` calls the method on a
  fresh ``Solution()``. The function must return built-in data; the comparison happens outside the sandbox.

A plain list of strings (MBPP's ``test_list``) is accepted as assert tests, and so is a string of test code.
:func:`tests_from_humaneval` and :func:`tests_from_mbpp` build the column from those datasets' rows.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cipo.core.code_feedback import execution_feedback
from cipo.core.prompts import attempt_text
from cipo.sandbox import (
    AssertTests,
    CallCase,
    CallTests,
    SandboxConfig,
    StdioCase,
    StdioTests,
    TestReport,
    TestSuite,
    get_sandbox,
    run_test_batch,
)
from cipo.sandbox.testing import SANDBOX_ERROR, TIMEOUT

logger = logging.getLogger(__name__)

# TestReport.status values produced here, without running anything.
NO_CODE = "no_code"
INVALID_TESTS = "invalid_tests"

_FENCED_BLOCK = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
_OPEN_PYTHON_FENCE = re.compile(r"^[ \t]*```[ \t]*(?:python3?|py)\b[^\n]*\n", re.IGNORECASE | re.MULTILINE)
_PYTHON_LABELS = ("python", "python3", "py")


@dataclass
class CodeRewardConfig:
    partial_credit: bool = field(
        default=False,
        metadata={
            "help": "Score the fraction of tests passed instead of 1.0 only when all pass (off by default)."
        },
    )
    timeout_s: float | None = field(
        default=None,
        metadata={
            "help": "Wall-clock limit of one run (a whole assert or call suite, or one stdio case); None = "
            "the sandbox's timeout_s."
        },
    )
    sandbox: SandboxConfig = field(
        default_factory=SandboxConfig,
        metadata={"help": "Isolation level, limits and number of workers of the sandbox."},
    )


# ---------------------------------------------------------------------------------------------------------------
# Completions and the tests column
# ---------------------------------------------------------------------------------------------------------------


def extract_program(completion: Any) -> str:
    """The program in a completion (a string or a list of messages); "" if there is none."""
    try:
        text = attempt_text(completion)
    except TypeError:
        return ""
    blocks = _FENCED_BLOCK.findall(text)
    python_blocks = [body for label, body in blocks if label.lower() in _PYTHON_LABELS]
    if python_blocks:
        return python_blocks[-1]
    unlabeled = [body for label, body in blocks if not label]
    if unlabeled:
        return unlabeled[-1]
    opened = list(_OPEN_PYTHON_FENCE.finditer(text))
    if opened:  # the generation stopped inside a code block
        return text[opened[-1].end() :]
    return text


def parse_tests(tests: Any) -> TestSuite:
    """A test suite from a ``tests`` value (see the module docstring); ValueError if it is malformed."""
    if isinstance(tests, AssertTests | CallTests | StdioTests):
        return tests
    if isinstance(tests, str):
        if tests.lstrip()[:1] in ("{", "["):
            try:
                return parse_tests(json.loads(tests))
            except json.JSONDecodeError:
                pass  # test code that starts with a bracket
        return AssertTests(tests=(tests,))
    if isinstance(tests, list | tuple):
        return AssertTests(tests=_strings(tests, "tests"))
    if isinstance(tests, Mapping):
        style = tests.get("style") or ("call" if tests.get("entry_point") and tests.get("cases") else None)
        style = style or ("stdio" if "cases" in tests else "assert")
        parsers: dict[str, Callable[[Mapping[str, Any]], TestSuite]] = {
            "assert": _assert_suite,
            "stdio": _stdio_suite,
            "call": _call_suite,
        }
        if style not in parsers:
            raise ValueError(f"unknown test style {style!r}; expected one of {sorted(parsers)}")
        return parsers[style](tests)
    raise ValueError(f"tests must be a dict, a JSON string or a list of strings, got {type(tests).__name__}")


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError(f"{name} must be a string or a list of strings")


def _text(spec: Mapping[str, Any], key: str) -> str:
    return "\n".join(_strings(spec.get(key), key))


def _assert_suite(spec: Mapping[str, Any]) -> AssertTests:
    check = spec.get("check")
    if check is not None and not isinstance(check, str):
        raise ValueError("check must be a string of test code defining check(candidate)")
    entry_point = spec.get("entry_point")
    if check is not None and not (isinstance(entry_point, str) and entry_point):
        raise ValueError("assert tests with a check function need an entry_point")
    suite = AssertTests(
        tests=_strings(spec.get("tests"), "tests"),
        check=check,
        entry_point=entry_point or None,
        prelude=_text(spec, "prelude"),
        setup=_text(spec, "setup"),
    )
    if not suite.tests and suite.check is None:
        raise ValueError("assert tests need 'tests' or 'check'")
    return suite


def _cases(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    cases = spec.get("cases")
    if not isinstance(cases, list | tuple) or not cases or not all(isinstance(c, Mapping) for c in cases):
        raise ValueError("'cases' must be a non-empty list of objects")
    return list(cases)


def _stdio_suite(spec: Mapping[str, Any]) -> StdioTests:
    cases = []
    for case in _cases(spec):
        if not isinstance(case.get("input"), str) or not isinstance(case.get("output"), str):
            raise ValueError("stdio cases need string 'input' and 'output'")
        cases.append(StdioCase(case["input"], case["output"]))
    return StdioTests(tuple(cases), prelude=_text(spec, "prelude"))


def _call_suite(spec: Mapping[str, Any]) -> CallTests:
    entry_point = spec.get("entry_point")
    if not isinstance(entry_point, str) or not entry_point:
        raise ValueError("call tests need an 'entry_point'")
    cases = []
    for case in _cases(spec):
        args, kwargs = case.get("args") or [], case.get("kwargs") or {}
        if not isinstance(args, list | tuple) or not isinstance(kwargs, Mapping) or "expected" not in case:
            raise ValueError("call cases need 'args' (a list), optional 'kwargs' (an object) and 'expected'")
        cases.append(CallCase(tuple(args), dict(kwargs), case["expected"]))
    try:
        json.dumps([[c.args, c.kwargs] for c in cases])
    except (TypeError, ValueError) as error:
        raise ValueError(f"call arguments must be JSON data: {error}") from None
    return CallTests(entry_point, tuple(cases), prelude=_text(spec, "prelude"))


def tests_from_humaneval(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``tests`` value for a HumanEval row (its prompt becomes the prelude, so that completions may either
    continue the prompt or restate the whole function)."""
    return {
        "style": "assert",
        "check": row["test"],
        "entry_point": row["entry_point"],
        "prelude": row["prompt"],
    }


def tests_from_mbpp(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``tests`` value for an MBPP row (``test_list`` asserts, ``test_imports`` as setup)."""
    return {
        "style": "assert",
        "tests": list(row["test_list"]),
        "setup": "\n".join(row.get("test_imports") or []),
    }


# ---------------------------------------------------------------------------------------------------------------
# Evaluation, reward and feedback
# ---------------------------------------------------------------------------------------------------------------

_warned: set[str] = set()


def evaluate_completions(
    completions: Sequence[Any], tests: Sequence[Any], config: CodeRewardConfig | None = None
) -> list[TestReport]:
    """A test report per completion; all programs run concurrently through the shared sandbox pool."""
    config = config or CodeRewardConfig()
    reports: list[TestReport | None] = [None] * len(completions)
    pending: list[tuple[int, str, TestSuite]] = []
    for index, (completion, row_tests) in enumerate(zip(completions, tests, strict=True)):
        try:
            suite = parse_tests(row_tests)
        # Whatever a malformed value raises (ValueError, TypeError, RecursionError...) scores 0, never crashes.
        except Exception as error:
            _warn_once(f"code reward: malformed tests value, scored 0: {error!r}"[:500])
            reports[index] = TestReport(INVALID_TESTS)
            continue
        program = extract_program(completion)
        if not program.strip():
            reports[index] = TestReport(NO_CODE)
            continue
        pending.append((index, program, suite))
    if pending:
        batch = [(program, suite) for _, program, suite in pending]
        batch_reports = run_test_batch(batch, get_sandbox(config.sandbox), config.timeout_s)
        for (index, _, _), report in zip(pending, batch_reports, strict=True):
            reports[index] = report
    return [report for report in reports if report is not None]


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


class CodeReward:
    """A TRL reward function; ``code_reward`` is the instance with the default configuration."""

    def __init__(self, config: CodeRewardConfig | None = None) -> None:
        self.config = config or CodeRewardConfig()
        self.__name__ = "code_reward"  # TRL names the reward's metrics after it

    def __call__(self, completions: Sequence[Any], tests: Sequence[Any], **kwargs: Any) -> list[float]:
        reports = evaluate_completions(completions, tests, self.config)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and reports:
            log_metric("code/timeout_rate", sum(r.status == TIMEOUT for r in reports) / len(reports))
            log_metric(
                "code/sandbox_error_rate", sum(r.status == SANDBOX_ERROR for r in reports) / len(reports)
            )
        if self.config.partial_credit:
            return [report.fraction for report in reports]
        return [float(report.passed) for report in reports]


code_reward = CodeReward()


def code_feedback(completion: Any, tests: Any, config: CodeRewardConfig | None = None) -> str:
    """Short execution feedback on one completion: the first failing test and its error (for correction
    prompts that opt into execution feedback, see ``cipo.core.code_feedback``)."""
    return code_feedback_batch([completion], [tests], config=config)[0]


def code_feedback_batch(
    completions: Sequence[Any], tests: Sequence[Any], config: CodeRewardConfig | None = None, **kwargs: Any
) -> list[str]:
    """:func:`code_feedback` for a batch, in the reward's calling convention (other columns are ignored); this
    is the ``code`` entry of ``cipo.rewards.get_feedback``."""
    return [execution_feedback(report) for report in evaluate_completions(completions, tests, config)]
