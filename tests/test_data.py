import json
from pathlib import Path

import pytest

from cipo.data import DataArguments, arithmetic_rows, load_train_dataset


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_builtin_arithmetic_is_seeded_and_verifiable() -> None:
    assert arithmetic_rows(8, seed=1) == arithmetic_rows(8, seed=1)
    dataset = load_train_dataset(DataArguments())
    row = dataset[0]
    assert row["prompt"][-1]["role"] == "user" and "\\boxed" in row["prompt"][-1]["content"]
    a_op_b = row["prompt"][-1]["content"].split()[1].rstrip(".")
    assert str(eval(a_op_b)) == row["answer"]  # noqa: S307 - our own generated arithmetic


def test_local_jsonl_with_column_mapping(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "1+1?", "final": 2, "id": 3}])
    dataset = load_train_dataset(
        DataArguments(dataset_name=str(path), prompt_column="question", answer_column="final", system_prompt="S")
    )
    assert dataset[0]["prompt"] == [{"role": "system", "content": "S"}, {"role": "user", "content": "1+1?"}]
    assert dataset[0]["answer"] == 2 and dataset[0]["id"] == 3


def test_text_prompts_can_stay_text(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Q: 1+1?\nA:", "answer": "2"}])
    dataset = load_train_dataset(DataArguments(dataset_name=str(path), conversational=False))
    assert dataset[0]["prompt"] == "Q: 1+1?\nA:"


def test_parquet(tmp_path: Path) -> None:
    from datasets import Dataset

    path = tmp_path / "d.parquet"
    Dataset.from_list([{"prompt": "x", "answer": "1"}]).to_parquet(str(path))
    assert len(load_train_dataset(DataArguments(dataset_name=str(path)))) == 1


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "1+1?", "answer": "2"}])
    with pytest.raises(ValueError, match=r"d\.jsonl: column 'prompt' \(from --prompt_column\) not found"):
        load_train_dataset(DataArguments(dataset_name=str(path)))
    with pytest.raises(ValueError, match=r"column 'gold' \(from --answer_column\)"):
        load_train_dataset(DataArguments(dataset_name=str(path), prompt_column="question", answer_column="gold"))


def test_empty_dataset_and_empty_rows(tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    from datasets import Dataset

    Dataset.from_dict({"prompt": [], "answer": []}).to_parquet(str(empty))
    with pytest.raises(ValueError, match="empty.parquet: the dataset is empty"):
        load_train_dataset(DataArguments(dataset_name=str(empty)))
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "ok", "answer": "1"}, {"prompt": "", "answer": "2"}])
    with pytest.raises(ValueError, match="row 1, column 'prompt'"):
        load_train_dataset(DataArguments(dataset_name=str(path)))


def test_malformed_jsonl_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "answer": "1"}\n{"prompt": "b", answer: 2}\n')
    with pytest.raises(ValueError, match=r"d\.jsonl: row 2: invalid JSON"):
        load_train_dataset(DataArguments(dataset_name=str(path)))


def test_missing_file_and_unknown_builtin(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_train_dataset(DataArguments(dataset_name=str(tmp_path / "nope.jsonl")))
    with pytest.raises(ValueError, match="builtin:arithmetic"):
        load_train_dataset(DataArguments(dataset_name="builtin:chess"))
