"""Benchmark loaders: each evaluation set becomes a list of rows in one shape.

Every row has

* ``id``: a stable identifier (``"gsm8k/12"``, ``"HumanEval/0"``...), used to resume interrupted runs;
* ``prompt``: a chat message list ``[{"role": "user", "content": ...}]`` (problem + answer-format instruction);
* ``answer`` (math: the gold final answer as a string) or ``tests`` (code: the format of
  :mod:`cipo.rewards.code`, e.g. ``{"style": "assert", "tests": [...], "setup": ...}``);
* ``meta``: the raw source record, untouched;
* optionally ``attempt``: a provided (wrong) solution to fix, for the "fix provided attempts" protocol.

Field names differ between sets (``problem`` vs ``question``, ``answer`` vs ``final_answer``, floats vs strings),
so each named benchmark maps its fields explicitly. A record that does not fit raises
:class:`BenchmarkFormatError` naming the file, the row and the field.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cipo.rewards.code import parse_tests, tests_from_humaneval, tests_from_mbpp
from cipo.rewards.math import last_boxed_content

Task = Literal["math", "code"]
Row = dict[str, Any]

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CODE_INSTRUCTION = "Write your complete solution in a single Python code block (```python ... ```)."


class BenchmarkFormatError(ValueError):
    """A benchmark file or record does not have the expected format; the message names file, row and field."""


class LoadedRows(list):
    """Rows of a benchmark whose loader also reports on the file (rows it skipped and why, the score's name):
    ``notes`` lands in the run's results."""

    def __init__(self, rows: list[Row], notes: dict[str, Any] | None = None) -> None:
        super().__init__(rows)
        self.notes = notes or {}


class _RecordError(ValueError):
    """Raised by a row mapper; the loader adds the file and row to the message."""


# ---------------------------------------------------------------------------------------------------------------
# Field helpers used by the mappers


def _text(record: Mapping[str, Any], name: str) -> str:
    if name not in record:
        raise _RecordError(f"field {name!r} is missing (fields: {sorted(record)})")
    value = record[name]
    if not isinstance(value, str) or not value.strip():
        raise _RecordError(f"field {name!r} must be a non-empty string, got {_preview(value)}")
    return value


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number_text(value: Any, name: str) -> str:
    """A gold answer stored as a number (amc23 stores 27 as 27.0) or a string, as clean text."""
    if isinstance(value, bool):
        raise _RecordError(f"field {name!r} must be a number or a string, got {value!r}")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _RecordError(f"field {name!r} must be a number or a non-empty string, got {_preview(value)}")


def _record_id(record: Mapping[str, Any], name: str, prefix: str, index: int) -> str:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"{prefix}/{index}"
    value = str(value)
    return value if value.startswith(prefix) else f"{prefix}/{value}"


# ---------------------------------------------------------------------------------------------------------------
# Row mappers: raw record (and its 0-based index) -> {"id", "problem", "answer" | "tests"}


def _gsm8k(record: Mapping[str, Any], index: int) -> Row:
    solution = _text(record, "answer")
    if "####" not in solution:
        raise _RecordError("field 'answer' has no '####' before the final answer")
    gold = solution.rsplit("####", 1)[1].strip().replace(",", "")
    if not gold:
        raise _RecordError("field 'answer' has nothing after '####'")
    return {"id": f"gsm8k/{index}", "problem": _text(record, "question"), "answer": gold}


def _math500(record: Mapping[str, Any], index: int) -> Row:
    return {
        "id": _record_id(record, "unique_id", "math500", index),
        "problem": _text(record, "problem"),
        "answer": _number_text(record.get("answer"), "answer"),
    }


def _aime24(record: Mapping[str, Any], index: int) -> Row:
    return {
        "id": _record_id(record, "id", "aime24", index),
        "problem": _text(record, "problem"),
        "answer": _number_text(record.get("answer"), "answer"),
    }


def _amc23(record: Mapping[str, Any], index: int) -> Row:
    if "answer" not in record:
        raise _RecordError(f"field 'answer' is missing (fields: {sorted(record)})")
    return {
        "id": _record_id(record, "id", "amc23", index),
        "problem": _text(record, "question"),
        "answer": _number_text(record["answer"], "answer"),
    }


def _minerva_file(record: Mapping[str, Any], index: int) -> Row:
    gold = (last_boxed_content(_text(record, "solution")) or "").strip()
    if not gold:
        raise _RecordError("field 'solution' has no \\boxed{...} answer")
    return {
        "id": _record_id(record, "idx", "minerva_math", index),
        "problem": _text(record, "problem"),
        "answer": gold,
    }


def _minerva_hub(record: Mapping[str, Any], index: int) -> Row:
    return {
        "id": f"minerva_math/{index}",
        "problem": _text(record, "question"),
        "answer": _number_text(record.get("answer"), "answer"),
    }


def _olympiadbench(record: Mapping[str, Any], index: int) -> Row:
    answers = record.get("final_answer")
    if (
        not isinstance(answers, list)
        or not answers
        or not all(isinstance(a, str) and a.strip() for a in answers)
    ):
        raise _RecordError(
            f"field 'final_answer' must be a non-empty list of strings, got {_preview(answers)}"
        )
    problem = _text(record, "question")
    if isinstance(record.get("context"), str) and record["context"].strip():
        problem = f"{record['context'].strip()}\n\n{problem}"
    return {
        "id": _record_id(record, "id", "olympiadbench", index),
        "problem": problem,
        "answer": ", ".join(a.strip() for a in answers),
    }


def _checked_tests(tests: Any) -> Any:
    """``tests`` unchanged, once the code reward has accepted its format (it would silently score 0 otherwise)."""
    try:
        parse_tests(tests)
    except ValueError as error:
        raise _RecordError(f"tests the code reward cannot read: {error}") from None
    return tests


def _humaneval(record: Mapping[str, Any], index: int) -> Row:
    signature = _text(record, "prompt")
    for name in ("test", "entry_point"):
        _text(record, name)
    return {
        "id": _record_id(record, "task_id", "HumanEval", index),
        "problem": f"Complete the following Python function:\n\n```python\n{signature}```",
        "tests": _checked_tests(tests_from_humaneval(record)),
    }


def _mbpp(record: Mapping[str, Any], index: int) -> Row:
    asserts = record.get("test_list")
    imports = record.get("test_imports", [])
    if not isinstance(asserts, list) or not asserts or not all(isinstance(a, str) for a in asserts):
        raise _RecordError(f"field 'test_list' must be a non-empty list of strings, got {_preview(asserts)}")
    if not isinstance(imports, list) or not all(isinstance(i, str) for i in imports):
        raise _RecordError(f"field 'test_imports' must be a list of strings, got {_preview(imports)}")
    # MBPP's prompt does not name the function: show one test so the solution uses the expected name.
    problem = f"{_text(record, 'prompt')}\nYour code should pass this test:\n{asserts[0]}"
    return {
        "id": _record_id(record, "task_id", "mbpp", index),
        "problem": problem,
        "tests": _checked_tests(tests_from_mbpp(record)),
    }


# ---------------------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to read one named benchmark from its usual file, or from the Hugging Face Hub."""

    name: str
    task: Task
    filename: str = field(
        metadata={"help": "File name of the set in a benchmarks folder (e.g. the shared one)."}
    )
    to_row: Callable[[Mapping[str, Any], int], Row] = field(metadata={"help": "Maps one raw record."})
    hub_id: str = field(metadata={"help": "Dataset id on the Hugging Face Hub."})
    hub_split: str = "test"
    hub_config: str | None = None
    hub_to_row: Callable[[Mapping[str, Any], int], Row] | None = field(
        default=None, metadata={"help": "Mapper for the hub copy when its fields differ from the file's."}
    )
    aliases: tuple[str, ...] = ()
    load_file: Callable[[Path, int | None, str | None], LoadedRows] | None = field(
        default=None,
        metadata={"help": "Reads the whole file itself (path, limit, instruction), instead of row by row."},
    )
    group_by: tuple[str, ...] = field(
        default=(), metadata={"help": "Fields of the raw records to report scores by (e.g. bug type, level)."}
    )


def _debugbench_rows(path: Path, limit: int | None, instruction: str | None) -> LoadedRows:
    from cipo.eval.debugbench import load_for_eval  # runs the sandbox: only when asked for

    return load_for_eval(path, limit, instruction)


def _needs_data(record: Mapping[str, Any], index: int) -> Row:
    raise _RecordError("DebugBench is read from a local copy only: pass --data debugbench_python3.jsonl")


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in [
        BenchmarkSpec("gsm8k", "math", "gsm8k.test.jsonl", _gsm8k, "openai/gsm8k", hub_config="main"),
        BenchmarkSpec(
            "math500", "math", "math500.test.jsonl", _math500, "HuggingFaceH4/MATH-500", aliases=("math-500",)
        ),
        BenchmarkSpec(
            "aime24",
            "math",
            "aime24.test.jsonl",
            _aime24,
            "HuggingFaceH4/aime_2024",
            hub_split="train",
            aliases=("aime2024", "aime"),
        ),
        BenchmarkSpec(
            "amc23", "math", "amc23.test.jsonl", _amc23, "math-ai/amc23", aliases=("amc2023", "amc")
        ),
        BenchmarkSpec(
            "minerva_math",
            "math",
            "minerva_math.test.jsonl",
            _minerva_file,
            "math-ai/minervamath",
            hub_to_row=_minerva_hub,
            aliases=("minerva", "minervamath", "minerva-math"),
        ),
        BenchmarkSpec(
            "olympiadbench",
            "math",
            "olympiadbench.test.jsonl",
            _olympiadbench,
            "Hothan/OlympiadBench",
            hub_config="OE_TO_maths_en_COMP",
            hub_split="train",
            aliases=("olympiad",),
        ),
        BenchmarkSpec(
            "humaneval",
            "code",
            "HumanEval.jsonl.gz",
            _humaneval,
            "openai/openai_humaneval",
            aliases=("human_eval", "human-eval"),
        ),
        BenchmarkSpec(
            "mbpp",
            "code",
            "mbpp_sanitized.json",
            _mbpp,
            "google-research-datasets/mbpp",
            hub_config="sanitized",
            aliases=("mbpp_sanitized",),
        ),
        BenchmarkSpec(
            "debugbench",
            "code",
            "debugbench_python3.jsonl",
            _needs_data,
            "Rtian/DebugBench",
            aliases=("debugbench_python3", "debugbench-python3"),
            load_file=_debugbench_rows,
            group_by=("bug_type", "level"),
        ),
    ]
}

CUSTOM = "custom"


def benchmark_names() -> list[str]:
    return sorted(BENCHMARKS)


def get_spec(name: str) -> BenchmarkSpec:
    """The spec of a named benchmark, accepting aliases and any case."""
    key = name.strip().lower()
    for spec in BENCHMARKS.values():
        if key == spec.name or key in spec.aliases:
            return spec
    raise KeyError(
        f"unknown benchmark {name!r}; known: {', '.join(benchmark_names())} (or {CUSTOM!r} with --data)"
    )


# ---------------------------------------------------------------------------------------------------------------
# Reading records


def read_records(path: str | Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Yield ``(row label, 0-based index, record)`` from a .jsonl[.gz], .json (a list) or .parquet file.

    The label (``"line 12"``, ``"row 3"``) is what error messages show.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if suffixes.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        yield from _read_jsonl(path)
    elif suffixes.endswith(".json"):
        yield from _read_json_list(path)
    elif suffixes.endswith(".parquet"):
        yield from _read_parquet(path)
    else:
        raise BenchmarkFormatError(f"{path}: unsupported file type; use .jsonl, .jsonl.gz, .json or .parquet")


def _read_jsonl(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    index = 0
    with opener(path, "rt", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise BenchmarkFormatError(
                    f"{path}, line {line_number}: invalid JSON ({error.msg})"
                ) from error
            yield f"line {line_number}", index, _as_record(record, path, f"line {line_number}")
            index += 1


def _read_json_list(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BenchmarkFormatError(f"{path}: invalid JSON at line {error.lineno} ({error.msg})") from error
    if not isinstance(data, list):
        raise BenchmarkFormatError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    for index, record in enumerate(data):
        yield f"row {index + 1}", index, _as_record(record, path, f"row {index + 1}")


def _read_parquet(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    import pyarrow.parquet as pq  # installed with datasets

    for index, record in enumerate(pq.read_table(path).to_pylist()):
        yield f"row {index + 1}", index, record


def _as_record(record: Any, path: Path, label: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise BenchmarkFormatError(f"{path}, {label}: expected a JSON object, got {type(record).__name__}")
    return record


# ---------------------------------------------------------------------------------------------------------------
# Building rows


def make_prompt(problem: str, task: Task, instruction: str | None = None) -> list[dict[str, str]]:
    """The user message: the problem, then the answer-format instruction."""
    if instruction is None:
        instruction = MATH_INSTRUCTION if task == "math" else CODE_INSTRUCTION
    content = f"{problem.rstrip()}\n\n{instruction}" if instruction else problem
    return [{"role": "user", "content": content}]


def _finish(mapped: Row, record: Mapping[str, Any], task: Task, instruction: str | None) -> Row:
    prompt = mapped["prompt"] if "prompt" in mapped else make_prompt(mapped["problem"], task, instruction)
    row: Row = {"id": mapped["id"], "prompt": prompt}
    for key in ("answer", "tests", "attempt"):
        if key in mapped:
            row[key] = mapped[key]
    row["meta"] = dict(record)
    return row


def _map_records(
    records: Iterator[tuple[str, int, dict[str, Any]]],
    to_row: Callable[[Mapping[str, Any], int], Row],
    *,
    source: str,
    task: Task,
    instruction: str | None,
    limit: int | None,
) -> list[Row]:
    rows: list[Row] = []
    seen: dict[str, str] = {}
    for label, index, record in records:
        if limit is not None and len(rows) >= limit:
            break
        try:
            row = _finish(to_row(record, index), record, task, instruction)
        except _RecordError as error:
            raise BenchmarkFormatError(f"{source}, {label}: {error}") from None
        if row["id"] in seen:
            raise BenchmarkFormatError(
                f"{source}, {label}: duplicate id {row['id']!r} (first at {seen[row['id']]})"
            )
        seen[row["id"]] = label
        rows.append(row)
    if not rows:
        raise BenchmarkFormatError(f"{source}: no records")
    return rows


def load_benchmark(
    name: str,
    path: str | Path | None = None,
    *,
    limit: int | None = None,
    instruction: str | None = None,
) -> list[Row]:
    """Rows of a named benchmark from ``path`` (its file, or a folder holding its usual file name), or from the
    Hugging Face Hub when no path is given.

    ``instruction`` replaces the default answer-format instruction appended to each problem.
    """
    spec = get_spec(name)
    if path is None and spec.load_file is not None:
        raise BenchmarkFormatError(
            f"benchmark {spec.name!r} is read from a local copy only: pass --data (its file, {spec.filename})"
        )
    if path is None:
        return _load_from_hub(spec, limit=limit, instruction=instruction)
    file = Path(path)
    if file.is_dir():
        file = file / spec.filename
    if spec.load_file is not None:
        return spec.load_file(file, limit, instruction)
    return _map_records(
        read_records(file),
        spec.to_row,
        source=str(file),
        task=spec.task,
        instruction=instruction,
        limit=limit,
    )


def _load_from_hub(spec: BenchmarkSpec, *, limit: int | None, instruction: str | None) -> list[Row]:
    import datasets  # lazy: importing datasets is slow and only needed online

    try:
        dataset = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split)
    except Exception as error:  # offline, renamed dataset, missing auth...: all need the same advice
        raise RuntimeError(
            f"could not load benchmark {spec.name!r} from the Hugging Face Hub ({spec.hub_id}): {error}. "
            f"Pass a local copy with --data (its usual file name is {spec.filename})."
        ) from error
    source = f"hub:{spec.hub_id}" + (f"/{spec.hub_config}" if spec.hub_config else "") + f"[{spec.hub_split}]"
    records = ((f"row {i + 1}", i, dict(record)) for i, record in enumerate(dataset))
    to_row = spec.hub_to_row or spec.to_row
    return _map_records(records, to_row, source=source, task=spec.task, instruction=instruction, limit=limit)


# ---------------------------------------------------------------------------------------------------------------
# Generic files with a column mapping

CANONICAL_COLUMNS = ("problem", "prompt", "answer", "tests", "id", "attempt")


def parse_columns(spec: str | None) -> dict[str, str]:
    """Parse ``"problem=question,answer=gold"`` into ``{"problem": "question", "answer": "gold"}``."""
    columns: dict[str, str] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        target, sep, source = item.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not source or target not in CANONICAL_COLUMNS:
            raise ValueError(
                f"bad column mapping {item!r}: use ROW_FIELD=FILE_COLUMN with ROW_FIELD in {CANONICAL_COLUMNS}"
            )
        columns[target] = source
    return columns


def load_table(
    path: str | Path,
    *,
    task: Task = "math",
    columns: Mapping[str, str] | None = None,
    name: str = CUSTOM,
    limit: int | None = None,
    instruction: str | None = None,
) -> list[Row]:
    """Rows from any .jsonl/.json/.parquet file whose columns are named by ``columns``.

    ``columns`` maps row fields to file columns; unmapped fields are read from columns of the same name.
    Needed: ``problem`` (text; the instruction is appended) or ``prompt`` (a ready string or message list,
    used as is), and ``answer`` (math) or ``tests`` (code). Optional: ``id``, ``attempt`` (a provided solution to
    fix). A column that is not a known field must be mapped explicitly to be used; all are kept under ``meta``.
    """
    mapping = {key: key for key in CANONICAL_COLUMNS} | dict(columns or {})
    gold_field = "answer" if task == "math" else "tests"

    def to_row(record: Mapping[str, Any], index: int) -> Row:
        row: Row = {"id": _record_id(record, mapping["id"], name, index)}
        if mapping["prompt"] in record and "problem" not in (columns or {}):
            row["prompt"] = _ready_prompt(record[mapping["prompt"]], mapping["prompt"])
        else:
            row["problem"] = _text(record, mapping["problem"])
        row[gold_field] = _gold(record, mapping[gold_field], task)
        if mapping["attempt"] in record:
            row["attempt"] = _text(record, mapping["attempt"])
        return row

    file = Path(path)
    return _map_records(
        read_records(file), to_row, source=str(file), task=task, instruction=instruction, limit=limit
    )


def _ready_prompt(value: Any, name: str) -> str | list[dict[str, Any]]:
    if isinstance(value, str) and value.strip():
        return value
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)
    ):
        return [dict(m) for m in value]
    raise _RecordError(f"field {name!r} must be a string or a list of chat messages, got {_preview(value)}")


def _gold(record: Mapping[str, Any], name: str, task: Task) -> Any:
    if name not in record or record[name] is None:
        raise _RecordError(f"field {name!r} is missing (fields: {sorted(record)})")
    value = record[name]
    if task == "math":
        if isinstance(value, list) and value:
            return ", ".join(_number_text(v, name) for v in value)
        return _number_text(value, name)
    return _checked_tests(value)
