"""The frames between gateway worker processes and the ledger's writer process (one Unix socket
per worker): a 4-byte big-endian length, then one JSON object.

Events travel prepared (``PreparedEvent``: index columns and the canonical bytes around
``seq``), so the workers do the costly encoding and the writer only splices, hashes and
commits. Canonical bytes are UTF-8 JSON text, so they travel as strings.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Final

import orjson

from trailguard.ledger.writer import (
    EventRejectedError,
    LedgerError,
    LedgerWriteError,
    PreparedEvent,
    Receipt,
    RejectedEvent,
)

MAX_FRAME: Final = 256 * 1024 * 1024
"""Larger frames are refused: a hook request is capped far below this."""
_LENGTH = struct.Struct(">I")


class WireError(LedgerError):
    """The connection to the writer broke or carried something that is not a frame."""


def frame(message: dict[str, Any]) -> bytes:
    payload = orjson.dumps(message)
    return _LENGTH.pack(len(payload)) + payload


def _read_exactly(sock: socket.socket, size: int, buffer: bytearray) -> bool:
    while len(buffer) < size:
        chunk = sock.recv(max(65536, size - len(buffer)))
        if not chunk:
            return False
        buffer.extend(chunk)
    return True


class FrameReader:
    """Reads whole frames from a stream socket, buffering what arrived beyond one."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def read(self) -> dict[str, Any] | None:
        """The next message, or None at a clean end of the stream."""
        if not _read_exactly(self._sock, _LENGTH.size, self._buffer):
            if self._buffer:
                raise WireError("the connection ended inside a frame")
            return None
        (size,) = _LENGTH.unpack_from(self._buffer)
        if size > MAX_FRAME:
            raise WireError(f"a frame of {size} bytes is larger than {MAX_FRAME}")
        if not _read_exactly(self._sock, _LENGTH.size + size, self._buffer):
            raise WireError("the connection ended inside a frame")
        payload = bytes(self._buffer[_LENGTH.size : _LENGTH.size + size])
        del self._buffer[: _LENGTH.size + size]
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise WireError(f"a frame is not JSON: {exc}") from None
        if not isinstance(message, dict):
            raise WireError("a frame is not a JSON object")
        return message


def entry_to_wire(entry: PreparedEvent | RejectedEvent) -> list[Any]:
    if isinstance(entry, RejectedEvent):
        return ["!", entry.event_id, entry.event_type, entry.reason]
    return [
        entry.event_id,
        entry.timestamp,
        entry.event_type,
        entry.session_id,
        entry.developer_id,
        entry.project_id,
        entry.tool,
        entry.prefix.decode(),
        entry.suffix.decode(),
    ]


def entry_from_wire(item: Any) -> PreparedEvent | RejectedEvent:
    """One entry of an append frame. Raises WireError for anything else."""
    try:
        if item[0] == "!":
            _, event_id, event_type, reason = item
            return RejectedEvent(str(event_id), str(event_type), str(reason))
        event_id, timestamp, event_type, session, developer, project, tool, prefix, suffix = item
        for text in (event_id, timestamp, event_type, prefix, suffix):
            if not isinstance(text, str):
                raise TypeError(text)
        return PreparedEvent(
            event_id, timestamp, event_type, session, developer, project, tool,
            prefix.encode(), suffix.encode(),
        )  # fmt: skip
    except (TypeError, ValueError, IndexError) as exc:
        raise WireError(f"malformed event entry: {exc!r}"[:300]) from None


def receipts_to_wire(receipts: list[Receipt]) -> list[list[Any]]:
    return [[r.seq, r.event_id, r.leaf_hash.hex(), r.duplicate] for r in receipts]


def receipts_from_wire(items: list[list[Any]]) -> list[Receipt]:
    return [Receipt(int(s), str(e), bytes.fromhex(h), bool(d)) for s, e, h, d in items]


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """An error the writer answers with: its kind decides what the worker raises (and so the
    HTTP status its client gets)."""
    if isinstance(exc, EventRejectedError):
        return {
            "error": "rejected",
            "message": str(exc),
            "receipts": receipts_to_wire(exc.receipts),
        }
    if isinstance(exc, LedgerWriteError):
        return {"error": "write", "message": str(exc)}
    return {"error": "ledger", "message": str(exc) or type(exc).__name__}


def error_from_wire(message: dict[str, Any]) -> LedgerError:
    text = str(message.get("message", "the ledger writer refused the request"))
    kind = message.get("error")
    if kind == "rejected":
        return EventRejectedError(text, receipts_from_wire(message.get("receipts", [])))
    if kind == "write":
        return LedgerWriteError(text)
    return LedgerError(text)
