"""Benchmark loaders: every shared file reads completely, fields are mapped explicitly, bad rows are named."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from cipo.eval import benchmarks
from cipo.eval.benchmarks import (
    MATH_INSTRUCTION,
    BenchmarkFormatError,
    get_spec,
    load_benchmark,
    load_table,
    parse_columns,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"

EXPECTED_ROWS = {
    "gsm8k": 1319,
    "math500": 500,
    "aime24": 30,
    "amc23": 40,
    "minerva_math": 272,
    "olympiadbench": 675,
    "humaneval": 164,
    "mbpp": 427,
}


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared benchmark folder not found at {SHARED}")
    return SHARED


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_named_loader_reads_every_row_of_the_shared_file(shared_dir: Path, name: str) -> None:
    rows = load_benchmark(name, shared_dir)
    assert len(rows) == EXPECTED_ROWS[name]
    gold_field = "answer" if get_spec(name).task == "math" else "tests"
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        assert row["prompt"][0]["role"] == "user" and len(row["prompt"]) == 1
        assert row[gold_field]
        assert isinstance(row["meta"], dict) and row["meta"]


def test_math_prompts_ask_for_a_boxed_answer(shared_dir: Path) -> None:
    row = load_benchmark("math500", shared_dir, limit=1)[0]
    content = row["prompt"][0]["content"]
    assert content.startswith(row["meta"]["problem"].rstrip())
    assert content.endswith(MATH_INSTRUCTION)
    assert row["answer"] == row["meta"]["answer"]
    assert row["id"] == "math500/" + row["meta"]["unique_id"]


def test_gsm8k_gold_is_the_text_after_hashes_without_commas(shared_dir: Path) -> None:
    rows = load_benchmark("gsm8k", shared_dir)
    assert rows[0]["answer"] == "18"
    with_comma = [row for row in rows if "," in row["meta"]["answer"].split("####")[1]]
    assert with_comma and all("," not in row["answer"] for row in with_comma)
    assert with_comma[0]["answer"].isdigit()


def test_minerva_gold_is_the_last_boxed_answer_of_the_solution(shared_dir: Path) -> None:
    rows = load_benchmark("minerva", shared_dir, limit=3)
    assert [row["answer"] for row in rows] == ["1.6", "4.5e33", "41.8"]


def test_amc23_float_answers_become_integers(shared_dir: Path) -> None:
    rows = load_benchmark("amc23", shared_dir)
    assert rows[0]["meta"]["answer"] == 27.0 and rows[0]["answer"] == "27"
    assert any(row["answer"] == "-1" for row in rows)


def test_olympiadbench_final_answer_list_is_joined(shared_dir: Path) -> None:
    rows = load_benchmark("olympiadbench", shared_dir, limit=6)
    assert rows[0]["answer"] == "2"
    assert rows[5]["answer"] == "$(1,8,19), (2,7,13), (4,5,7)$"


def test_humaneval_tests_use_the_code_reward_format(shared_dir: Path) -> None:
    row = load_benchmark("humaneval", shared_dir, limit=1)[0]
    meta = row["meta"]
    assert row["tests"] == {
        "style": "assert",
        "check": meta["test"],
        "entry_point": "has_close_elements",
        "prelude": meta["prompt"],
    }
    assert meta["prompt"] in row["prompt"][0]["content"]


def test_mbpp_tests_use_the_code_reward_format(shared_dir: Path) -> None:
    rows = load_benchmark("mbpp", shared_dir)
    row = next(row for row in rows if row["meta"]["test_imports"])
    assert row["tests"] == {
        "style": "assert",
        "tests": row["meta"]["test_list"],
        "setup": "\n".join(row["meta"]["test_imports"]),
    }
    # The prompt shows one test so the model knows the function name.
    assert row["meta"]["test_list"][0] in row["prompt"][0]["content"]


@pytest.mark.parametrize(("name", "solution_field"), [("humaneval", "canonical_solution"), ("mbpp", "code")])
def test_canonical_solutions_pass_their_tests(shared_dir: Path, name: str, solution_field: str) -> None:
    from cipo.rewards.code import code_reward

    rows = load_benchmark(name, shared_dir, limit=6)
    # HumanEval's canonical solution is a function body: it continues the prompt (the tests' prelude).
    completions = [f"```python\n{row['meta'][solution_field]}\n```" for row in rows]
    if name == "humaneval":
        completions = [row["meta"]["prompt"] + row["meta"][solution_field] for row in rows]
    assert code_reward(completions, tests=[row["tests"] for row in rows]) == [1.0] * len(rows)


def test_limit_and_aliases(shared_dir: Path) -> None:
    assert len(load_benchmark("MATH-500", shared_dir, limit=7)) == 7
    assert get_spec("minerva").name == "minerva_math"
    with pytest.raises(KeyError, match="unknown benchmark 'mathh'"):
        get_spec("mathh")


def test_custom_instruction_replaces_the_default(shared_dir: Path) -> None:
    row = load_benchmark(
        "gsm8k", shared_dir / "gsm8k.test.jsonl", limit=1, instruction="Answer with a number."
    )
    assert row[0]["prompt"][0]["content"].endswith("\n\nAnswer with a number.")


# --- malformed files ---------------------------------------------------------------------------------------------


def test_invalid_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "gsm8k.test.jsonl"
    path.write_text(
        '{"question": "q", "answer": "#### 1"}\n\n{"question": "q2", "answer": \n', encoding="utf-8"
    )
    with pytest.raises(BenchmarkFormatError, match=rf"{path}, line 3: invalid JSON"):
        load_benchmark("gsm8k", path)


def test_missing_field_names_file_row_and_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "math.jsonl",
        [
            {"problem": "1+1?", "answer": "2", "unique_id": "a"},
            {"problem": "2+2?", "unique_id": "b"},
        ],
    )
    with pytest.raises(BenchmarkFormatError, match=rf"{path}, line 2: field 'answer'"):
        load_benchmark("math500", path)


def test_wrong_type_is_reported(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "olympiad.jsonl", [{"id": 1, "question": "q", "final_answer": "2"}])
    with pytest.raises(BenchmarkFormatError, match=r"line 1: field 'final_answer' must be a non-empty list"):
        load_benchmark("olympiadbench", path)


def test_gsm8k_answer_without_hashes_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "the answer is 4"}])
    with pytest.raises(BenchmarkFormatError, match=r"line 1: field 'answer' has no '####'"):
        load_benchmark("gsm8k", path)


def test_minerva_solution_without_box_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "it is 4", "idx": 0}])
    with pytest.raises(BenchmarkFormatError, match=r"line 1: field 'solution' has no \\boxed"):
        load_benchmark("minerva_math", path)


def test_json_list_rows_are_numbered(tmp_path: Path) -> None:
    path = tmp_path / "mbpp.json"
    good = {"task_id": 1, "prompt": "Write f.", "test_list": ["assert f() == 1"], "test_imports": []}
    path.write_text(json.dumps([good, {**good, "task_id": 2, "test_list": []}]), encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match=rf"{path}, row 2: field 'test_list'"):
        load_benchmark("mbpp", path)


def test_gzipped_jsonl_non_object_line(tmp_path: Path) -> None:
    path = tmp_path / "HumanEval.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write('["not", "an", "object"]\n')
    with pytest.raises(BenchmarkFormatError, match=rf"{path}, line 1: expected a JSON object"):
        load_benchmark("humaneval", path)


def test_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"id": 1, "problem": "p", "answer": "1"}] * 2)
    with pytest.raises(BenchmarkFormatError, match=r"line 2: duplicate id 'aime24/1' \(first at line 1\)"):
        load_benchmark("aime24", path)


def test_missing_file_and_unsupported_type(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_benchmark("gsm8k", tmp_path / "nope.jsonl")
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match="unsupported file type"):
        load_benchmark("gsm8k", csv)


# --- hub --------------------------------------------------------------------------------------------------------


def test_hub_copy_uses_its_own_field_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(
        path: str, name: str | None = None, split: str | None = None
    ) -> list[dict[str, Any]]:
        calls.append((path, name, split))
        return [{"question": "What is 2+2?", "answer": "4"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rows = load_benchmark("minerva_math")
    assert calls == [("math-ai/minervamath", None, "test")]
    assert rows[0]["answer"] == "4" and rows[0]["id"] == "minerva_math/0"


def test_hub_failure_suggests_a_local_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"openai/gsm8k.*no network.*--data.*gsm8k\.test\.jsonl"):
        load_benchmark("gsm8k")


# --- generic files ----------------------------------------------------------------------------------------------


def test_parse_columns() -> None:
    assert parse_columns("problem=question, answer=gold") == {"problem": "question", "answer": "gold"}
    assert parse_columns(None) == {}
    with pytest.raises(ValueError, match="bad column mapping 'solution=x'"):
        parse_columns("solution=x")
    with pytest.raises(ValueError, match="bad column mapping 'problem'"):
        parse_columns("problem")


def test_generic_loader_maps_columns_and_keeps_attempts(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "debug.jsonl",
        [
            {"uid": "x1", "question": "Compute 3*3.", "gold": 9.0, "wrong": "3*3 = 6, so \\boxed{6}"},
        ],
    )
    rows = load_table(
        path, task="math", columns={"problem": "question", "answer": "gold", "id": "uid", "attempt": "wrong"}
    )
    assert rows[0]["id"] == "custom/x1"
    assert rows[0]["answer"] == "9"
    assert rows[0]["attempt"].startswith("3*3 = 6")
    assert rows[0]["prompt"][0]["content"] == f"Compute 3*3.\n\n{MATH_INSTRUCTION}"


def test_generic_loader_reads_parquet_and_ready_prompts(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "code.parquet"
    table = pa.table(
        {
            "prompt": ["Write f returning 1."],
            "tests": ["assert f() == 1"],
        }
    )
    pq.write_table(table, path)
    rows = load_table(path, task="code")
    assert rows[0]["prompt"] == "Write f returning 1."
    assert rows[0]["tests"] == "assert f() == 1"  # a string of test code, as the code reward accepts it
    assert rows[0]["id"] == "custom/0"


def test_generic_loader_rejects_tests_the_code_reward_cannot_read(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"problem": "p", "tests": {"style": "call", "cases": []}}])
    with pytest.raises(BenchmarkFormatError, match=rf"{path}, line 1: tests the code reward cannot read"):
        load_table(path, task="code")


def test_generic_loader_names_missing_mapped_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"question": "q", "gold": "1"}, {"question": "q"}])
    with pytest.raises(BenchmarkFormatError, match=rf"{path}, line 2: field 'gold' is missing"):
        load_table(path, columns={"problem": "question", "answer": "gold"})


def test_every_spec_has_a_distinct_file_and_hub_id() -> None:
    specs = list(benchmarks.BENCHMARKS.values())
    assert len({s.filename for s in specs}) == len(specs) == len({s.hub_id for s in specs}) == 9


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED_ROWS) if get_spec(n).task == "math"])
def test_math_golds_verify_against_themselves(shared_dir: Path, name: str) -> None:
    from cipo.rewards.math import math_reward

    rows = load_benchmark(name, shared_dir)
    completions = [[{"role": "assistant", "content": f"So \\boxed{{{row['answer']}}}."}] for row in rows]
    rewards = math_reward(completions, answer=[row["answer"] for row in rows])
    assert [row["id"] for row, reward in zip(rows, rewards, strict=True) if reward != 1.0] == []
