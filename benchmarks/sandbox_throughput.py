"""Sandboxed executions per second: the pre-started pool against the naive one-sandbox-per-run approach.

Both approaches run the same programs with the same isolation level, limits and concurrency (one run per
worker at a time). The pool forks a warm, pre-started interpreter inside a long-lived sandbox for every run; the
naive approach starts a new sandbox and a new interpreter for every run. A third row, for reference only, starts
a bare ``python`` per run with no isolation at all.

The workload is MBPP's canonical solutions with their assert tests (from the shared benchmark folder), or tiny
synthetic programs when the folder is absent. Usage::

    python benchmarks/sandbox_throughput.py [--runs 400] [--naive-runs 60] [--levels bwrap namespaces rlimits]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cipo.rewards.code import parse_tests, tests_from_mbpp
from cipo.sandbox import Sandbox, SandboxConfig, SandboxUnavailable, TestSuite, run_test_batch
from cipo.sandbox.isolation import IsolationLevel, unavailable_reason

SHARED_BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
SYNTHETIC = ("def add(a, b):\n    return a + b\n", ["assert add(1, 2) == 3", "assert add(2, 2) == 4"])


def workload(distinct: int, count: int) -> list[tuple[str, TestSuite]]:
    """``count`` runs cycling over the same ``distinct`` problems (both approaches get the same mix)."""
    mbpp_file = SHARED_BENCHMARKS / "mbpp_sanitized.json"
    if mbpp_file.is_file():
        rows = json.loads(mbpp_file.read_text())[:distinct]
        items = [(row["code"], parse_tests(tests_from_mbpp(row))) for row in rows]
    else:
        items = [(SYNTHETIC[0], parse_tests(SYNTHETIC[1]))]
    return [items[i % len(items)] for i in range(count)]


def measure(
    level: str, workers: int, naive: bool, items: list[tuple[str, TestSuite]]
) -> tuple[str, float, float]:
    """(level in use, start-up seconds, executions per second) for one approach; every run must pass."""
    started = time.monotonic()
    config = SandboxConfig(isolation=level, workers=workers, timeout_s=60, fresh_sandbox_per_run=naive)
    with Sandbox(config) as sandbox:
        startup = time.monotonic() - started
        started = time.monotonic()
        reports = run_test_batch(items, sandbox)
        elapsed = time.monotonic() - started
    failed = [f"{report.status}: {report.error}" for report in reports if not report.passed]
    if failed:
        raise RuntimeError(f"{len(failed)} runs failed at level {level} (naive={naive}): {failed[:5]}")
    return sandbox.level.value, startup, len(items) / elapsed


def measure_bare(workers: int, items: list[tuple[str, TestSuite]]) -> float:
    """Executions per second of `python -c program+tests`, unsandboxed: the cost of an interpreter start."""

    def run(item: tuple[str, TestSuite]) -> None:
        program, suite = item
        source = program + "\n" + getattr(suite, "setup", "") + "\n" + "\n".join(getattr(suite, "tests", ()))
        subprocess.run([sys.executable, "-I", "-c", source], check=True, capture_output=True)

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, items))
    return len(items) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=400, help="runs through the pool")
    parser.add_argument(
        "--naive-runs",
        type=int,
        default=60,
        help="runs with a fresh sandbox each; also the number of distinct problems",
    )
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (default: 2 cores)")
    parser.add_argument("--levels", nargs="+", default=["auto"], help="isolation levels to compare")
    args = parser.parse_args()

    source = (
        "MBPP canonical solutions" if (SHARED_BENCHMARKS / "mbpp_sanitized.json").is_file() else "synthetic"
    )
    print(f"workload: {source}, {args.workers} runs in parallel\n")
    header = f"{'level':<11} {'approach':<34} {'runs':>5} {'start-up s':>10} {'exec/s':>8} {'speed-up':>8}"
    print(header)
    print("-" * len(header))
    for level in args.levels:
        if level != "auto" and (reason := unavailable_reason(IsolationLevel(level))):
            print(f"{level:<11} unavailable: {reason}")
            continue
        try:
            _, naive_start, naive_rate = measure(
                level, args.workers, True, workload(args.naive_runs, args.naive_runs)
            )
            shown, pool_start, pool_rate = measure(
                level, args.workers, False, workload(args.naive_runs, args.runs)
            )
        except SandboxUnavailable as error:
            print(f"{level:<11} unavailable: {error}")
            continue
        for approach, runs, start, rate in (
            ("naive: new sandbox per run", args.naive_runs, naive_start, naive_rate),
            ("pool: fork of a warm interpreter", args.runs, pool_start, pool_rate),
        ):
            speedup = f"{rate / naive_rate:.1f}x"
            print(f"{shown:<11} {approach:<34} {runs:>5} {start:>10.2f} {rate:>8.1f} {speedup:>8}")
    bare_rate = measure_bare(args.workers, workload(args.naive_runs, args.naive_runs))
    print(
        f"{'none':<11} {'reference: bare python per run':<34} {args.naive_runs:>5} {'':>10} {bare_rate:>8.1f} {'':>8}"
    )


if __name__ == "__main__":
    main()
