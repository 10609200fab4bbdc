"""Running a program against tests in the sandbox, with verdicts the program cannot fake.

Three styles of tests:

* :class:`AssertTests`: test code with ``assert`` statements, run in the program's process after it (MBPP's
  ``test_list``, HumanEval's ``check(candidate)``). Each test reports itself, after it finished, through a channel
  that is not stdout, stamped with a secret drawn for this run; a test without such a report failed.
* :class:`CallTests`: call a function with arguments; the ``repr`` of the (plain, built-in) return value comes
  back to the host, which compares it with the expected value. The expected values never enter the sandbox.
* :class:`StdioTests`: run the program with a given stdin, one fresh process per case; the host compares stdout.

A :class:`TestReport` says which tests passed, and why the first failing one failed.
"""

from __future__ import annotations

import ast
import cmath
import functools
import json
import math
import secrets
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cipo.sandbox.pool import ExecutionRequest, ExecutionResult, Sandbox, get_sandbox

MAX_NAME_CHARS = 300
MAX_SHOWN_OUTPUT_CHARS = 200
FLOAT_REL_TOL = 1e-6
FLOAT_ABS_TOL = 1e-9

# TestReport.status values.
PASSED = "passed"
FAILED = "failed"  # every test ran; some gave a wrong answer or raised
ERROR = "error"  # the program did not load (syntax error, exception at import), or crashed on stdio input
TIMEOUT = "timeout"
OUTPUT_LIMIT = "output_limit"
CRASHED = "crashed"  # the process ended before every test had run (sys.exit, os._exit, killed...)
SANDBOX_ERROR = "sandbox_error"
NO_TESTS = "no_tests"


# ---------------------------------------------------------------------------------------------------------------
# Test suites
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssertTests:
    """Assert-based test code. ``tests``: snippets, each one test. ``check``: code defining ``check(candidate)``,
    called with the program's ``entry_point`` (each top-level statement of its body is then one test).
    ``prelude``: code the program is appended to (a prompt's imports and helpers); the tests also see the
    prelude's definitions rather than the program's redefinitions. ``setup``: code run before the tests, in
    their namespace (MBPP's ``test_imports``)."""

    tests: tuple[str, ...] = ()
    check: str | None = None
    entry_point: str | None = None
    prelude: str = ""
    setup: str = ""


@dataclass(frozen=True)
class CallCase:
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    expected: Any = None


@dataclass(frozen=True)
class CallTests:
    """Call ``entry_point`` (a function name, or ``Class.method`` on a fresh instance) once per case."""

    entry_point: str
    cases: tuple[CallCase, ...]
    prelude: str = ""


@dataclass(frozen=True)
class StdioCase:
    input: str
    output: str


@dataclass(frozen=True)
class StdioTests:
    """Run the program as a script once per case, with ``input`` on stdin; stdout must equal ``output``
    (trailing whitespace on each line and trailing empty lines ignored)."""

    cases: tuple[StdioCase, ...]
    prelude: str = ""


TestSuite = AssertTests | CallTests | StdioTests


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest test class, despite the name

    name: str
    passed: bool
    error: str | None = None


@dataclass(frozen=True)
class TestReport:
    """The verdict on one program: ``status`` (one of the constants above) and one outcome per test."""

    __test__ = False

    status: str
    outcomes: tuple[TestOutcome, ...] = ()
    failed_step: TestOutcome | None = None  # a non-test statement of a check function that raised

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def passed_count(self) -> int:
        return sum(outcome.passed for outcome in self.outcomes)

    @property
    def fraction(self) -> float:
        return self.passed_count / self.total if self.total else 0.0

    @property
    def first_failure(self) -> TestOutcome | None:
        if self.failed_step is not None:
            return self.failed_step
        return next((outcome for outcome in self.outcomes if not outcome.passed), None)

    @property
    def failing_test(self) -> str | None:
        failure = self.first_failure
        return failure.name if failure else None

    @property
    def error(self) -> str | None:
        failure = self.first_failure
        return failure.error if failure else None


# ---------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------


def run_tests(
    program: str, suite: TestSuite, sandbox: Sandbox | None = None, timeout_s: float | None = None
) -> TestReport:
    return run_test_batch([(program, suite)], sandbox, timeout_s)[0]


def run_test_batch(
    items: Sequence[tuple[str, TestSuite]], sandbox: Sandbox | None = None, timeout_s: float | None = None
) -> list[TestReport]:
    """Run every (program, suite) pair, all runs in parallel through the sandbox's workers."""
    sandbox = sandbox or get_sandbox()
    plans = [_plan(program, suite, timeout_s) for program, suite in items]
    requests = [request for plan in plans for request in plan.requests]
    results = iter(sandbox.run_many(requests))
    return [plan.grade([next(results) for _ in plan.requests], sandbox) for plan in plans]


def _plan(program: str, suite: TestSuite, timeout_s: float | None) -> _Plan:
    source = f"{suite.prelude}\n{program}" if suite.prelude else program
    if isinstance(suite, AssertTests):
        return _AssertPlan(source, suite, timeout_s)
    if isinstance(suite, CallTests):
        return _CallPlan(source, suite, timeout_s)
    if isinstance(suite, StdioTests):
        return _StdioPlan(source, suite, timeout_s)
    raise TypeError(f"not a test suite: {type(suite).__name__}")


class _Plan:
    requests: list[ExecutionRequest]

    def grade(self, results: list[ExecutionResult], sandbox: Sandbox) -> TestReport:
        raise NotImplementedError


def _clip(text: str, limit: int = MAX_NAME_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unfinished(result: ExecutionResult, timeout_s: float) -> tuple[str, str]:
    """Status and message for a run that ended before its last test reported."""
    if result.sandbox_error:
        return SANDBOX_ERROR, f"the sandbox failed: {result.sandbox_error}"
    if result.timed_out:
        return TIMEOUT, f"time limit exceeded ({timeout_s:g} s)"
    if result.output_limit_exceeded:
        return OUTPUT_LIMIT, "the program printed more than the output limit"
    detail = _last_line(result.stderr)
    message = f"the process ended before the tests finished (exit code {result.exit_code})"
    return CRASHED, message + (f": {detail}" if detail else "")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return _clip(lines[-1], MAX_SHOWN_OUTPUT_CHARS) if lines else ""


def _records(channel: str) -> list[dict[str, Any]]:
    records = []
    for line in channel.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _report_from_records(
    names: list[str], verdicts: dict[int, tuple[bool, str | None]], result: ExecutionResult, timeout_s: float
) -> tuple[str, list[TestOutcome]]:
    """Outcomes in order. The first test without a verdict is where the run stopped; the rest never ran. The
    status is that of the first test that did not pass."""
    outcomes: list[TestOutcome] = []
    status = PASSED
    stopped = False
    for index, name in enumerate(names):
        if stopped:
            outcomes.append(TestOutcome(name, False, "not run: an earlier test did not finish"))
        elif index in verdicts:
            passed, error = verdicts[index]
            outcomes.append(TestOutcome(name, passed, None if passed else error))
            if not passed and status == PASSED:
                status = FAILED
        else:
            stopped = True
            unfinished_status, message = _unfinished(result, timeout_s)
            outcomes.append(TestOutcome(name, False, message))
            if status == PASSED:
                status = unfinished_status
    return status, outcomes


# -- assert style -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    source: str
    is_test: bool


def _is_test(node: ast.AST) -> bool:
    """A statement is a test if it asserts something that is not a constant (``assert True`` is not a test)."""
    return any(isinstance(n, ast.Assert) and not isinstance(n.test, ast.Constant) for n in ast.walk(node))


def split_check_function(code: str) -> tuple[str, list[_Step]] | None:
    """The parameter and top-level statements of ``def check(candidate)``, or None if it cannot be split."""
    split = _split_check_function(code)
    return None if split is None else (split[0], list(split[1]))


@functools.lru_cache(maxsize=4096)
def _split_check_function(code: str) -> tuple[str, tuple[_Step, ...]] | None:
    # Cached: a problem's check function is split once, not for every completion graded against it (parsing and
    # ast.get_source_segment, which splits the whole source again for each statement, take about a millisecond).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # invalid escapes and the like: the sandbox's compile reports them
            tree = ast.parse(code)
    except SyntaxError:
        return None
    checks = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "check" and not node.decorator_list
    ]
    if not checks or len(checks[-1].args.args) != 1:
        return None
    check = checks[-1]
    steps = []
    for statement in check.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # docstring or bare constant
        source = textwrap.dedent(
            ast.get_source_segment(code, statement, padded=True) or ast.unparse(statement)
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile(source, "<step>", "exec")
        except SyntaxError:  # return, yield, nonlocal... only make sense inside the function
            return None
        steps.append(_Step(source, _is_test(statement)))
    if not any(step.is_test for step in steps):
        return None
    return check.args.args[0].arg, tuple(steps)


class _AssertPlan(_Plan):
    def __init__(self, program: str, suite: AssertTests, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.secret = secrets.token_hex(16)
        self.steps = [_Step(test, True) for test in suite.tests]
        setup, binding = suite.setup, {}
        if suite.check is not None:
            if not suite.entry_point:
                raise ValueError("assert tests with a check function need an entry_point")
            setup = f"{setup}\n{suite.check}" if setup else suite.check
            split = split_check_function(suite.check)
            if split is None:
                self.steps.append(_Step(f"check({suite.entry_point})", True))
            else:
                parameter, steps = split
                self.steps += steps
                binding = {parameter: suite.entry_point}
        harness = {
            "mode": "assert",
            "secret": self.secret,
            "units": [step.source for step in self.steps],
            "prelude": suite.prelude,
            "setup": setup,
            "entry_point": suite.entry_point,
            "bind": binding,
        }
        self.requests = (
            [ExecutionRequest(program, harness=harness, timeout_s=timeout_s)] if self.steps else []
        )

    def grade(self, results: list[ExecutionResult], sandbox: Sandbox) -> TestReport:
        if not self.steps:
            return TestReport(NO_TESTS)
        (result,) = results
        # Only records stamped with this run's secret count: the program cannot print or forge its way past.
        records = [r for r in _records(result.channel) if r.get("s") == self.secret]
        names = [_clip(step.source) for step in self.steps]
        program_error = next((r["program_error"] for r in records if "program_error" in r), None)
        if program_error is not None:
            error = str(program_error)
            tests = zip(names, self.steps, strict=True)
            return TestReport(
                ERROR, tuple(TestOutcome(name, False, error) for name, step in tests if step.is_test)
            )
        verdicts = {}
        for record in records:
            index = record.get("i")
            if isinstance(index, int) and 0 <= index < len(self.steps) and index not in verdicts:
                verdicts[index] = (record.get("ok") is True, str(record.get("error")))
        timeout = self.timeout_s or sandbox.config.timeout_s
        status, outcomes = _report_from_records(names, verdicts, result, timeout)
        first_bad = next((i for i, outcome in enumerate(outcomes) if not outcome.passed), None)
        failed_step = None
        if first_bad is not None and not self.steps[first_bad].is_test:
            failed_step = outcomes[first_bad]
        tests = tuple(outcome for outcome, step in zip(outcomes, self.steps, strict=True) if step.is_test)
        return TestReport(status, tests, failed_step)


# -- function-call style ----------------------------------------------------------------------------------------


class _CallPlan(_Plan):
    def __init__(self, program: str, suite: CallTests, timeout_s: float | None) -> None:
        self.suite = suite
        self.timeout_s = timeout_s
        cases = [json.dumps({"args": list(c.args), "kwargs": dict(c.kwargs)}) for c in suite.cases]
        harness = {"mode": "call", "entry_point": suite.entry_point, "cases": cases}
        self.requests = [ExecutionRequest(program, harness=harness, timeout_s=timeout_s)] if cases else []

    def _name(self, case: CallCase) -> str:
        arguments = [repr(a) for a in case.args] + [f"{k}={v!r}" for k, v in case.kwargs.items()]
        return _clip(f"{self.suite.entry_point}({', '.join(arguments)})")

    def grade(self, results: list[ExecutionResult], sandbox: Sandbox) -> TestReport:
        if not self.suite.cases:
            return TestReport(NO_TESTS)
        (result,) = results
        names = [self._name(case) for case in self.suite.cases]
        records = _records(result.channel)
        program_error = next((r["program_error"] for r in records if "program_error" in r), None)
        if program_error is not None:
            return TestReport(ERROR, tuple(TestOutcome(name, False, str(program_error)) for name in names))
        verdicts: dict[int, tuple[bool, str | None]] = {}
        for record in records:
            index = record.get("i")
            if isinstance(index, int) and 0 <= index < len(names) and index not in verdicts:
                verdicts[index] = self._verdict(record, self.suite.cases[index])
        timeout = self.timeout_s or sandbox.config.timeout_s
        status, outcomes = _report_from_records(names, verdicts, result, timeout)
        return TestReport(status, tuple(outcomes))

    @staticmethod
    def _verdict(record: dict[str, Any], case: CallCase) -> tuple[bool, str | None]:
        if record.get("ok") is not True:
            return False, str(record.get("error"))
        try:
            value = parse_plain_repr(str(record.get("value")))
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            return False, "the returned value could not be read back"
        if values_match(value, case.expected):
            return True, None
        shown = _clip(repr(value), MAX_SHOWN_OUTPUT_CHARS)
        return False, f"returned {shown}, expected {_clip(repr(case.expected), MAX_SHOWN_OUTPUT_CHARS)}"


_NAMED_FLOATS = {"inf": math.inf, "nan": math.nan}


def parse_plain_repr(text: str) -> Any:
    """Read back the ``repr`` of plain built-in data (what the harness sends); nothing is ever executed."""
    return _literal(ast.parse(text, mode="eval").body)


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMED_FLOATS:
        return _NAMED_FLOATS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _literal(node.operand)
        if isinstance(operand, int | float | complex) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):  # complex numbers: (1+2j)
        left, right = _literal(node.left), _literal(node.right)
        if isinstance(left, int | float) and isinstance(right, complex):
            return left + right if isinstance(node.op, ast.Add) else left - right
    if isinstance(node, ast.List):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(item) for item in node.elts)
    if isinstance(node, ast.Set):
        return {_literal(item) for item in node.elts}
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id in ("set", "frozenset") and len(node.args) <= 1:
            items = _literal(node.args[0]) if node.args else ()
            return set(items) if node.func.id == "set" else frozenset(items)
    raise ValueError(f"not a plain value: {ast.dump(node)[:100]}")


def values_match(actual: Any, expected: Any) -> bool:
    """Equality for results against JSON-style expected values: lists and tuples are interchangeable, numbers
    compare with a small tolerance (relative 1e-6), bools only equal bools, and dict keys may be given as
    strings (JSON has no other kind)."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        if isinstance(actual, int) and isinstance(expected, int):
            return actual == expected
        return (math.isnan(actual) and math.isnan(expected)) or math.isclose(
            actual, expected, rel_tol=FLOAT_REL_TOL, abs_tol=FLOAT_ABS_TOL
        )
    if isinstance(actual, complex) or isinstance(expected, complex):
        if not all(isinstance(x, int | float | complex) for x in (actual, expected)):
            return False
        return cmath.isclose(actual, expected, rel_tol=FLOAT_REL_TOL, abs_tol=FLOAT_ABS_TOL)
    if isinstance(actual, list | tuple) and isinstance(expected, list | tuple):
        return len(actual) == len(expected) and all(map(values_match, actual, expected))
    if isinstance(actual, set | frozenset) and isinstance(expected, set | frozenset | list | tuple):
        try:
            return actual == set(expected)
        except TypeError:
            return False
    if isinstance(actual, dict) and isinstance(expected, Mapping):
        if len(actual) != len(expected):
            return False
        by_text = {str(key): value for key, value in actual.items()}
        return all(
            values_match(actual[key], value)
            if key in actual
            else key in by_text and values_match(by_text[key], value)
            for key, value in expected.items()
        )
    return type(actual) is type(expected) and actual == expected


# -- stdin/stdout style -----------------------------------------------------------------------------------------


def normalized_output(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


class _StdioPlan(_Plan):
    def __init__(self, program: str, suite: StdioTests, timeout_s: float | None) -> None:
        self.suite = suite
        self.timeout_s = timeout_s
        self.requests = [
            ExecutionRequest(program, stdin=case.input, timeout_s=timeout_s) for case in suite.cases
        ]

    def grade(self, results: list[ExecutionResult], sandbox: Sandbox) -> TestReport:
        if not self.suite.cases:
            return TestReport(NO_TESTS)
        timeout = self.timeout_s or sandbox.config.timeout_s
        outcomes, status = [], PASSED
        for case, result in zip(self.suite.cases, results, strict=True):
            name = _clip(f"input {case.input!r}")
            case_status, error = self._check(case, result, timeout)
            outcomes.append(TestOutcome(name, case_status == PASSED, error))
            if status == PASSED:
                status = case_status
        return TestReport(status, tuple(outcomes))

    @staticmethod
    def _check(case: StdioCase, result: ExecutionResult, timeout: float) -> tuple[str, str | None]:
        if result.sandbox_error or result.timed_out or result.output_limit_exceeded:
            return _unfinished(result, timeout)
        if result.exit_code != 0:
            detail = _last_line(result.stderr)
            return ERROR, f"exit code {result.exit_code}" + (f": {detail}" if detail else "")
        if normalized_output(result.stdout) == normalized_output(case.output):
            return PASSED, None
        got = _clip(repr(result.stdout), MAX_SHOWN_OUTPUT_CHARS)
        return FAILED, f"expected output {_clip(repr(case.output), MAX_SHOWN_OUTPUT_CHARS)}, got {got}"
