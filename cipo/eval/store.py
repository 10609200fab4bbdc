"""``samples.jsonl``: the append-only record of every sample of a run, which is what makes runs resumable.

One JSON line per sample, written and flushed as soon as the sample is scored. A sample is identified by
``(id, turn, sample)``; when a key appears twice (a sample re-scored after a failed scoring), the last line wins.
A run that is interrupted mid-write leaves a torn last line: it is dropped on the next load, since the sample it
held is simply generated again.

Completions can be long (reasoning models, 64 samples per problem), so only the small fields stay in memory;
a completion is read back from the file, by its line's byte offset, when it is needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SampleKey = tuple[str, int, int]
HEAVY_FIELD = "completion"


class SampleFileError(ValueError):
    """samples.jsonl is damaged somewhere other than its last line."""


def sample_key(record: dict[str, Any]) -> SampleKey:
    return (str(record["id"]), int(record["turn"]), int(record["sample"]))


class SampleStore:
    """Samples already on disk (without their completions), and an appender for new ones."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[SampleKey, dict[str, Any]] = {}
        self._offsets: dict[SampleKey, int] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        offset = 0
        torn_at = None
        with open(self.path, "rb") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):  # the last write never finished
                    torn_at = offset if line.strip() else None
                    break
                if line.strip():
                    self._remember(self._parse(line, line_number), offset)
                offset += len(line)
        if torn_at is not None:
            # Cut the torn tail so that new lines do not get glued to it.
            with open(self.path, "r+b") as handle:
                handle.truncate(torn_at)

    def _parse(self, line: bytes, line_number: int) -> dict[str, Any]:
        try:
            record = json.loads(line)
            sample_key(record)
            return record
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise SampleFileError(
                f"{self.path}, line {line_number}: not a sample record ({error!r}); fix or delete that line to resume"
            ) from error

    def _remember(self, record: dict[str, Any], offset: int) -> None:
        key = sample_key(record)
        self.records[key] = {name: value for name, value in record.items() if name != HEAVY_FIELD}
        self._offsets[key] = offset

    def __contains__(self, key: SampleKey) -> bool:
        return key in self.records

    def get(self, key: SampleKey) -> dict[str, Any] | None:
        """The sample's small fields (everything but its completion)."""
        return self.records.get(key)

    def full_record(self, key: SampleKey) -> dict[str, Any]:
        """The sample as written, completion included, read back from the file."""
        with open(self.path, "rb") as handle:
            handle.seek(self._offsets[key])
            return json.loads(handle.readline())

    def completion(self, key: SampleKey) -> str:
        return self.full_record(key)[HEAVY_FIELD]

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Write records and push them to disk before returning."""
        records = list(records)
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            offsets = []
            for record in records:
                offsets.append(handle.tell())
                handle.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        for record, offset in zip(records, offsets, strict=True):
            self._remember(record, offset)
