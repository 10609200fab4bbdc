"""DebugBench (Python 3) graded offline: each row's examples become call-style tests run in the sandbox.

DebugBench's own metric submits code to LeetCode's online judge (hidden tests, an account). Here a fix is graded
on the problem's *examples* only ("Input: n = 12, k = 3" / "Output: 3"), the LeetCode way:

* the method under test is the one of ``class Solution`` whose parameters match the example's argument names
  (solutions often have helpers), called on a fresh ``Solution()`` with the arguments by position;
* ``ListNode``/``TreeNode`` arguments and results are built from and compared as LeetCode's lists;
* in-place problems ("do not return anything") compare the mutated argument;
* answers the problem accepts "in any order" are compared sorted.

Every example's expected output is also checked against the row's ``oracle_code`` on the same input (the
differential check, :func:`cross_check`): rows where the oracle disagrees with an example (several valid
answers, a misread example) are skipped. Rows whose examples cannot be parsed are skipped too, with the reason
counted, never guessed. The score is the **DebugBench-examples pass rate**: an offline approximation on the
examples, not DebugBench's accuracy.

Parsing is in :mod:`cipo.eval.leetcode_examples`; the generated test program (:mod:`cipo.eval.leetcode_prelude`
plus the code under test) only ever runs in the sandbox.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cipo.eval.benchmarks import BenchmarkFormatError, LoadedRows, make_prompt, read_records
from cipo.eval.leetcode_examples import (
    PRELUDE,
    Example,
    ExampleError,
    Method,
    call_tests,
    parse_example,
    solution_methods,
)
from cipo.rewards.code import CodeRewardConfig, evaluate_completions
from cipo.sandbox import TestReport

SCORE_NAME = "DebugBench-examples pass rate"
SCORE_NOTE = (
    "An offline approximation graded on each problem's examples (cross-checked against the reference "
    "solution), not DebugBench's accuracy, which LeetCode's online judge measures on hidden tests."
)
FIX_INSTRUCTION = (
    "Write the complete `class Solution` in a single Python code block (```python ... ```); the method keeps its "
    "name and parameters."
)

# ---------------------------------------------------------------------------------------------------------------
# Rows


@dataclass
class DebugBenchRow:
    """One gradeable DebugBench instance: the raw record, its method and its call-style tests."""

    record: dict[str, Any]
    method: Method
    tests: dict[str, Any]
    examples: list[Example] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"debugbench/{self.record['id']}"

    def problem(self) -> str:
        """The problem as LeetCode shows it: statement, examples, constraints, and the method's signature."""
        record = self.record
        parts = [record["description"].strip()]
        parts += [f"Example {i}:\n{text.strip()}" for i, text in enumerate(record["examples"], start=1)]
        if str(record.get("constraints") or "").strip():
            parts.append(f"Constraints:\n{record['constraints'].strip()}")
        parts.append(f"Starter code:\n```python\nclass Solution:\n    {self.method.signature}\n```")
        return "\n\n".join(parts)


def build_row(record: Mapping[str, Any]) -> DebugBenchRow:
    """The gradeable row of a DebugBench record, or ExampleError naming why it cannot be graded."""
    method, tests, examples = call_tests(record)
    return DebugBenchRow(dict(record), method, tests, examples)


def fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


# ---------------------------------------------------------------------------------------------------------------
# Reading a file, with the skipped rows counted and the oracle cross-check

REQUIRED_FIELDS = ("id", "slug", "bug_type", "level", "description", "examples", "oracle_code", "buggy_code")


@dataclass
class DebugBenchSet:
    """The gradeable rows of a file and what was left out: ``skipped`` counts records per reason."""

    rows: list[DebugBenchRow]
    records: int
    skipped: Counter[str] = field(default_factory=Counter)
    oracle_checked: int = 0
    unchecked: int = 0  # gradeable rows past a limit, never cross-checked

    def notes(self) -> dict[str, Any]:
        return {
            "score_name": SCORE_NAME,
            "score_note": SCORE_NOTE,
            "records": self.records,
            "gradeable": len(self.rows),
            "skipped": dict(self.skipped.most_common()),
            "oracle_checked": self.oracle_checked,
            "not_checked_past_limit": self.unchecked,
        }


def _checked_record(record: Mapping[str, Any], source: str, label: str) -> Mapping[str, Any]:
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise BenchmarkFormatError(
                f"{source}, {label}: field {name!r} is missing (fields: {sorted(record)})"
            )
    for name in ("slug", "bug_type", "level", "description", "oracle_code", "buggy_code"):
        if not isinstance(record[name], str) or not record[name].strip():
            raise BenchmarkFormatError(f"{source}, {label}: field {name!r} must be a non-empty string")
    return record


def read_debugbench(path: str | Path) -> DebugBenchSet:
    """Every record of a DebugBench file turned into a gradeable row, or counted under its skip reason. The
    examples are not checked against the oracle here (see :func:`cross_check`)."""
    rows, skipped, seen, count = [], Counter(), {}, 0
    for label, _, record in read_records(path):
        count += 1
        record = _checked_record(record, str(path), label)
        if str(record["id"]) in seen:
            raise BenchmarkFormatError(
                f"{path}, {label}: duplicate id {record['id']!r} (first at {seen[record['id']]})"
            )
        seen[str(record["id"])] = label
        try:
            rows.append(build_row(record))
        except ExampleError as error:
            skipped[str(error)] += 1
    return DebugBenchSet(rows, count, skipped)


def grade(
    rows: Sequence[DebugBenchRow], programs: Sequence[str], config: CodeRewardConfig | None = None
) -> list[TestReport]:
    """Run each program (plain code or a completion with a fenced block) against its row's tests, in the
    sandbox, through the code reward's path."""
    return evaluate_completions(list(programs), [row.tests for row in rows], config)


def oracle_reports(rows: Sequence[DebugBenchRow], config: CodeRewardConfig | None = None) -> list[TestReport]:
    return grade(rows, [fenced(row.record["oracle_code"]) for row in rows], config)


def cross_check(data: DebugBenchSet, limit: int | None = None, chunk: int = 64) -> DebugBenchSet:
    """The differential check: keep the rows whose examples the oracle reproduces on the same inputs (the
    first ``limit`` of them), count the others (wrong output, error, timeout) as ``oracle_fails_examples``."""
    kept: list[DebugBenchRow] = []
    skipped = Counter(data.skipped)
    checked = 0
    pending = list(data.rows)
    while pending and (limit is None or len(kept) < limit):
        size = chunk if limit is None else max(limit - len(kept), 1)
        batch, pending = pending[:size], pending[size:]
        checked += len(batch)
        for row, report in zip(batch, oracle_reports(batch), strict=True):
            if report.passed:
                kept.append(row)
            else:
                skipped["oracle_fails_examples"] += 1
    return DebugBenchSet(kept, data.records, skipped, checked, unchecked=len(pending))


# ---------------------------------------------------------------------------------------------------------------
# Evaluation rows and training data

TRAIN_MODES = ("fix", "solve")
FIX_PROMPT = "This solution has a bug:\n\n{buggy}\n\nFind and fix it."


def benchmark_rows(data: DebugBenchSet, instruction: str | None = None) -> list[dict[str, Any]]:
    """Rows in :mod:`cipo.eval.benchmarks`'s shape; ``attempt`` is the buggy code, for ``--fix-attempts``."""
    return [
        {
            "id": row.id,
            "prompt": make_prompt(row.problem(), "code", instruction or FIX_INSTRUCTION),
            "tests": row.tests,
            "attempt": fenced(row.record["buggy_code"]),
            "meta": dict(row.record),
        }
        for row in data.rows
    ]


def load_for_eval(path: str | Path, limit: int | None = None, instruction: str | None = None) -> LoadedRows:
    """``cipo eval --benchmark debugbench``: cross-checked rows, with the skip counts as their ``notes``."""
    data = cross_check(read_debugbench(path), limit)
    return LoadedRows(benchmark_rows(data, instruction), notes=data.notes())


def training_rows(data: DebugBenchSet, mode: str = "fix") -> list[dict[str, Any]]:
    """``cipo train`` rows: a conversational ``prompt`` and a ``tests`` column (JSON text) for the ``code``
    reward. ``fix``: one row per instance, the prompt shows the buggy code; ``solve``: one row per problem."""
    if mode not in TRAIN_MODES:
        raise ValueError(f"mode must be one of {TRAIN_MODES}, got {mode!r}")
    rows, slugs = [], set()
    for row in data.rows:
        if mode == "solve" and row.record["slug"] in slugs:
            continue
        slugs.add(row.record["slug"])
        problem = row.problem()
        if mode == "fix":
            problem += "\n\n" + FIX_PROMPT.format(buggy=fenced(row.record["buggy_code"]))
        rows.append(
            {
                "id": row.id,
                "slug": row.record["slug"],
                "bug_type": row.record["bug_type"],
                "level": row.record["level"],
                "prompt": [{"role": "user", "content": f"{problem}\n\n{FIX_INSTRUCTION}"}],
                "tests": json.dumps(row.tests),
            }
        )
    return rows


def split_by_slug(
    rows: Sequence[Mapping[str, Any]], held_out_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(train, held out): every problem (``slug``) lands in exactly one of them."""
    if not 0 < held_out_fraction < 1:
        raise ValueError(f"held_out_fraction must be between 0 and 1, got {held_out_fraction}")
    slugs = sorted({row["slug"] for row in rows})
    random.Random(seed).shuffle(slugs)
    held_out = set(slugs[: max(1, round(held_out_fraction * len(slugs)))])
    return [r for r in rows if r["slug"] not in held_out], [r for r in rows if r["slug"] in held_out]


def write_training_files(
    path: str | Path,
    output_dir: str | Path,
    *,
    mode: str = "fix",
    held_out_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``train.jsonl`` and ``heldout.jsonl`` (cross-checked rows, split by slug); return their counts."""
    data = cross_check(read_debugbench(path))
    train, held_out = split_by_slug(training_rows(data, mode), held_out_fraction, seed)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    for name, split in (("train.jsonl", train), ("heldout.jsonl", held_out)):
        with (output / name).open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in split)
    return {"train": len(train), "heldout": len(held_out), "output_dir": str(output), **data.notes()}


# ---------------------------------------------------------------------------------------------------------------
# Sanity of the grader, and a naive grader to compare with


def naive_tests(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a naive grader would run: the first method, keyword arguments, return values compared as parsed
    (no ListNode/TreeNode, no in-place, no "any order"; LeetCode's imports and classes are there, so that the
    code loads). ExampleError when the examples do not parse."""
    methods = solution_methods(str(record.get("oracle_code") or ""))
    if not methods:
        raise ExampleError("no_method")
    examples = [parse_example(text) for text in record.get("examples") or []]
    if not examples:
        raise ExampleError("no_examples")
    cases = [{"args": [], "kwargs": e.arguments, "expected": e.expected} for e in examples]
    return {"style": "call", "entry_point": f"Solution.{methods[0].name}", "cases": cases, "prelude": PRELUDE}


def sample_rows(rows: Sequence[DebugBenchRow], size: int | None) -> list[DebugBenchRow]:
    """Every ``len(rows) // size``-th row: a fixed sample that spreads over the bug types (the file is sorted
    by them)."""
    if size is None or size >= len(rows):
        return list(rows)
    step = len(rows) / size
    return [rows[int(i * step)] for i in range(size)]


def sanity(
    path: str | Path, sample: int | None = None, config: CodeRewardConfig | None = None
) -> dict[str, Any]:
    """Grade the oracle and the buggy code of every gradeable row (or of a fixed sample), by examples only (no
    cross-check, which would make the oracle pass by construction); the naive grader too."""
    start = time.perf_counter()
    data = read_debugbench(path)
    rows = sample_rows(data.rows, sample)
    oracle = oracle_reports(rows, config)
    oracle_seconds = time.perf_counter() - start
    buggy = grade(rows, [fenced(row.record["buggy_code"]) for row in rows], config)
    buggy_seconds = time.perf_counter() - start - oracle_seconds
    summary = {
        "records": data.records,
        "gradeable": len(data.rows),
        "skipped": dict(data.skipped.most_common()),
        "graded": len(rows),
        "oracle_passed": sum(r.passed for r in oracle),
        "buggy_passed": sum(r.passed for r in buggy),
        "oracle_failures": [row.id for row, r in zip(rows, oracle, strict=True) if not r.passed],
        "seconds": {"oracle": round(oracle_seconds, 1), "buggy": round(buggy_seconds, 1)},
    }
    summary["oracle_pass_rate"] = summary["oracle_passed"] / len(rows)
    summary["buggy_pass_rate"] = summary["buggy_passed"] / len(rows)
    return summary


def naive_sanity(path: str | Path, config: CodeRewardConfig | None = None) -> dict[str, Any]:
    """The naive grader on every record whose examples it can read: oracle and buggy pass rates."""
    records, tests = [], []
    for _, _, record in read_records(path):
        try:
            tests.append(naive_tests(record))
        except ExampleError:
            continue
        records.append(record)
    oracle = evaluate_completions([fenced(r["oracle_code"]) for r in records], tests, config)
    buggy = evaluate_completions([fenced(r["buggy_code"]) for r in records], tests, config)
    return {
        "graded": len(records),
        "oracle_pass_rate": sum(r.passed for r in oracle) / len(records),
        "buggy_pass_rate": sum(r.passed for r in buggy) / len(records),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cipo.eval.debugbench",
        description="DebugBench offline: check the grader on the oracle and buggy code, or export training data.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("sanity", help="Oracle and buggy pass rates of the example grader.")
    check.add_argument("--data", required=True, help="debugbench_python3.jsonl")
    check.add_argument("--sample", type=int, help="Grade a fixed sample of this many gradeable rows.")
    check.add_argument("--naive", action="store_true", help="Also run the naive grader, for comparison.")
    export = commands.add_parser("export", help="Write train.jsonl and heldout.jsonl for `cipo train`.")
    export.add_argument("--data", required=True, help="debugbench_python3.jsonl")
    export.add_argument("--output", required=True, help="Folder for train.jsonl and heldout.jsonl.")
    export.add_argument(
        "--mode", choices=TRAIN_MODES, default="fix", help="fix: show the buggy code; solve: not."
    )
    export.add_argument("--held-out", type=float, default=0.2, help="Share of the problems (slugs) held out.")
    export.add_argument("--seed", type=int, default=0, help="Seed of the split.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    if args.command == "sanity":
        summary = sanity(args.data, args.sample)
        if args.naive:
            start = time.perf_counter()
            summary["naive"] = naive_sanity(args.data)
            summary["seconds"]["naive"] = round(time.perf_counter() - start, 1)
    else:
        summary = write_training_files(
            args.data, args.output, mode=args.mode, held_out_fraction=args.held_out, seed=args.seed
        )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
