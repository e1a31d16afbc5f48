"""The intake of a shared ledger: an event canonicalised by the replica that received it, with
the place of its ``seq`` left open for the sequencer (the same prepared form a gateway worker
sends the writer process: ``trailguard.ledger.writer.PreparedEvent``)."""

from __future__ import annotations

from trailguard.ledger.writer import PreparedEvent, prepare_event

INTAKE_COLUMNS = (
    'event_id, "timestamp", event_type, session_id, developer_id, project_id, tool, '
    "body_prefix, body_suffix"
)

IntakeRow = PreparedEvent
"""An event's canonical bytes cut where its ``seq`` goes: body = prefix || seq || suffix."""

intake_row = prepare_event
"""``event`` canonicalised once, by the replica that received it, with its position left
open; raises EventRejectedError for an event that has a position or cannot be encoded."""
