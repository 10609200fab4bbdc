"""Message framing between the host and the in-sandbox supervisor: a 4-byte big-endian length, then UTF-8 JSON.

Standard library only: the supervisor loads this file by path inside the sandbox.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_MESSAGE_BYTES = 256 << 20


def encode_message(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode("utf-8")
    return HEADER.pack(len(body)) + body


def write_message(fd: int, message: dict[str, Any]) -> None:
    data = encode_message(message)
    while data:
        data = data[os.write(fd, data) :]


class FrameDecoder:
    """Incremental decoder: feed it the bytes read so far, take whole messages out (the host reads with a deadline,
    the supervisor as much as is there)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_message(self) -> dict[str, Any] | None:
        if len(self._buffer) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self._buffer)
        if size > MAX_MESSAGE_BYTES:
            raise ValueError(f"message of {size} bytes is over the limit")
        if len(self._buffer) < HEADER.size + size:
            return None
        body = bytes(self._buffer[HEADER.size : HEADER.size + size])
        del self._buffer[: HEADER.size + size]
        return json.loads(body)


def read_message(fd: int, decoder: FrameDecoder) -> dict[str, Any] | None:
    """Block until the next message from ``fd`` is in; None at end of stream. Reads what is there, so that the
    job queued behind this one comes in with it (one system call instead of two per message)."""
    while (message := decoder.next_message()) is None:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        decoder.feed(chunk)
    return message
