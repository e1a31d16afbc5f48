"""The intake of a shared ledger: an event canonicalised by the replica that received it, with
the place of its ``seq`` left open for the sequencer."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

from trailguard.events import Event
from trailguard.ledger.canonical import canonical_document
from trailguard.ledger.writer import EventRejectedError

INTAKE_COLUMNS = (
    'event_id, "timestamp", event_type, session_id, developer_id, project_id, tool, '
    "body_prefix, body_suffix"
)
_SEQ_KEY = b'"seq":'


@dataclass(frozen=True)
class IntakeRow:
    """An event's canonical bytes cut where its ``seq`` goes: body = prefix || seq || suffix."""

    event_id: str
    timestamp: str
    event_type: str
    session_id: str | None
    developer_id: str | None
    project_id: str | None
    tool: str | None
    prefix: bytes
    suffix: bytes

    def body(self, seq: int) -> bytes:
        return self.prefix + str(seq).encode() + self.suffix

    def values(self) -> tuple[object, ...]:
        return (
            self.event_id,
            self.timestamp,
            self.event_type,
            self.session_id,
            self.developer_id,
            self.project_id,
            self.tool,
            self.prefix,
            self.suffix,
        )


_placeholders = random.Random(secrets.randbits(128))  # noqa: S311 - see below
"""Seeded once from the OS: the placeholder need not be secret (an ambiguous body is retried
with another), only not chosen by the agent; os.urandom per event costs a system call."""


def intake_row(event: Event) -> IntakeRow:
    """``event`` canonicalised once, by the replica that received it, with its position left
    open. A random placeholder (never agent-chosen) marks where RFC 8785 puts ``seq``; the
    canonical form of an integer is its decimal digits, so any ``seq`` can be filled in."""
    if event.seq is not None:
        raise EventRejectedError(f"event {event.event_id} already has seq {event.seq}")
    document = event.to_json_dict()
    for _ in range(8):
        placeholder = (1 << 52) + _placeholders.getrandbits(52)
        document["seq"] = placeholder
        try:
            body = canonical_document(document, event.free_form_fields())
        except ValueError as exc:
            raise EventRejectedError(f"event {event.event_id}: {exc}") from None
        marker = _SEQ_KEY + str(placeholder).encode()
        if body.count(marker) == 1:
            prefix, suffix = body.split(marker)
            return IntakeRow(
                event.event_id,
                event.timestamp,
                event.event_type.value,
                event.session_id,
                event.developer_id,
                event.project_id,
                getattr(event, "tool", None),
                prefix + _SEQ_KEY,
                suffix,
            )
    raise EventRejectedError(f"event {event.event_id}: no unambiguous place for its seq")
