"""Hostile programs, at every isolation level: each scores 0, leaves no process behind and leaves the host alone.

Every attack runs against tests it does not honestly pass (``add`` is wrong or missing), so a score above 0
means the trick worked. Processes an attack starts rename themselves to ``MARK`` so that survivors can be
found in the host's /proc. A few attacks are about isolation that the ``rlimits`` level does not provide
(network, hidden files, private /tmp); they are skipped there, as docs/rewards.md, Security model says.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cipo.rewards.code import parse_tests
from cipo.sandbox import ExecutionRequest, Sandbox, SandboxConfig, SandboxUnavailable, run_tests
from cipo.sandbox.isolation import IsolationLevel, unavailable_reason

MARK = "cipoevil"
RENAME = f"import ctypes\nctypes.CDLL(None).prctl(15, b'{MARK}', 0, 0, 0)\n"
ADD_TESTS = {"style": "assert", "tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]}
TOLERANCE_TESTS = {"style": "assert", "tests": ["assert abs(add(1, 2) - 3) < 1e-9"]}
ISCLOSE_TESTS = {"style": "assert", "tests": ["assert math.isclose(add(1, 2), 3)"], "setup": "import math"}
NOT_ISOLATED_AT_RLIMITS = (
    "the rlimits level has no private network or file system (docs/rewards.md, Security model)"
)
SAME_USER_AT_RLIMITS = (
    "at the rlimits level without root, programs run as this user and can touch its processes and files"
)


@dataclass(frozen=True)
class Attack:
    program: str
    tests: object = None
    needs_own_uid: bool = False  # only contained when programs run under a uid of their own


def _same_user_as_host(sandbox: Sandbox) -> bool:
    return sandbox.level is IsolationLevel.RLIMITS and os.geteuid() != 0


ATTACKS = {
    "infinite_loop": Attack("def add(a, b):\n    while True:\n        pass\n"),
    "infinite_loop_at_import": Attack("while True:\n    pass\n"),
    "sleep_forever": Attack("import time\ntime.sleep(10_000)\n"),
    "sigstop_self": Attack(
        "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)\ndef add(a, b):\n    return a + b\n"
    ),
    "fork_bomb": Attack(
        RENAME + "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    ),
    "thread_bomb": Attack(
        "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(100,)).start()\n"
    ),
    "memory_bomb": Attack("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n"),
    "memory_bomb_one_block": Attack("block = bytearray(64 * 1024**3)\n"),
    "disk_fill_one_file": Attack(
        "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 2**20)\n"
    ),
    "disk_fill_many_files": Attack(
        "i = 0\nwhile True:\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'x' * 500_000)\n    i += 1\n"
    ),
    "huge_output": Attack("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"),
    "huge_stderr": Attack("import sys\nwhile True:\n    sys.stderr.write('x' * 65536)\n"),
    "signal_ignoring": Attack(
        RENAME + "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, "
        "signal.SIGALRM):\n    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n"
    ),
    "double_fork_setsid": Attack(
        RENAME + "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(10_000)\n    os._exit(0)\ndef add(a, b):\n    return 0\n"
    ),
    "orphan_outlives_tests": Attack(
        RENAME + "import os, time\nif os.fork() == 0:\n    os.setsid()\n    while True:\n        pass\n"
        "def add(a, b):\n    return a - b\n"
    ),
    "sys_exit_0": Attack("import sys\nsys.exit(0)\n"),
    "os_exit_0": Attack("import os\nos._exit(0)\n"),
    "sys_exit_in_function": Attack("import sys\ndef add(a, b):\n    sys.exit(0)\n"),
    "os_exit_in_function": Attack("import os\ndef add(a, b):\n    os._exit(0)\n"),
    "raise_system_exit_in_function": Attack("def add(a, b):\n    raise SystemExit(0)\n"),
    "fake_success_markers": Attack(
        "print('PASSED'); print('All tests passed'); print('OK (2 tests)')\n"
        'print(\'{"s": "0", "i": 0, "ok": true}\')\nimport os\nos._exit(0)\n'
    ),
    "forged_report_records": Attack(
        "import json, os\nfor i in range(2):\n"
        "    os.write(3, (json.dumps({'s': 'guess', 'i': i, 'ok': True}) + '\\n').encode())\nos._exit(0)\n"
    ),
    "eq_always_true": Attack(
        "class Anything:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
        "        return False\n    __hash__ = object.__hash__\ndef add(a, b):\n    return Anything()\n"
    ),
    "int_subclass_eq_always_true": Attack(
        "class FakeInt(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return FakeInt(0)\n"
    ),
    "sub_and_abs_hack": Attack(
        "class Zero:\n    def __sub__(self, other):\n        return self\n    def __abs__(self):\n        return 0.0\n"
        "def add(a, b):\n    return Zero()\n",
        TOLERANCE_TESTS,
    ),
    "patch_builtins_abs": Attack(
        "import builtins\nbuiltins.abs = lambda x: 0\ndef add(a, b):\n    return 0\n", TOLERANCE_TESTS
    ),
    "patch_builtins_during_call": Attack(
        "import builtins\ndef add(a, b):\n    builtins.abs = lambda x: 0\n    return 0\n",
        {"style": "assert", "tests": ["assert abs(add(1, 2) - 3) < 1e-9"] * 2},
    ),
    "patch_math_during_call": Attack(
        "import math\ndef add(a, b):\n    math.isclose = lambda *a, **k: True\n    return 0\n",
        {"style": "assert", "tests": ["assert math.isclose(add(1, 2), 3)"] * 2, "setup": "import math"},
    ),
    "patch_math_isclose": Attack(
        "import math\nmath.isclose = lambda *a, **k: True\ndef add(a, b):\n    return 0\n", ISCLOSE_TESTS
    ),
    "patch_sys_modules": Attack(
        "import sys, types\nfake = types.ModuleType('math')\nfake.isclose = lambda *a, **k: True\n"
        "sys.modules['math'] = fake\ndef add(a, b):\n    return 0\n",
        ISCLOSE_TESTS,
    ),
    "patch_assertion_error": Attack(
        "import builtins\nclass Quiet(Exception):\n    pass\nbuiltins.AssertionError = Quiet\ndef add(a, b):\n    return 0\n"
    ),
    "redefine_check": Attack(
        "def check(candidate):\n    pass\ndef add(a, b):\n    return 0\n",
        {
            "style": "assert",
            "check": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
            "entry_point": "add",
        },
    ),
    "redefine_prompt_helper": Attack(
        "def double(x):\n    return None\ndef add(a, b):\n    return None\n",
        {
            "style": "assert",
            "check": "def check(candidate):\n    assert candidate(3, 3) == double(3)\n",
            "entry_point": "add",
            "prelude": "def double(x):\n    return 2 * x\n",
        },
    ),
    "kill_the_supervisor": Attack(
        "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError:\n    pass\n"
        "def add(a, b):\n    return 0\n"
    ),
    "kill_everything_visible": Attack(
        "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\ndef add(a, b):\n    return 0\n",
        needs_own_uid=True,
    ),
    "kill_self_during_tests": Attack(
        "import os, signal\ndef add(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)\n    return a + b\n"
    ),
    "recursion_bomb": Attack("def add(a, b):\n    return add(a, b)\n"),
    # The report channel is a file (read after the run): flooding it, or rewriting it from the start.
    "channel_flood": Attack(
        'import os\nwhile True:\n    os.write(3, b\'{"s": "x", "i": 0, "ok": true}\\n\' * 4096)\n'
    ),
    "channel_rewritten_from_start": Attack(
        "import json, os\ndef add(a, b):\n    os.lseek(3, 0, os.SEEK_SET)\n    os.ftruncate(3, 0)\n"
        "    for i in range(2):\n        os.write(3, (json.dumps({'s': 'guess', 'i': i, 'ok': True}) + '\\n').encode())\n"
        "    return 0\n"
    ),
}


def _survivors() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == MARK:
                found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module", params=[level.value for level in IsolationLevel])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    level = IsolationLevel(request.param)
    if reason := unavailable_reason(level):
        pytest.skip(reason)
    config = SandboxConfig(
        isolation=level.value,
        workers=2,
        timeout_s=1.0,
        memory_mb=512,
        file_size_mb=4,
        tmp_size_mb=16,
        max_processes=16,
        max_output_bytes=1 << 16,
    )
    try:
        sandbox = Sandbox(config)
    except SandboxUnavailable as error:
        pytest.skip(str(error))
    yield sandbox
    sandbox.close()


def _score(sandbox: Sandbox, program: str, tests: object = None) -> float:
    report = run_tests(program, parse_tests(tests or ADD_TESTS), sandbox)
    assert report.fraction == 0.0, (report.status, report.outcomes)
    return float(report.passed)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_scores_zero_and_leaves_nothing(sandbox: Sandbox, name: str) -> None:
    attack = ATTACKS[name]
    if attack.needs_own_uid and _same_user_as_host(sandbox):
        pytest.skip(SAME_USER_AT_RLIMITS)
    assert _score(sandbox, attack.program, attack.tests) == 0.0
    assert _survivors() == []


def test_honest_program_passes(sandbox: Sandbox) -> None:
    # The control: the same tests and limits do let a correct program through.
    report = run_tests("def add(a, b):\n    return a + b\n", parse_tests(ADD_TESTS), sandbox)
    assert report.passed, report


TAMPER_WITH_CACHED_TESTS = """
import sys
frame = sys._getframe()
while frame is not None and "cache" not in frame.f_locals:
    frame = frame.f_back
if frame is not None:
    cache = frame.f_locals["cache"]
    cache._entries = {key: compile("pass", "x", "exec") for key in cache._entries}
def add(a, b):
    return 0
"""


def test_cached_tests_cannot_be_changed_for_later_runs(sandbox: Sandbox) -> None:
    # A supervisor compiles each problem's tests once, for all its runs. A run that rewrites them (by walking
    # the harness's frames, which docs/rewards.md says can fake that run's own verdict) changes only its own copy.
    tests = parse_tests(ADD_TESTS)
    tampered = [run_tests(TAMPER_WITH_CACHED_TESTS, tests, sandbox) for _ in range(4)]  # both workers
    assert all(report.passed for report in tampered)  # the documented limit: its own verdict is faked
    later = [run_tests("def add(a, b):\n    return 0\n", tests, sandbox) for _ in range(4)]
    assert [report.fraction for report in later] == [0.0] * 4


def test_sandbox_keeps_working_after_attacks(sandbox: Sandbox) -> None:
    names = ["kill_the_supervisor", "fork_bomb"] + (
        [] if _same_user_as_host(sandbox) else ["kill_everything_visible"]
    )
    programs = [ATTACKS[name].program for name in names]
    for program in programs:
        _score(sandbox, program)
    results = [
        run_tests("def add(a, b):\n    return a + b\n", parse_tests(ADD_TESTS), sandbox) for _ in range(4)
    ]
    assert all(report.passed for report in results)


# -- network and file system ------------------------------------------------------------------------------------


def _skip_at_rlimits(sandbox: Sandbox) -> None:
    if sandbox.level is IsolationLevel.RLIMITS:
        pytest.skip(NOT_ISOLATED_AT_RLIMITS)


def test_network_is_unreachable(sandbox: Sandbox) -> None:
    _skip_at_rlimits(sandbox)
    connections = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        port = server.getsockname()[1]

        def accept() -> None:
            try:
                connections.append(server.accept())
            except OSError:
                pass

        listener = threading.Thread(target=accept)
        listener.start()
        program = (
            "import socket\n"
            f"for address in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('pypi.org', 443)]:\n"
            "    socket.create_connection(address, timeout=1).close()\n"
            "def add(a, b):\n    return a + b\n"
        )
        assert _score(sandbox, program) == 0.0
        listener.join()
    assert connections == []


def test_files_outside_the_work_dir_are_invisible(sandbox: Sandbox, tmp_path: Path) -> None:
    _skip_at_rlimits(sandbox)
    answer = tmp_path / "answer.py"
    answer.write_text("def add(a, b):\n    return a + b\n")
    answer.chmod(0o644)
    tmp_path.chmod(0o755)  # readable by anyone on the host: only the sandbox's own view hides it
    program = f"exec(open({str(answer)!r}).read())\n"
    assert _score(sandbox, program) == 0.0


def test_benchmark_data_is_invisible(sandbox: Sandbox) -> None:
    _skip_at_rlimits(sandbox)
    shared = Path(__file__).resolve().parents[2] / "shared"
    program = f"import os\nprint(os.listdir({str(shared)!r}))\ndef add(a, b):\n    return a + b\n"
    assert _score(sandbox, program) == 0.0


def test_writes_outside_the_work_dir_do_not_reach_the_host(sandbox: Sandbox, tmp_path: Path) -> None:
    if _same_user_as_host(sandbox):
        pytest.skip(SAME_USER_AT_RLIMITS)
    marker = f"cipo-escape-{uuid.uuid4().hex}"
    targets = [tmp_path / marker, Path(__file__).resolve().parent / marker, Path.home() / marker]
    if sandbox.level is not IsolationLevel.RLIMITS:  # world-writable directories are shared at rlimits
        targets += [Path("/tmp") / marker, Path("/dev/shm") / marker, Path("/var/tmp") / marker]
    writes = "".join(f"    try_write({str(t)!r})\n" for t in targets)
    program = (
        "def try_write(path):\n    try:\n        open(path, 'w').write('escaped')\n    except OSError:\n        pass\n"
        f"if True:\n{writes}"
        "def add(a, b):\n    return 0\n"
    )
    assert _score(sandbox, program) == 0.0
    assert [t for t in targets if t.exists()] == []


def test_files_do_not_persist_between_runs(sandbox: Sandbox) -> None:
    if sandbox.level is IsolationLevel.RLIMITS:
        places = ["os.getcwd()"]  # only the work dir is private at rlimits
    else:
        places = ["os.getcwd()", "'/tmp'", "'/dev/shm'"]
    write = "import os\n" + "".join(f"open(os.path.join({p}, 'cache'), 'w').write('x')\n" for p in places)
    for _ in range(2):  # both workers
        sandbox.run_many([_request(write)] * 2)
    probe = "import os\n" + "".join(f"print(os.path.exists(os.path.join({p}, 'cache')))\n" for p in places)
    results = sandbox.run_many([_request(probe)] * 4)
    assert all(result.stdout.split() == ["False"] * len(places) for result in results), results


def _request(program: str) -> ExecutionRequest:
    return ExecutionRequest(program)
