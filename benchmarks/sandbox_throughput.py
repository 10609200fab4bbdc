"""Sandboxed programs per second: the pool against a bare interpreter per program, measured in the same run.

The workload is HumanEval's canonical solutions with their tests (``--workload mbpp``: MBPP's; tiny synthetic
programs when the shared benchmark folder is absent). Two ways to run the same programs, two at a time
(``--workers``):

* pool: ``Sandbox.run_many`` at each isolation level, every program in a fresh child of a warm, pre-started
  supervisor, with every limit and the cleanup after each run;
* bare: a fresh, unsandboxed ``python -I -c program+tests`` process per program (no isolation at all, but a
  session of its own, as each pool run has): what a program costs when each one gets its own interpreter.

The two alternate for ``--rounds`` rounds and the ratio divides their totals, so that a machine whose load
changes during the run (a shared one) slows both alike. Every run must pass: the pool's results are graded
(``cipo.sandbox.testing``) after the clock stops, and a bare run must exit 0. ``--naive-runs N`` adds the naive
sandbox (a new sandbox and interpreter per run, ``fresh_sandbox_per_run``); ``--profile`` adds where the CPU
time went, per program, read from /proc, the bare interpreter's CPU, and what the floor (the tests' own run
time) and a bare fork and exit leave as the best ratio a fork-per-run sandbox could reach by CPU. Usage::

    python benchmarks/sandbox_throughput.py [--workload humaneval] [--runs 1000] [--rounds 3]
        [--levels bwrap namespaces rlimits] [--naive-runs 0] [--profile] [--limit 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cipo.sandbox as sandbox_package
from cipo.rewards.code import parse_tests, tests_from_humaneval, tests_from_mbpp
from cipo.sandbox import Sandbox, SandboxConfig, SandboxUnavailable, TestSuite
from cipo.sandbox.isolation import IsolationLevel, unavailable_reason
from cipo.sandbox.testing import _plan

SHARED_BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
SYNTHETIC = ("def add(a, b):\n    return a + b\n", ["assert add(1, 2) == 3", "assert add(2, 2) == 4"])
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Program:
    """One workload item: for the pool (program and suite) and for the bare interpreter (one script)."""

    program: str
    suite: TestSuite
    script: str


def load_workload(name: str) -> tuple[str, list[Program]]:
    if name == "humaneval" and (SHARED_BENCHMARKS / "HumanEval.jsonl.gz").is_file():
        with gzip.open(SHARED_BENCHMARKS / "HumanEval.jsonl.gz", "rt") as handle:
            rows = [json.loads(line) for line in handle]
        programs = [
            Program(
                row["canonical_solution"],
                parse_tests(tests_from_humaneval(row)),
                f"{row['prompt']}{row['canonical_solution']}\n{row['test']}\ncheck({row['entry_point']})\n",
            )
            for row in rows
        ]
        return "HumanEval canonical solutions", programs
    if name == "mbpp" and (SHARED_BENCHMARKS / "mbpp_sanitized.json").is_file():
        rows = json.loads((SHARED_BENCHMARKS / "mbpp_sanitized.json").read_text())
        programs = [
            Program(
                row["code"],
                parse_tests(tests_from_mbpp(row)),
                "\n".join([*(row.get("test_imports") or []), row["code"], *row["test_list"]]) + "\n",
            )
            for row in rows
        ]
        return "MBPP canonical solutions", programs
    program, tests = SYNTHETIC
    return "synthetic (shared benchmark folder absent)", [
        Program(program, parse_tests(tests), program + "\n".join(tests) + "\n")
    ]


def cycle(programs: list[Program], count: int) -> list[Program]:
    return [programs[i % len(programs)] for i in range(count)]


@dataclass
class Tally:
    runs: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0  # bare runs only: the CPU time of the interpreters (user + system)

    @property
    def rate(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


@dataclass
class CpuUse:
    """CPU seconds and minor page faults, summed over rounds: the host (this process), the supervisors
    themselves, and the run children they forked (reaped, hence counted in the supervisors' children fields)."""

    host_s: float = 0.0
    supervisor_s: float = 0.0
    supervisor_faults: int = 0
    children_s: float = 0.0
    children_faults: int = 0
    supervisors: list[int] = field(default_factory=list)

    def snapshot(self) -> list[float]:
        totals = [0.0] * 4
        for pid in self.supervisors:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            minflt, cminflt, utime, stime, cutime, cstime = (int(fields[i]) for i in (7, 8, 11, 12, 13, 14))
            totals[0] += (utime + stime) / CLOCK_TICKS
            totals[1] += minflt
            totals[2] += (cutime + cstime) / CLOCK_TICKS
            totals[3] += cminflt
        host = os.times()
        return [host.user + host.system, *totals]

    def add(self, before: list[float], after: list[float]) -> None:
        deltas = [b - a for a, b in zip(before, after, strict=True)]
        self.host_s += deltas[0]
        self.supervisor_s += deltas[1]
        self.supervisor_faults += int(deltas[2])
        self.children_s += deltas[3]
        self.children_faults += int(deltas[4])


def supervisor_pids() -> list[int]:
    """The in-sandbox supervisors among this process's descendants (the python processes running _worker.py)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command and b"bwrap" not in command[0] and any(part.endswith(b"_worker.py") for part in command):
            if _descends_from(int(entry), os.getpid()):
                found.append(int(entry))
    return found


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


def pool_round(sandbox: Sandbox, programs: list[Program], tally: Tally, cpu: CpuUse | None) -> None:
    plans = [_plan(program.program, program.suite, None) for program in programs]
    requests = [request for plan in plans for request in plan.requests]
    before = cpu.snapshot() if cpu else None
    started = time.perf_counter()
    results = sandbox.run_many(requests)
    tally.seconds += time.perf_counter() - started
    if cpu and before:
        cpu.add(before, cpu.snapshot())
    tally.runs += len(programs)
    outcomes = iter(results)
    reports = [plan.grade([next(outcomes) for _ in plan.requests], sandbox) for plan in plans]
    failed = [f"{report.status}: {report.error}" for report in reports if not report.passed]
    if failed:
        raise RuntimeError(f"{len(failed)} pool runs failed at level {sandbox.level}: {failed[:3]}")


def bare_round(programs: list[Program], workers: int, tally: Tally) -> None:
    def run(program: Program) -> None:
        # Each in a session of its own, as each pool run is: with autogroup scheduling (Linux's default) a
        # session is a scheduling group, so on a loaded machine the two sides get the same share of the CPU.
        command = [sys.executable, "-I", "-c", program.script]
        subprocess.run(command, check=True, capture_output=True, start_new_session=True)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, programs))
    tally.seconds += time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the bare interpreters, each waited for
    tally.cpu_s += after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    tally.runs += len(programs)


FLOOR_SCRIPT = """
import json, sys, time
scripts = json.load(sys.stdin)
started = time.process_time()
for script in scripts:
    exec(compile(script, "<program>", "exec"), {"__name__": "__cipo_floor__"})
print(time.process_time() - started)
"""


def plan_ms(programs: list[Program]) -> tuple[float, float]:
    """Host CPU ms per program to build the test plans (done before the clock in pool rounds): the first time,
    and again (a problem's check function is split once, then cached)."""
    timings = []
    for _ in range(2):
        started = time.process_time()
        for program in programs:
            _plan(program.program, program.suite, None)
        timings.append((time.process_time() - started) * 1e3 / len(programs))
    return timings[0], timings[1]


def floor_ms(programs: list[Program]) -> float:
    """CPU ms per program of the tests themselves: every program in one warm interpreter, unsandboxed."""
    scripts = json.dumps([program.script for program in programs])
    done = subprocess.run(
        [sys.executable, "-I", "-c", FLOOR_SCRIPT], input=scripts, capture_output=True, text=True, check=True
    )
    return float(done.stdout) * 1e3 / len(programs)


FORK_SCRIPT = """
import gc, os, resource, sys
sys.path.insert(0, sys.argv[1])
import _worker  # the supervisor's own module, with everything it imports
_worker._preload()
gc.collect()
gc.freeze()
def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
runs = int(sys.argv[2])
parent, child = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
for _ in range(runs):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print((cpu(resource.RUSAGE_SELF) - parent) * 1e3 / runs, (cpu(resource.RUSAGE_CHILDREN) - child) * 1e3 / runs)
"""


def fork_exit_ms(runs: int = 500) -> tuple[float, float]:
    """CPU ms of one fork and immediate exit of a process holding the supervisor's modules: in the parent and in
    the child. What a fresh child per run costs before it does anything."""
    sandbox_dir = Path(sandbox_package.__file__).parent
    done = subprocess.run(
        [sys.executable, "-I", "-c", FORK_SCRIPT, str(sandbox_dir), str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    parent, child = map(float, done.stdout.split())
    return parent, child


def naive_rate(level: str, workers: int, programs: list[Program]) -> float:
    config = SandboxConfig(isolation=level, workers=workers, timeout_s=60, fresh_sandbox_per_run=True)
    tally = Tally()
    with Sandbox(config) as sandbox:
        pool_round(sandbox, programs, tally, None)
    return tally.rate


def measure_level(level: str, args: argparse.Namespace, programs: list[Program]) -> Tally:
    """Measure one level, print its rows; return the bare interpreter's tally."""
    config = SandboxConfig(isolation=level, workers=args.workers, timeout_s=60)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with Sandbox(config) as sandbox:
        startup = time.perf_counter() - started
        pool_round(sandbox, programs, Tally(), None)  # warm-up: every problem's tests compiled once
        cpu = CpuUse(supervisors=supervisor_pids()) if args.profile else None
        pool, bare = Tally(), Tally()
        for _ in range(args.rounds):
            bare_round(programs, args.workers, bare)
            pool_round(sandbox, cycle(programs, args.runs), pool, cpu)
        shown = sandbox.level.value
    load = f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    print(
        f"{shown:<11} {pool.runs:>6} {pool.rate:>12.1f} {bare.runs:>6} {bare.rate:>12.1f} "
        f"{pool.rate / bare.rate:>7.1f}x {startup:>10.2f} {load:>12}"
    )
    if cpu:
        print_profile(shown, cpu, pool.runs, bare)
    if args.naive_runs:
        rate = naive_rate(level, args.workers, cycle(programs, args.naive_runs))
        print(f"{shown:<11} naive (new sandbox per run): {rate:.1f} programs/s over {args.naive_runs} runs")
    return bare


def print_profile(level: str, cpu: CpuUse, runs: int, bare: Tally) -> None:
    per_run = 1e3 / runs
    pool_ms = (cpu.host_s + cpu.supervisor_s + cpu.children_s) * per_run
    bare_ms = bare.cpu_s * 1e3 / bare.runs
    print(
        f"{'':<11} per program, CPU ms (minor page faults): host {cpu.host_s * per_run:.2f}, supervisor "
        f"{cpu.supervisor_s * per_run:.2f} ({cpu.supervisor_faults / runs:.0f}), run child "
        f"{cpu.children_s * per_run:.2f} ({cpu.children_faults / runs:.0f}); pool {pool_ms:.2f} in all, "
        f"bare {bare_ms:.2f}: {bare_ms / pool_ms:.1f}x less CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=("humaneval", "mbpp"), default="humaneval")
    parser.add_argument("--runs", type=int, default=1000, help="pool runs per round (cycling over the set)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating pool and bare rounds per level")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (default: 2 cores)")
    parser.add_argument("--levels", nargs="+", default=["bwrap", "namespaces"], help="isolation levels")
    parser.add_argument("--naive-runs", type=int, default=0, help="runs with a new sandbox each (0: skip)")
    parser.add_argument("--profile", action="store_true", help="CPU time and page faults per program")
    parser.add_argument("--limit", type=int, default=0, help="only the first N programs of the set (0: all)")
    args = parser.parse_args()

    source, programs = load_workload(args.workload)
    programs = programs[: args.limit or None]
    print(f"workload: {source} ({len(programs)} programs), {args.workers} runs in parallel")
    print(f"bare: a fresh `{Path(sys.executable).name} -I -c program+tests` per program, no isolation")
    first, again = plan_ms(programs)
    print(
        f"test plans (host, before the clock): {first:.2f} CPU ms a program the first time, {again:.3f} again\n"
    )
    header = (
        f"{'level':<11} {'pool':>6} {'pool prog/s':>12} {'bare':>6} {'bare prog/s':>12} {'ratio':>8} "
        f"{'start-up s':>10} {'load avg':>12}"
    )
    print(header)
    print("-" * len(header))
    bare = Tally()
    for level in args.levels:
        if reason := unavailable_reason(IsolationLevel(level)):
            print(f"{level:<11} unavailable: {reason}")
            continue
        try:
            level_bare = measure_level(level, args, programs)
            bare.runs, bare.cpu_s = bare.runs + level_bare.runs, bare.cpu_s + level_bare.cpu_s
        except SandboxUnavailable as error:
            print(f"{level:<11} unavailable: {error}")
    floor = floor_ms(programs)
    print(f"\nfloor: the tests' own run time, every program in one interpreter: {floor:.2f} CPU ms each")
    if args.profile and bare.runs:
        bare_ms = bare.cpu_s * 1e3 / bare.runs
        parent, child = fork_exit_ms()
        print(
            f"bare interpreter: {bare_ms:.2f} CPU ms a program; a pool that cost nothing beyond the floor would "
            f"use {bare_ms / floor:.1f}x less CPU"
        )
        print(
            f"fork + exit of a process holding the supervisor's modules: {parent + child:.2f} CPU ms ({parent:.2f} "
            f"parent, {child:.2f} child); with the floor, {bare_ms / (floor + parent + child):.1f}x less CPU at most"
        )
    print("load avg: the 1-minute load average when the level started -> when it ended (this run included)")


if __name__ == "__main__":
    main()
