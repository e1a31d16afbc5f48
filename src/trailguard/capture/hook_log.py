"""Import JSONL files of Claude Code hook payloads saved by other tools into the ledger.

Each line is one hook payload. A bad line is reported with its number and skipped; every good
line is appended. Event ids are derived from the payload's content, so importing the same file
twice (or two copies of one log) records each payload once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from trailguard.capture.claude_code import Attribution, HookPayloadError, event_from_hook
from trailguard.events import Event, EventValidationError, format_timestamp
from trailguard.ledger.canonical import canonical_json
from trailguard.ledger.log import EventLog
from trailguard.ledger.writer import EventRejectedError
from trailguard.redact import Redactor

BATCH = 2000


@dataclass(frozen=True)
class LineProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportResult:
    lines: int = 0
    appended: int = 0
    already_recorded: int = 0
    problems: list[LineProblem] = field(default_factory=list)


def content_event_id(payload: Any, occurrence: int = 0) -> str:
    """A UUID (version 8, RFC 9562 §5.8) from SHA-256 of the payload's canonical JSON and how
    many identical payloads came before it in the same file: a re-import is recognised, while
    genuine repeats (two identical Stop events in one session) are each kept."""
    material = b"trailguard-hook-log\x00%d\x00" % occurrence + canonical_json(payload)
    digest = bytearray(hashlib.sha256(material).digest())
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(digest[:16])))


def _timestamp_of(payload: dict[str, Any]) -> str | None:
    """The payload's own time, if the tool that saved it added one we can read."""
    for key in ("timestamp", "time", "ts"):
        value = payload.get(key)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                return format_timestamp(moment)
            except (ValueError, OverflowError):  # unreadable, or out of range once in UTC
                continue
    return None


def parse_hook_log(
    stream: BinaryIO,
    *,
    developer_id: str | None,
    project_id: str | None,
    redactor: Redactor,
) -> Iterator[tuple[int, Event | LineProblem]]:
    """(line number, event or problem) for every non-blank line of a hook JSONL stream; every
    event is redacted as the gateway's own are (a log on disk holds what the agent saw)."""
    seen: Counter[bytes] = Counter()
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            reason = "not valid UTF-8" if "utf-8" in str(exc).lower() else f"not JSON ({exc})"
            yield number, LineProblem(number, reason)
            continue
        if not isinstance(payload, dict):
            yield number, LineProblem(number, "not a JSON object (a hook payload is an object)")
            continue
        try:
            canonical = canonical_json(payload)
            occurrence = seen[canonical]
            seen[canonical] += 1
            attribution = Attribution(
                developer_id=developer_id,
                project_id=project_id,
                source="ingest",
                timestamp=_timestamp_of(payload),
                event_id=content_event_id(payload, occurrence),
            )
            event = redactor.redact_event(event_from_hook(payload, attribution))
        except (HookPayloadError, EventValidationError, ValueError) as exc:
            yield number, LineProblem(number, str(exc))
            continue
        yield number, event


def import_hook_log(
    ledger: EventLog,
    path: Path,
    *,
    developer_id: str | None = None,
    project_id: str | None = None,
    progress: Callable[[int], None] | None = None,
    redactor: Redactor | None = None,
) -> ImportResult:
    """Append every good line of ``path`` to ``ledger``, redacted (with the data directory's
    redaction key unless ``redactor`` is given); bad lines are reported, not fatal."""
    redactor = redactor or Redactor(ledger.backend.redaction_key())
    result = ImportResult()
    batch: list[Event] = []

    def flush() -> None:
        try:
            receipts = ledger.append_many(batch)
        except EventRejectedError as exc:  # validated above, so this is a surprise: report it
            receipts = exc.receipts
            result.problems.append(LineProblem(0, f"rejected by the ledger: {exc}"))
        for receipt in receipts:
            if receipt.duplicate:
                result.already_recorded += 1
            else:
                result.appended += 1
        batch.clear()
        if progress is not None:
            progress(result.lines)

    with path.open("rb") as stream:
        for number, item in parse_hook_log(
            stream, developer_id=developer_id, project_id=project_id, redactor=redactor
        ):
            result.lines = number
            if isinstance(item, LineProblem):
                result.problems.append(item)
            else:
                batch.append(item)
                if len(batch) >= BATCH:
                    flush()
    if batch:
        flush()
    return result
