"""DebugBench offline: LeetCode conventions in the sandbox, the oracle cross-check, the grader's sanity on the
shared file, the eval run and the training split.

The shared-file checks grade a fixed sample of rows in the default suite; the whole file (oracle and buggy code
on every gradeable row) is ``slow``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cipo.eval.benchmarks import BenchmarkFormatError, load_benchmark
from cipo.eval.debugbench import (
    SCORE_NAME,
    DebugBenchSet,
    build_row,
    cross_check,
    fenced,
    grade,
    read_debugbench,
    sample_rows,
    sanity,
    split_by_slug,
    training_rows,
    write_training_files,
)
from cipo.eval.generation import Generation, GenerationRequest
from cipo.eval.runner import EvalConfig, Evaluation
from cipo.rewards.code import code_reward

SHARED_FILE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "debugbench_python3.jsonl"
SAMPLE_SIZE = 100


def make_record(
    code: str, examples: list[str], description: str = "Solve it.", **fields: Any
) -> dict[str, Any]:
    return {
        "id": fields.pop("id", "condition error/0"),
        "bug_type": fields.pop("bug_type", "condition error"),
        "slug": fields.pop("slug", "a-problem"),
        "level": fields.pop("level", "easy"),
        "description": description,
        "examples": examples,
        "constraints": "1 <= n <= 10",
        "oracle_code": code,
        "buggy_code": fields.pop("buggy_code", "class Solution:\n    pass\n"),
        **fields,
    }


REVERSE_LIST = """
class Solution:
    def reverseList(self, head: Optional[ListNode]) -> Optional[ListNode]:
        previous = None
        while head:
            head.next, previous, head = previous, head, head.next
        return previous
"""
INVERT_TREE = """
class Solution:
    def invertTree(self, root: Optional[TreeNode]) -> Optional[TreeNode]:
        if root:
            root.left, root.right = self.invertTree(root.right), self.invertTree(root.left)
        return root
"""
SORT_COLORS = """
class Solution:
    def sortColors(self, nums: List[int]) -> None:
        nums.sort()
"""
TWO_SUM = """
class Solution:
    def pairs(self, nums, target):
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        return self.pairs(nums, target)
"""
RENAMED = """
class Solution:
    def kthFactor(self, N: int, K: int) -> int:
        factors = [i for i in range(1, N + 1) if N % i == 0]
        return factors[K - 1] if K <= len(factors) else -1
"""
EMPTY_AS_NONE = """
class Solution:
    def levels(self, root: Optional[TreeNode]) -> List[List[int]]:
        if not root:
            return None
        return [[root.val]]
"""

SORT_RECORD = make_record(
    SORT_COLORS, ["Input: nums = [2,0,2,1,1,0]\nOutput: [0,0,1,1,2,2]"], "Do not return anything."
)
TWO_SUM_EXAMPLES = ["Input: nums = [2,7,11,15], target = 9\nOutput: [0,1]"]
TWO_SUM_SWAPPED = TWO_SUM.replace("[seen[target - x], i]", "[i, seen[target - x]]")
REVERSE_RECORD = make_record(
    REVERSE_LIST, ["Input: head = [1,2,3]\nOutput: [3,2,1]", "Input: head = []\nOutput: []"]
)
RENAMED_RECORD = make_record(RENAMED, ["Input: n = 12, k = 3\nOutput: 3", "Input: n = 4, k = 4\nOutput: -1"])

# name: (record, program, should pass)
CASES = {
    "list_in_and_out": (REVERSE_RECORD, REVERSE_LIST, True),
    "list_wrong": (REVERSE_RECORD, REVERSE_LIST.replace("return previous", "return previous.next"), False),
    "tree_in_and_out": (
        make_record(INVERT_TREE, ["Input: root = [4,2,7,1,3,6,9]\nOutput: [4,7,2,9,6,3,1]"]),
        INVERT_TREE,
        True,
    ),
    "in_place": (SORT_RECORD, SORT_COLORS, True),
    "in_place_returned_not_mutated": (
        SORT_RECORD,
        SORT_COLORS.replace("nums.sort()", "return sorted(nums)"),
        False,
    ),
    "any_order": (make_record(TWO_SUM, TWO_SUM_EXAMPLES, "Return it in any order."), TWO_SUM_SWAPPED, True),
    "order_matters_unless_said": (make_record(TWO_SUM, TWO_SUM_EXAMPLES), TWO_SUM_SWAPPED, False),
    "helper_first": (
        make_record(TWO_SUM, ["Input: nums = [3,2,4], target = 6\nOutput: [1,2]"]),
        TWO_SUM,
        True,
    ),
    "renamed_parameters_by_position": (RENAMED_RECORD, RENAMED.replace("N", "n").replace("K", "k"), True),
    "none_read_as_empty_list": (
        make_record(EMPTY_AS_NONE, ["Input: root = []\nOutput: []", "Input: root = [1]\nOutput: [[1]]"]),
        EMPTY_AS_NONE,
        True,
    ),
    "syntax_error": (RENAMED_RECORD, RENAMED.replace("-> int:", "-> int"), False),
}


@pytest.fixture(scope="module")
def convention_verdicts() -> dict[str, bool]:
    names = list(CASES)
    rows = [build_row(CASES[name][0]) for name in names]
    reports = grade(rows, [fenced(CASES[name][1]) for name in names])
    return {name: report.passed for name, report in zip(names, reports, strict=True)}


@pytest.mark.parametrize("name", list(CASES))
def test_leetcode_conventions_in_the_sandbox(convention_verdicts: dict[str, bool], name: str) -> None:
    assert convention_verdicts[name] is CASES[name][2]


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def small_file(tmp_path: Path) -> Path:
    """Six instances of three problems; one has an example its oracle disagrees with, one cannot be parsed."""
    records = []
    for index, (bug_type, level) in enumerate([("double", "easy"), ("triple", "hard")] * 3):
        slug = f"problem-{index % 3}"
        example = f"Input: n = {index + 1}, k = 1\nOutput: 1"
        records.append(
            make_record(
                RENAMED, [example], id=f"{bug_type}/{index}", bug_type=bug_type, level=level, slug=slug
            )
        )
    records[2]["examples"] = ["Input: n = 3, k = 1\nOutput: 2"]  # the oracle answers 1
    records[4]["examples"] = ['Input\n["Solution"]\n[[]]\nOutput\n[null]']
    return write_jsonl(tmp_path / "debugbench_python3.jsonl", records)


def test_skipped_rows_are_counted_by_reason_and_the_oracle_cross_check_drops_disagreements(
    tmp_path: Path,
) -> None:
    data = read_debugbench(small_file(tmp_path))
    assert (data.records, len(data.rows), dict(data.skipped)) == (6, 5, {"input_not_name_equals_value": 1})
    checked = cross_check(data)
    assert [row.record["id"] for row in checked.rows] == ["double/0", "triple/1", "triple/3", "triple/5"]
    assert checked.skipped["oracle_fails_examples"] == 1 and checked.oracle_checked == 5
    limited = cross_check(data, limit=2)
    assert len(limited.rows) == 2 and limited.notes()["not_checked_past_limit"] == 3


def test_a_record_without_a_required_field_is_named(tmp_path: Path) -> None:
    record = make_record(RENAMED, ["Input: n = 1, k = 1\nOutput: 1"])
    del record["oracle_code"]
    path = write_jsonl(tmp_path / "bad.jsonl", [record])
    with pytest.raises(BenchmarkFormatError, match=rf"{path}, line 1: field 'oracle_code' is missing"):
        read_debugbench(path)


def test_debugbench_needs_a_local_file() -> None:
    with pytest.raises(BenchmarkFormatError, match="local copy only"):
        load_benchmark("debugbench")


class OracleGenerator:
    """Answers every fix request with the row's oracle code, found by the problem text."""

    backend = "fake"
    default_batch_size = 8

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return [Generation(self.answers[r.prompt[0]["content"]], 10, "stop") for r in requests]


def test_fix_attempts_eval_reports_by_bug_type_and_level_under_its_own_name(tmp_path: Path) -> None:
    path = small_file(tmp_path)
    rows = load_benchmark("debugbench", path)
    assert rows.notes["score_name"] == SCORE_NAME and rows.notes["gradeable"] == 4
    answers = {row["prompt"][0]["content"]: fenced(row["meta"]["oracle_code"]) for row in rows}
    config = EvalConfig(
        model="fake",
        benchmark="debugbench",
        data=str(path),
        mode="fix",
        n=2,
        output_dir=str(tmp_path / "run"),
        progress=False,
        bootstrap_resamples=10,
    )
    results = Evaluation(config, generator=OracleGenerator(answers)).run()
    assert results["correction"]["acc_t1"] == 0.0 and results["correction"]["acc_t2"] == 1.0
    assert results["groups"]["bug_type"] == {
        "double": {"problems": 1, "accuracy": 1.0, "provided_accuracy": 0.0},
        "triple": {"problems": 3, "accuracy": 1.0, "provided_accuracy": 0.0},
    }
    assert set(results["groups"]["level"]) == {"easy", "hard"}
    assert results["benchmark_notes"]["skipped"] == {
        "input_not_name_equals_value": 1,
        "oracle_fails_examples": 1,
    }
    table = (tmp_path / "run" / "results.md").read_text()
    assert SCORE_NAME in table and "By bug type" in table and "DebugBench accuracy" not in table


def test_training_rows_split_by_slug_and_train_with_the_code_reward(tmp_path: Path) -> None:
    from cipo.data import DataArguments, load_train_dataset

    summary = write_training_files(small_file(tmp_path), tmp_path / "train", held_out_fraction=0.34, seed=1)
    assert summary["train"] + summary["heldout"] == 4 and summary["heldout"] >= 1
    splits = {
        name: [json.loads(line) for line in (tmp_path / "train" / f"{name}.jsonl").read_text().splitlines()]
        for name in ("train", "heldout")
    }
    assert not {r["slug"] for r in splits["train"]} & {r["slug"] for r in splits["heldout"]}
    dataset = load_train_dataset(
        DataArguments(
            dataset_name=str(tmp_path / "train" / "train.jsonl"), answer_column=None, reward_funcs=["code"]
        )
    )
    assert (
        dataset[0]["prompt"][0]["role"] == "user"
        and "This solution has a bug" in dataset[0]["prompt"][0]["content"]
    )
    completions = [[{"role": "assistant", "content": fenced(RENAMED)}]] * len(dataset)
    assert code_reward(completions, tests=dataset["tests"]) == [1.0] * len(dataset)


def test_solve_mode_keeps_one_row_per_problem_and_the_split_is_deterministic(tmp_path: Path) -> None:
    data = read_debugbench(small_file(tmp_path))
    rows = training_rows(DebugBenchSet(data.rows, data.records), mode="solve")
    assert sorted(r["slug"] for r in rows) == ["problem-0", "problem-1", "problem-2"]
    assert "has a bug" not in rows[0]["prompt"][0]["content"]
    train, held_out = split_by_slug(rows, 0.34, seed=3)
    train_again, held_out_again = split_by_slug(list(reversed(rows)), 0.34, seed=3)
    assert {r["id"] for r in held_out} == {r["id"] for r in held_out_again} and len(held_out) == 1
    assert {r["id"] for r in train} == {r["id"] for r in train_again}
    with pytest.raises(ValueError, match="held_out_fraction"):
        split_by_slug(rows, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# The shared file: the grader's sanity


@pytest.fixture(scope="module")
def shared_file() -> Path:
    if not SHARED_FILE.is_file():
        pytest.skip(f"shared benchmark file not found at {SHARED_FILE}")
    return SHARED_FILE


@pytest.fixture(scope="module")
def sample_summary(shared_file: Path) -> dict[str, Any]:
    return sanity(shared_file, sample=SAMPLE_SIZE)


def test_at_least_1200_rows_are_gradeable(sample_summary: dict[str, Any]) -> None:
    assert sample_summary["records"] == 1414 and sample_summary["gradeable"] >= 1200
    assert sample_summary["gradeable"] + sum(sample_summary["skipped"].values()) == 1414


def test_on_a_fixed_sample_the_oracle_passes_and_the_buggy_code_fails(sample_summary: dict[str, Any]) -> None:
    assert sample_summary["graded"] == SAMPLE_SIZE
    assert sample_summary["oracle_pass_rate"] >= 0.98, sample_summary["oracle_failures"]
    assert sample_summary["buggy_pass_rate"] <= 0.10


def test_a_rows_grade_depends_neither_on_row_order_nor_on_earlier_runs(shared_file: Path) -> None:
    rows = sample_rows(read_debugbench(shared_file).rows, 30)
    # Oracle and buggy code alternate, so that passing and failing rows sit next to each other.
    programs = {
        row.id: fenced(row.record["oracle_code" if i % 2 else "buggy_code"]) for i, row in enumerate(rows)
    }
    first = {
        row.id: report.passed for row, report in zip(rows, grade(rows, list(programs.values())), strict=True)
    }
    shuffled = list(rows)
    random.Random(0).shuffle(shuffled)
    second = grade(shuffled, [programs[row.id] for row in shuffled])
    assert {row.id: report.passed for row, report in zip(shuffled, second, strict=True)} == first
    assert len(set(first.values())) > 1


@pytest.mark.slow
def test_on_the_whole_file_the_oracle_passes_98_percent_and_the_buggy_code_at_most_10(
    shared_file: Path,
) -> None:
    summary = sanity(shared_file)
    assert summary["graded"] == summary["gradeable"] >= 1200
    assert summary["oracle_pass_rate"] >= 0.98, summary["oracle_failures"]
    assert summary["buggy_pass_rate"] <= 0.10
