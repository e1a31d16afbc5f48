"""Each sink's status as any process can read it: the cursor and counters from
``sinks.sqlite3``, the lag from the ledger (its signed head, the time of the event at the
cursor). ``trailguard sinks status`` and the gateway's ``/metrics`` both show this."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from trailguard.events import parse_timestamp
from trailguard.ledger.checkpoint import CheckpointError, read_unverified
from trailguard.siem.cursors import CursorStore, SinkRecord
from trailguard.siem.forwarder import SinkStatus
from trailguard.store.base import SIGNED_HEAD_KEY
from trailguard.store.sqlite import SQLiteStore


def ledger_head(store: SQLiteStore) -> int:
    """Events covered by the ledger's latest signed tree head (shown, not verified here)."""
    text = store.get_meta(SIGNED_HEAD_KEY)
    if text is not None:
        try:
            return read_unverified(text).tree_size
        except CheckpointError:
            pass
    return store.tree_size()


def lag_seconds(store: SQLiteStore, cursor: int, head: int) -> float:
    """Age of the oldest event the sink has not acknowledged; 0 when caught up."""
    if cursor >= head:
        return 0.0
    row = store.row_by_seq(cursor)
    if row is None:
        return 0.0
    moment = parse_timestamp(row.timestamp)
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


def status_of(record: SinkRecord, store: SQLiteStore, head: int, *, running: bool) -> SinkStatus:
    return SinkStatus(
        name=record.name,
        destination=record.destination,
        state=record.state if running else "stopped",
        cursor=record.cursor,
        head=head,
        lag_events=max(0, head - record.cursor),
        lag_seconds=lag_seconds(store, record.cursor, head),
        delivered=record.delivered,
        failures=record.failures,
        last_error=record.last_error,
    )


def sink_statuses(
    store: SQLiteStore,
    cursors: CursorStore,
    *,
    running: bool,
    names: Collection[str] | None = None,
) -> list[SinkStatus]:
    """The status of every sink in ``cursors`` (of ``names`` only, when given)."""
    head = ledger_head(store)
    return [
        status_of(record, store, head, running=running)
        for record in cursors.all()
        if names is None or record.name in names
    ]
