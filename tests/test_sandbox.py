"""The sandbox pool: running programs, limits, isolation levels and their fallback, and the test harness."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
from collections import Counter, OrderedDict, deque, namedtuple
from collections.abc import Iterator
from pathlib import Path

import pytest

from cipo.sandbox import (
    AssertTests,
    CallCase,
    CallTests,
    ExecutionRequest,
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxUnavailable,
    StdioCase,
    StdioTests,
    _environment,
    _harness,
    _protocol,
    isolation,
    pool,
    run_tests,
)
from cipo.sandbox.config import ISOLATION_ENV
from cipo.sandbox.isolation import IsolationLevel, unavailable_reason
from cipo.sandbox.testing import (
    CRASHED,
    ERROR,
    FAILED,
    NO_TESTS,
    OUTPUT_LIMIT,
    PASSED,
    TIMEOUT,
    normalized_output,
    parse_plain_repr,
    split_check_function,
    values_match,
)

LIMITS = {"timeout_s": 1.5, "memory_mb": 256, "file_size_mb": 1, "max_output_bytes": 4096, "tmp_size_mb": 8}


def _start(level: str, **overrides: object) -> Sandbox:
    if reason := unavailable_reason(IsolationLevel(level)):
        pytest.skip(reason)
    try:
        return Sandbox(SandboxConfig(isolation=level, workers=2, **{**LIMITS, **overrides}))
    except SandboxUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module", params=[level.value for level in IsolationLevel])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    sandbox = _start(request.param)
    yield sandbox
    sandbox.close()


def _run(sandbox: Sandbox, program: str, stdin: str = ""):  # noqa: ANN202
    return sandbox.run(ExecutionRequest(program, stdin=stdin))


# -- running programs -------------------------------------------------------------------------------------------


def test_stdin_stdout_stderr_and_exit_code(sandbox: Sandbox) -> None:
    result = _run(
        sandbox, "import sys\nprint(input()[::-1])\nprint('oops', file=sys.stderr)\nsys.exit(3)", "abc\n"
    )
    assert (result.stdout, result.stderr.strip(), result.exit_code) == ("cba\n", "oops", 3)
    assert not result.ok
    assert _run(sandbox, "print('ok')").ok


def test_uncaught_exception_gives_traceback_with_line(sandbox: Sandbox) -> None:
    result = _run(sandbox, "x = 1\nraise ValueError('bad')\n")
    assert result.exit_code == 1
    assert 'File "solution.py", line 2' in result.stderr and "ValueError: bad" in result.stderr


def test_wall_clock_limit_kills_the_run(sandbox: Sandbox) -> None:
    result = _run(sandbox, "import time\ntime.sleep(60)")
    assert result.timed_out and result.exit_code == -9
    assert 1.4 < result.duration_s < 5


def test_cpu_limit_applies_per_process() -> None:
    # CPU time shorter than the wall clock: the kernel stops a busy loop (SIGXCPU then SIGKILL) before the deadline.
    sandbox = _start(
        "rlimits" if unavailable_reason(IsolationLevel.BWRAP) else "bwrap", timeout_s=10, cpu_time_s=1
    )
    try:
        result = _run(sandbox, "while True:\n    pass\n")
    finally:
        sandbox.close()
    assert not result.timed_out and result.exit_code in (-24, -9)
    assert result.duration_s < 8


def test_memory_limit(sandbox: Sandbox) -> None:
    result = _run(sandbox, "block = bytearray(1024**3)\n")
    assert result.exit_code == 1 and "MemoryError" in result.stderr


def test_file_size_limit(sandbox: Sandbox) -> None:
    program = "import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\nopen('f', 'wb').write(b'x' * 2 * 1024**2)"
    result = _run(sandbox, program)
    assert result.exit_code == 1 and "File too large" in result.stderr


def test_open_files_limit(sandbox: Sandbox) -> None:
    result = _run(sandbox, "files = [open('/dev/null') for _ in range(1000)]")
    assert result.exit_code == 1 and "Too many open files" in result.stderr


def test_output_is_capped(sandbox: Sandbox) -> None:
    result = _run(sandbox, "print('x' * 100_000)")
    assert result.output_limit_exceeded and not result.ok
    assert len(result.stdout) <= 4096


def test_fresh_empty_working_directory_per_run(sandbox: Sandbox) -> None:
    program = (
        "import os\nprint(os.getcwd(), os.listdir('.'), os.environ['HOME'] == os.getcwd())\nopen('x', 'w')"
    )
    first, second = _run(sandbox, program), _run(sandbox, program)
    assert first.stdout.split()[1:] == ["[]", "True"] == second.stdout.split()[1:]
    assert first.stdout.split()[0] != second.stdout.split()[0]


def test_system_is_read_only(sandbox: Sandbox) -> None:
    paths = [
        "/usr/cipo-test",
        "/etc/cipo-test",
        os.path.join(os.path.dirname(_harness.__file__), "cipo-test"),
    ]
    program = "".join(
        f"try:\n    open({p!r}, 'w')\n    print('wrote')\nexcept OSError:\n    print('no')\n" for p in paths
    )
    assert _run(sandbox, program).stdout.split() == ["no"] * len(paths)


@pytest.mark.skipif(os.geteuid() != 0, reason="programs keep the host's uid when it is not root")
def test_programs_run_unprivileged_when_host_is_root(sandbox: Sandbox) -> None:
    program = (
        "import os\nprint(os.getuid(), os.getgid(), os.getgroups())\nprint(open('/proc/self/status').read())"
    )
    result = _run(sandbox, program)
    assert result.stdout.splitlines()[0] == "65534 65534 []"
    status = dict(line.split(":\t", 1) for line in result.stdout.splitlines()[1:] if ":\t" in line)
    assert status["NoNewPrivs"].strip() == "1"
    effective = int(status["CapEff"], 16)
    assert effective == (0 if sandbox.level is not IsolationLevel.RLIMITS else 1 << 2)  # CAP_DAC_READ_SEARCH


def test_private_process_view(sandbox: Sandbox) -> None:
    if sandbox.level is IsolationLevel.RLIMITS:
        pytest.skip("no PID namespace at the rlimits level")
    result = _run(sandbox, "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    assert len(eval(result.stdout)) <= 3  # (bwrap's init,) the supervisor, the program


def test_run_many_keeps_order_and_runs_in_parallel(sandbox: Sandbox) -> None:
    requests = [ExecutionRequest(f"print({i} * 2)") for i in range(40)]
    results = sandbox.run_many(requests)
    assert [result.stdout for result in results] == [f"{i * 2}\n" for i in range(40)]


# -- levels and fallback ----------------------------------------------------------------------------------------


def test_config_validation_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        SandboxConfig(isolation="docker")
    with pytest.raises(ValueError):
        SandboxConfig(timeout_s=0)
    monkeypatch.setenv(ISOLATION_ENV, "RLIMITS")
    assert SandboxConfig().isolation == "rlimits"
    monkeypatch.delenv(ISOLATION_ENV)
    assert SandboxConfig().isolation == "auto"


def _fake_bwrap(tmp_path: Path) -> str:
    script = tmp_path / "bwrap"
    script.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _auto_without(monkeypatch: pytest.MonkeyPatch, bwrap_path: str | None) -> Sandbox:
    monkeypatch.setattr(isolation.shutil, "which", lambda name: bwrap_path if name == "bwrap" else None)
    # The fallback warning is logged once per process; an earlier sandbox (where bwrap is really missing) took it.
    monkeypatch.setattr(pool, "_warned_levels", set())
    try:
        return Sandbox(SandboxConfig(isolation="auto", workers=1))
    except SandboxUnavailable as error:
        pytest.skip(str(error))


def test_falls_back_with_a_warning_when_bwrap_is_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cipo.sandbox"):
        sandbox = _auto_without(monkeypatch, None)
    try:
        assert sandbox.level in (IsolationLevel.NAMESPACES, IsolationLevel.RLIMITS)
        assert _run(sandbox, "print(1)").stdout == "1\n"
    finally:
        sandbox.close()
    message = caplog.text
    assert (
        f"isolation level '{sandbox.level}'" in message and "bubblewrap (bwrap) is not installed" in message
    )


def test_falls_back_when_bwrap_fails_at_run_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with caplog.at_level(logging.WARNING, logger="cipo.sandbox"):
        sandbox = _auto_without(monkeypatch, _fake_bwrap(tmp_path))
    sandbox.close()
    assert sandbox.level is not IsolationLevel.BWRAP
    assert "setting up uid map: Permission denied" in caplog.text


def test_forced_level_that_does_not_work_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _fake_bwrap(tmp_path)
    monkeypatch.setattr(isolation.shutil, "which", lambda name: fake)
    with pytest.raises(SandboxUnavailable, match="Permission denied"):
        Sandbox(SandboxConfig(isolation="bwrap", workers=1))


def test_naive_mode_and_closing() -> None:
    level = "bwrap" if not unavailable_reason(IsolationLevel.BWRAP) else "auto"
    try:
        sandbox = Sandbox(SandboxConfig(isolation=level, workers=1, fresh_sandbox_per_run=True))
    except SandboxUnavailable as error:
        pytest.skip(str(error))
    assert [r.stdout for r in sandbox.run_many([ExecutionRequest("print(7)")] * 3)] == ["7\n"] * 3
    sandbox.close()
    with pytest.raises(SandboxError):
        sandbox.run(ExecutionRequest("print(1)"))


# -- tests and verdicts -----------------------------------------------------------------------------------------


def test_assert_tests_report_each_test(sandbox: Sandbox) -> None:
    program = "def add(a, b):\n    return a + b if a else 5\n"
    tests = AssertTests(tests=("assert add(1, 2) == 3", "assert add(0, 2) == 2", "assert add(2, 2) == 4"))
    report = run_tests(program, tests, sandbox)
    assert report.status == FAILED and [o.passed for o in report.outcomes] == [True, False, True]
    assert report.failing_test == "assert add(0, 2) == 2"
    assert report.error == "AssertionError: 5 == 2 is false"
    assert report.fraction == pytest.approx(2 / 3)


def test_check_function_is_split_into_tests(sandbox: Sandbox) -> None:
    check = (
        "METADATA = {}\n\ndef check(candidate):\n    import math\n    assert candidate(2) == 4\n"
        "    for x in range(3):\n        assert candidate(x) == x * x\n    assert candidate(3) == 10, 'custom'\n"
        "    assert True\n"
    )
    tests = AssertTests(check=check, entry_point="square", prelude="from typing import List\n")
    report = run_tests("def square(x: List) -> int:\n    return x * x\n", tests, sandbox)
    assert report.status == FAILED and report.total == 3
    assert report.failing_test == "assert candidate(3) == 10, 'custom'"
    assert report.error == "AssertionError: custom (9 == 10 is false)"


def test_program_errors_are_reported(sandbox: Sandbox) -> None:
    tests = AssertTests(tests=("assert f() == 1",))
    syntax = run_tests("def f(:\n", tests, sandbox)
    assert syntax.status == ERROR and syntax.error.startswith("SyntaxError")
    raising = run_tests("def f():\n    return 1 / 0\n", tests, sandbox)
    assert raising.status == FAILED and raising.error.startswith(
        "ZeroDivisionError: division by zero (solution.py, line 2"
    )


def test_timeout_names_the_test_that_hung(sandbox: Sandbox) -> None:
    program = "def f(x):\n    while x:\n        pass\n    return 0\n"
    report = run_tests(
        program, AssertTests(tests=("assert f(0) == 0", "assert f(1) == 0", "assert f(0) == 0")), sandbox
    )
    assert report.status == TIMEOUT
    assert [o.passed for o in report.outcomes] == [True, False, False]
    assert report.failing_test == "assert f(1) == 0" and "time limit" in report.error


def test_exit_and_output_limit_statuses(sandbox: Sandbox) -> None:
    tests = AssertTests(tests=("assert f() == 1",))
    assert run_tests("import os\ndef f():\n    os._exit(0)\n", tests, sandbox).status == CRASHED
    assert run_tests("def f():\n    print('x' * 10**6)\n", tests, sandbox).status == OUTPUT_LIMIT
    assert run_tests("x = 1", AssertTests(), sandbox).status == NO_TESTS


def test_call_tests_compare_outside_the_sandbox(sandbox: Sandbox) -> None:
    program = (
        "from collections import Counter, namedtuple\nPoint = namedtuple('Point', 'x y')\n"
        "def f(kind, n=1):\n    if kind == 'tuple':\n        return Point(n, 2)\n    if kind == 'counter':\n"
        "        return Counter('aab')\n    if kind == 'float':\n        return 0.1 + 0.2\n    if kind == 'obj':\n"
        "        return object()\n    raise KeyError(kind)\n"
        "class Solution:\n    def twice(self, x):\n        return 2 * x\n"
    )
    cases = (
        CallCase(("tuple",), {"n": 1}, [1, 2]),
        CallCase(("counter",), {}, {"a": 2, "b": 1}),
        CallCase(("float",), {}, 0.3),
        CallCase(("obj",), {}, None),
        CallCase(("missing",), {}, None),
        CallCase(("tuple",), {}, [1, 3]),
    )
    report = run_tests(program, CallTests("f", cases), sandbox)
    assert [o.passed for o in report.outcomes] == [True, True, True, False, False, False]
    errors = [o.error for o in report.outcomes[3:]]
    assert errors[0].startswith(
        "UntrustedValue: in the return value: a value of type 'object' is not built-in"
    )
    assert errors[1].startswith("KeyError: 'missing'")
    assert errors[2] == "returned (1, 2), expected [1, 3]"
    assert report.outcomes[0].name == "f('tuple', n=1)"
    assert run_tests(program, CallTests("Solution.twice", (CallCase((4,), {}, 8),)), sandbox).passed


def test_stdio_tests(sandbox: Sandbox) -> None:
    program = "a, b = map(int, input().split())\nprint(a + b, end='  \\n')\nprint()\n"
    cases = (
        StdioCase("1 2\n", "3"),
        StdioCase("2 2\n", "4\n"),
        StdioCase("2 3\n", "6\n"),
        StdioCase("x\n", "1\n"),
    )
    report = run_tests(program, StdioTests(cases), sandbox)
    assert [o.passed for o in report.outcomes] == [True, True, False, False]
    assert report.status == FAILED and report.error == "expected output '6\\n', got '5  \\n\\n'"
    assert report.outcomes[3].error.startswith("exit code 1: ValueError")


# -- what makes the pool fast ----------------------------------------------------------------------------------


def test_report_channel_over_the_output_limit(sandbox: Sandbox) -> None:
    result = _run(sandbox, "import os\nos.write(3, b'x' * 100_000)\n")
    assert result.output_limit_exceeded and not result.ok and not result.timed_out


def test_patches_are_undone_before_every_test(sandbox: Sandbox) -> None:
    # Names replaced, added and deleted, in builtins and a preloaded module, at import and during a test.
    program = (
        "import builtins, math\n"
        "def patch():\n    builtins.cipo_extra = 1\n    del builtins.sorted\n    math.pi = 3\n    return 0\n"
        "patch()\n"
    )
    tests = AssertTests(
        tests=(
            "assert not hasattr(builtins, 'cipo_extra') and builtins.sorted([2, 1]) == [1, 2]",
            "assert patch() == 0",
            "assert not hasattr(builtins, 'cipo_extra') and hasattr(builtins, 'sorted') and math.pi > 3.1",
        ),
        setup="import builtins, math",
    )
    report = run_tests(program, tests, sandbox)
    assert report.passed, report


def test_jobs_larger_than_the_pipe_are_not_queued_ahead(sandbox: Sandbox) -> None:
    big = "# " + "x" * (1536 << 10) + "\nprint('ok')\n"  # over the 1 MiB pipe to the supervisor
    results = sandbox.run_many([ExecutionRequest(big)] * 3 + [ExecutionRequest("print('small')")] * 3)
    assert [result.stdout for result in results] == ["ok\n"] * 3 + ["small\n"] * 3


def test_batch_survives_a_supervisor_killed_in_the_middle() -> None:
    sandbox = _start("bwrap" if not unavailable_reason(IsolationLevel.BWRAP) else "namespaces")
    try:
        victim = sandbox._workers[0]._process
        assert victim is not None
        requests = [ExecutionRequest(f"import time\ntime.sleep(0.3)\nprint({i})") for i in range(8)]
        killer = threading.Timer(0.5, os.killpg, (victim.pid, signal.SIGKILL))
        killer.start()
        results = sandbox.run_many(requests)
        killer.join()
        # The job the supervisor was running ran again on its successor; the one queued behind it was resent.
        assert [result.stdout for result in results] == [f"{i}\n" for i in range(8)]
        assert victim.poll() is not None and sandbox._workers[0].alive
    finally:
        sandbox.close()


def test_dict_version_tags_see_every_change() -> None:
    mapping: dict[str, int] = {}
    readers = _environment._version_readers([mapping])
    assert readers is not None  # CPython: restore_environment takes its fast path
    seen = [readers[0].value]
    for change in (lambda: mapping.update(a=1), lambda: mapping.pop("a"), lambda: mapping.setdefault("b", 2)):
        change()
        seen.append(readers[0].value)
    _ = mapping.get("b"), list(mapping.items()), dict(mapping)  # reading changes nothing
    assert len(set(seen)) == len(seen) and readers[0].value == seen[-1]


def test_code_cache_compiles_once_and_keeps_errors() -> None:
    cache = _harness.CodeCache(max_chars=40)
    first = cache.code("assert 1 == 1", "t.py", True)
    assert cache.code("assert 1 == 1", "t.py", True) is first and cache.compiled == 1
    with pytest.raises(SyntaxError):
        cache.code("assert (", "t.py", True)
    with pytest.raises(SyntaxError):  # the same error again, not a second compile
        cache.code("assert (", "t.py", True)
    assert cache.compiled == 2
    cache.code("x = 1  # " + "y" * 40, "u.py", False)  # over max_chars: the oldest entries go
    assert cache.code("assert 1 == 1", "t.py", True) is not first and cache.compiled == 4
    job = {"mode": "assert", "prelude": "p = 1", "setup": "s = 1", "units": ["assert p == s"]}
    assert _harness.precompile(job, cache) and not _harness.precompile(job, cache)


WARM_UP_SCRIPT = """
import json, linecache, os
from cipo.sandbox import _harness
_harness.warm_up(1)
left = _harness.PROGRAM_FILE in linecache.cache or bool(_harness._last_false_comparison)
print(json.dumps({"left_behind": left}))
"""


def test_warm_up_takes_every_harness_path_and_leaves_nothing_behind() -> None:
    # In a process of its own: the harness restores builtins, which this one should keep as they are.
    done = subprocess.run([sys.executable, "-c", WARM_UP_SCRIPT], capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert records.pop() == {"left_behind": False}
    passed = [r for r in records if r.get("ok") is True and "s" in r]
    failed = [r for r in records if r.get("ok") is False and "s" in r]
    assert passed and failed and "message" in failed[0]["error"]  # guards, asserts and error messages ran
    assert any("program_error" in r for r in records)  # the program-error path
    assert any("value" in r and "s" not in r for r in records)  # the function-call path
    assert len(passed) == 3 * (len(_harness._WARM_UP_UNITS) - 1)  # every test but the failing one, each round


def test_supervisor_reads_every_message_of_one_read() -> None:
    read, write = os.pipe()
    try:
        os.write(write, _protocol.encode_message({"a": 1}) + _protocol.encode_message({"b": [2]}))
        os.write(write, _protocol.encode_message({"c": 3})[:5])  # the start of a third, then end of stream
        os.close(write)
        decoder = _protocol.FrameDecoder()
        messages = [_protocol.read_message(read, decoder) for _ in range(3)]
    finally:
        os.close(read)
    assert messages == [{"a": 1}, {"b": [2]}, None]


# -- pure helpers -----------------------------------------------------------------------------------------------


def test_to_plain_copies_builtin_data_and_refuses_the_rest() -> None:
    Pair = namedtuple("Pair", "a b")

    class Loud(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    value = {"c": Counter("ab"), "o": OrderedDict(a=1), "d": deque([1.5]), "p": Pair(Loud(3), "s"), "s": {1}}
    plain = _harness.to_plain(value)
    assert plain == {"c": {"a": 1, "b": 1}, "o": OrderedDict(a=1), "d": deque([1.5]), "p": (3, "s"), "s": {1}}
    assert type(plain["c"]) is dict and type(plain["p"]) is tuple and type(plain["p"][0]) is int
    for hostile in (object(), [1, object()], {object(): 1}, lambda: 1):
        with pytest.raises(_harness.UntrustedValue):
            _harness.to_plain(hostile)
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(_harness.UntrustedValue):
        _harness.to_plain(cycle)


def test_guarded_asserts() -> None:
    namespace = dict(_harness.GUARDS)

    class Anything:
        def __eq__(self, other: object) -> bool:
            return True

        def __bool__(self) -> bool:
            return True

    namespace["thing"] = Anything()
    exec(_harness.compile_test("assert thing"), namespace)  # truth needs no plain data
    exec(
        _harness.compile_test("assert not (1 > 2) and [1] and 0 < 1 < 2 and (1 if [] else 2) == 2"), namespace
    )
    exec(_harness.compile_test("assert thing is not None and abs(-2) == 2"), namespace)
    for test in ("assert thing == 1", "assert 1 == thing", "assert thing in [1]", "assert abs(thing) < 1"):
        with pytest.raises(_harness.UntrustedValue):
            exec(_harness.compile_test(test), namespace)


def test_split_check_function() -> None:
    parameter, steps = split_check_function(
        "def check(c):\n    '''doc'''\n    x = 1\n    assert c(x)\n    assert True\n"
    )
    assert parameter == "c" and [(s.source, s.is_test) for s in steps] == [
        ("x = 1", False),
        ("assert c(x)", True),
        ("assert True", False),
    ]
    assert split_check_function("def check(c):\n    return\n") is None
    assert split_check_function("def other(c):\n    assert c\n") is None
    # Cached by source, but every caller gets its own list of steps.
    code = "def check(c):\n    assert c(1)\n"
    first = split_check_function(code)
    assert first is not None
    first[1].append(first[1][0])
    again = split_check_function(code)
    assert again is not None and len(again[1]) == 1 and again[1] is not first[1]


def test_value_reading_and_matching() -> None:
    assert parse_plain_repr(
        "[(1, -2.5), {'a': {1, 2}}, frozenset({3}), set(), inf, -nan, (1+2j), None, b'x']"
    )[0] == (1, -2.5)
    with pytest.raises(ValueError):
        parse_plain_repr("__import__('os').system('true')")
    assert values_match((1, [2.0000001]), [1, [2]]) and values_match({1: "a"}, {"1": "a"})
    assert not values_match(True, 1) and not values_match(1, True) and not values_match("1", 1)
    assert values_match({1, 2}, [2, 1]) and not values_match([1, 2], [2, 1])
    assert normalized_output("a  \r\nb\n\n") == ["a", "b"] == normalized_output("a\nb")
    assert PASSED == "passed"
