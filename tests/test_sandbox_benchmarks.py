"""Real benchmarks through the code reward: canonical HumanEval and MBPP solutions pass, mutated ones fail.

Reads the shared benchmark folder (the ``shared_benchmarks`` fixture skips when it is absent). One pass over both sets at the default isolation
level is in the fast suite; the other levels are ``slow``.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from cipo.rewards import code as code_module
from cipo.rewards.code import CodeReward, CodeRewardConfig, evaluate_completions
from cipo.sandbox import SandboxConfig, SandboxUnavailable
from cipo.sandbox.isolation import IsolationLevel, unavailable_reason

# Generous: the slowest canonical solution (MBPP 123) takes several seconds on a busy 2-core machine.
TIMEOUT_S = 60.0

# Appended to a solution: the function under test now returns a wrong value of the same kind.
PERTURB = """
def _cipo_perturb(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float, complex)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, (list, tuple)):
        return [*value, None]
    if isinstance(value, (set, frozenset)):
        return {*value, None}
    if isinstance(value, dict):
        return {**value, "?": None}
    return 0 if value is None else None

_cipo_original = ENTRY_POINT

def ENTRY_POINT(*args, **kwargs):
    return _cipo_perturb(_cipo_original(*args, **kwargs))
"""


def _load(folder: Path) -> tuple[list[dict], list[dict]]:
    with gzip.open(folder / "HumanEval.jsonl.gz", "rt") as handle:
        humaneval = [json.loads(line) for line in handle]
    mbpp = json.loads((folder / "mbpp_sanitized.json").read_text())
    return humaneval, mbpp


def _mbpp_entry_point(row: dict) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", SyntaxWarning
        )  # MBPP code has invalid escapes such as "\w" in regexes
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(row["code"])
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    called = [
        node.func.id
        for node in ast.walk(ast.parse(row["test_list"][0]))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]
    return next(name for name in called if name in defined)


def _canonical(humaneval: list[dict], mbpp: list[dict]) -> tuple[list[str], list[str], list[object]]:
    """Names, completions (continuations for HumanEval, fenced code for MBPP) and tests columns."""
    names = [row["task_id"] for row in humaneval] + [f"MBPP/{row['task_id']}" for row in mbpp]
    completions = [row["canonical_solution"] for row in humaneval]
    completions += [f"Here is my solution:\n```python\n{row['code']}\n```\n" for row in mbpp]
    tests = [code_module.tests_from_humaneval(row) for row in humaneval] + [
        json.dumps(code_module.tests_from_mbpp(row)) for row in mbpp
    ]
    return names, completions, tests


def _config(level: str) -> CodeRewardConfig:
    if level != "auto" and (reason := unavailable_reason(IsolationLevel(level))):
        pytest.skip(reason)
    return CodeRewardConfig(timeout_s=TIMEOUT_S, sandbox=SandboxConfig(isolation=level))


def _check_canonical(shared_benchmarks: Path, level: str) -> None:
    humaneval, mbpp = _load(shared_benchmarks)
    names, completions, tests = _canonical(humaneval, mbpp)
    try:
        scores = CodeReward(_config(level))(completions=completions, tests=tests, prompts=[""] * len(names))
    except SandboxUnavailable as error:
        pytest.skip(str(error))
    assert len(humaneval) == 164 and len(mbpp) == 427
    assert [name for name, score in zip(names, scores, strict=True) if score != 1.0] == []


def test_canonical_solutions_pass(shared_benchmarks: Path) -> None:
    _check_canonical(shared_benchmarks, "auto")


@pytest.mark.slow
@pytest.mark.parametrize("level", [level.value for level in IsolationLevel])
def test_canonical_solutions_pass_at_every_level(shared_benchmarks: Path, level: str) -> None:
    _check_canonical(shared_benchmarks, level)


def test_mutated_solutions_fail(shared_benchmarks: Path) -> None:
    humaneval, mbpp = _load(shared_benchmarks)
    names = [row["task_id"] for row in humaneval] + [f"MBPP/{row['task_id']}" for row in mbpp]
    programs = [
        row["prompt"] + row["canonical_solution"] + PERTURB.replace("ENTRY_POINT", row["entry_point"])
        for row in humaneval
    ]
    programs += [row["code"] + PERTURB.replace("ENTRY_POINT", _mbpp_entry_point(row)) for row in mbpp]
    # Chat-style completions that restate the whole function, in a fenced block.
    completions = [f"```python\n{program}\n```" for program in programs]
    tests = [code_module.tests_from_humaneval(row) for row in humaneval] + [
        code_module.tests_from_mbpp(row) for row in mbpp
    ]
    reports = evaluate_completions(completions, tests, _config("auto"))
    survivors = [name for name, report in zip(names, reports, strict=True) if report.passed]
    assert survivors == []
    assert all(report.fraction < 1.0 for report in reports)


@pytest.mark.slow
def test_throughput_benchmark_prints_pool_bare_and_ratio(shared_benchmarks: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "sandbox_throughput.py"
    command = [sys.executable, str(script), "--limit", "8", "--runs", "16", "--rounds", "1"]
    output = subprocess.run(
        [*command, "--levels", "rlimits", "--profile"], capture_output=True, text=True, check=True
    ).stdout
    assert "HumanEval canonical solutions (8 programs)" in output
    plans = re.search(r"test plans .*: ([\d.]+) CPU ms a program the first time, ([\d.]+) again", output)
    assert plans is not None and float(plans.group(2)) < float(plans.group(1))  # the split is cached
    row = re.search(r"^rlimits\s+16\s+([\d.]+)\s+8\s+([\d.]+)\s+([\d.]+)x", output, re.MULTILINE)
    assert row is not None, output
    pool, bare, ratio = map(float, row.groups())
    assert abs(pool / bare - ratio) <= 0.06 * ratio + 0.05  # the ratio is of the rates printed beside it
    assert "per program, CPU ms (minor page faults)" in output
    # The CPU side of the ratio: the pool's and the bare interpreter's CPU per program, and the floor's bound.
    cpu = re.search(r"pool ([\d.]+) in all, bare ([\d.]+): ([\d.]+)x less CPU", output)
    assert cpu is not None, output
    pool_ms, bare_ms, cpu_ratio = map(float, cpu.groups())
    assert pool_ms > 0 and abs(bare_ms / pool_ms - cpu_ratio) <= 0.06 * cpu_ratio + 0.05
    floor = re.search(r"floor: .*: ([\d.]+) CPU ms each\nbare interpreter: ([\d.]+) CPU ms a program", output)
    assert floor is not None, output
    assert float(floor.group(2)) == bare_ms  # one level: the same bare runs
    fork = re.search(r"fork \+ exit .*: ([\d.]+) CPU ms \(([\d.]+) parent, ([\d.]+) child\)", output)
    assert fork is not None and float(fork.group(1)) > 0, output
