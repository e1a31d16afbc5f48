"""The shared ledger's sequencer: the one replica holding a PostgreSQL advisory lock moves
intake rows into the ledger in arrival order, assigns ``seq``, extends the tree and signs the
head in the same transaction (and a checkpoint every N events or T seconds)."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from trailguard.events import Checkpoint, EventType
from trailguard.ledger import checkpoint as checkpoints
from trailguard.ledger import merkle
from trailguard.ledger.intake import INTAKE_COLUMNS, IntakeRow
from trailguard.ledger.stored_tree import StoredTree
from trailguard.ledger.writer import (
    LedgerIntegrityError,
    _quarantine_alert,
    check_against_latest_checkpoint,
    encode_row,
    quarantine_unsigned_tail,
)
from trailguard.store.base import LedgerRow, StoreError
from trailguard.store.postgres import schema
from trailguard.store.postgres.connect import first_line, int_array
from trailguard.store.postgres.ledger_store import PostgresStore

if TYPE_CHECKING:
    from trailguard.ledger.shared import SharedLedger

log = logging.getLogger("trailguard.sequencer")

PARTITION_CHECK_SECONDS = 3600.0
INTAKE_WINDOW = 100_000
"""How far below the highest intake id taken each batch looks (ids are assigned at insert and
committed within milliseconds, so a later commit of a much lower id is a rare straggler)."""
FULL_SCAN_SECONDS = 1.0


class _Fenced(Exception):
    """The ledger moved under the sequencer (another writer): reload before going on."""


class Sequencer:
    """Competes for the sequencer's advisory lock; while it holds it, sequences the intake.

    Everything runs on one connection: the lock is a session lock of that connection, so when
    this process dies (or its connection does) the lock goes with it and no transaction of a
    dead sequencer can commit afterwards."""

    def __init__(self, ledger: SharedLedger) -> None:
        self.ledger = ledger
        self.leading = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trailguard-sequencer", daemon=True)
        self._forced = False
        self.committed_batches = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            store: PostgresStore | None = None
            try:
                store = PostgresStore(
                    self.ledger.url, application_name=f"trailguard sequencer {self.ledger.replica}"
                )
                db = store.connection
                while not self._stop.is_set():
                    row = db.execute(
                        "SELECT pg_try_advisory_lock(%s)", (schema.SEQUENCER_LOCK,)
                    ).fetchone()
                    if row and row[0]:
                        break
                    self._stop.wait(0.2)
                else:
                    return
                self._lead(store)
            except (psycopg.Error, StoreError, _Fenced) as exc:
                log.warning("trailguard sequencer stepped down: %s", exc)
                self._stop.wait(0.5)
            except LedgerIntegrityError as exc:
                log.error("trailguard sequencer refuses this ledger: %s", exc)
                self._stop.wait(5)
            finally:
                self.leading = False
                if store is not None:
                    with contextlib.suppress(psycopg.Error):
                        store.close()

    def _lead(self, store: PostgresStore) -> None:
        ledger = self.ledger
        db = store.connection
        verifier = ledger.verifier
        location = f"--store {ledger.where}"
        quarantined = quarantine_unsigned_tail(store, verifier, location)
        size = store.tree_size()
        check_against_latest_checkpoint(store, verifier, size, location)
        tree = StoredTree(store).compact_range(size)
        last = store.last_row_of_type(EventType.CHECKPOINT.value)
        state = _SequencerState(tree, -1 if last is None else last.seq, time.monotonic())
        db.execute(f"LISTEN {schema.INTAKE_CHANNEL}")
        self.leading = True
        log.info("trailguard: %s is the sequencer at tree size %d", ledger.replica, size)
        extra: list[LedgerRow] = []
        if quarantined:
            extra.append(encode_row(_quarantine_alert(quarantined), tree.size))
        self._forced = True  # sign at once: the takeover itself is covered
        partitions_checked = -math.inf  # never 0.0: monotonic time may start at boot
        while True:
            if time.monotonic() - partitions_checked > PARTITION_CHECK_SECONDS:
                self._prepare_partitions(store)
                partitions_checked = time.monotonic()
            stopping = self._stop.is_set()
            moved = self._sequence_once(store, state, extra, final=stopping)
            extra = []
            if stopping:
                db.execute("SELECT pg_advisory_unlock(%s)", (schema.SEQUENCER_LOCK,))
                return
            if moved:
                continue
            wait = max(
                0.0,
                min(
                    0.25,
                    state.last_checkpoint_time
                    + ledger.config.checkpoint_interval_seconds
                    - time.monotonic(),
                ),
            )
            for notice in db.notifies(timeout=wait, stop_after=1):
                if notice.payload == "checkpoint":
                    self._forced = True

    @staticmethod
    def _prepare_partitions(store: PostgresStore) -> None:
        """Create this month's and next month's partitions ahead, in a short transaction of
        their own: creating a partition locks the parent table, and inside a sequencing
        transaction that could wait behind a long read (a verify) at the turn of a month."""
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC)
        months = {
            now.strftime("%Y-%m"),
            (now.replace(day=1) + timedelta(days=32)).strftime("%Y-%m"),
        }
        try:
            with store.connection.transaction():
                store.connection.execute("SET LOCAL lock_timeout = '2s'")
                store.ensure_partitions(months)
        except psycopg.Error as exc:
            store.forget_partitions(months)
            log.warning("trailguard: partitions %s not created ahead: %s", months, first_line(exc))

    def _sequence_once(
        self,
        store: PostgresStore,
        state: _SequencerState,
        extra: list[LedgerRow],
        *,
        final: bool = False,
    ) -> bool:
        """One transaction: take what the intake holds (in arrival order), give it positions,
        sign the head (and a checkpoint when due), delete it from the intake, notify. Returns
        whether anything was sequenced."""
        ledger = self.ledger
        config = ledger.config
        db = store.connection
        tree = state.tree
        saved = tree.copy()
        try:
            with db.transaction():
                head = db.execute("SELECT next_seq FROM ledger_head FOR UPDATE").fetchone()
                if head is None or int(head[0]) != tree.size:
                    raise _Fenced(
                        f"the ledger holds {head[0] if head else '?'} events, the sequencer "
                        f"expected {tree.size}: another writer appended"
                    )
                # Each row says whether its event id is already in the ledger (a replay that
                # raced its original: acknowledged as a duplicate, never stored twice).
                # Deleted intake rows stay in its index until vacuumed: scanning from the
                # start every time grows with the backlog of dead entries. So scan from just
                # below the highest id taken, and from the start once a second, which finds a
                # straggler (an id assigned early, committed late) within that second.
                now = time.monotonic()
                floor = max(0, state.highest_taken - INTAKE_WINDOW)
                if now - state.last_full_scan >= FULL_SCAN_SECONDS:
                    floor, state.last_full_scan = 0, now
                # One index probe per row (LATERAL ... LIMIT 1): an EXISTS here may be planned
                # as a hashed scan of the whole partition, which grows with the ledger.
                pending = db.execute(
                    f"SELECT intake_id, {INTAKE_COLUMNS}, stored.seq IS NOT NULL FROM "
                    "(SELECT * FROM intake WHERE intake_id > %s ORDER BY intake_id LIMIT %s "
                    "FOR UPDATE) AS queued LEFT JOIN LATERAL (SELECT e.seq FROM events e "
                    "WHERE e.event_id = queued.event_id LIMIT 1) AS stored ON true "
                    "ORDER BY intake_id",
                    (floor, config.max_batch),
                ).fetchall()
                taken: list[int] = []
                rows: list[LedgerRow] = list(extra)
                for row in extra:
                    tree.append(row.leaf_hash)
                start_seen = False
                for values in pending:
                    intake_id = int(values[0])
                    event_id, at, kind, session, developer, project, tool = values[1:8]
                    item = IntakeRow(
                        event_id, at, kind, session, developer, project, tool,
                        bytes(values[8]), bytes(values[9]),
                    )  # fmt: skip
                    taken.append(intake_id)
                    state.highest_taken = max(state.highest_taken, intake_id)
                    if values[10]:
                        continue  # a replay of a sequenced event: acknowledged as duplicate
                    body = item.body(tree.size)
                    row = LedgerRow(
                        tree.size,
                        item.event_id,
                        item.timestamp,
                        item.event_type,
                        item.session_id,
                        item.developer_id,
                        item.project_id,
                        item.tool,
                        merkle.hash_leaf(body),
                        body,
                    )
                    tree.append(row.leaf_hash)
                    rows.append(row)
                    if item.event_type == EventType.GATEWAY_START.value:
                        start_seen = True  # every start is followed at once by a checkpoint
                        break
                uncovered = tree.size - state.last_checkpoint_seq - 1
                now = time.monotonic()
                due_by_time = now - state.last_checkpoint_time >= config.checkpoint_interval_seconds
                forced = self._forced or final or start_seen
                checkpoint_row = None
                if uncovered > 0 and (
                    forced or uncovered >= config.checkpoint_every_events or due_by_time
                ):
                    checkpoint_row = self._checkpoint_row(tree)
                    tree.append(checkpoint_row.leaf_hash)
                    rows.append(checkpoint_row)
                if not rows:
                    self._forced = False
                    if due_by_time:
                        state.last_checkpoint_time = now
                    if taken:
                        db.execute(
                            "DELETE FROM intake WHERE intake_id = ANY(%s::bigint[])",
                            (int_array(taken),),
                        )
                        db.execute("SELECT pg_notify(%s, '')", (schema.SEQUENCED_CHANNEL,))
                    return bool(taken)
                signed = checkpoints.sign_checkpoint(
                    ledger.origin, tree.size, tree.root(), ledger._signer
                )
                store.append_in_transaction(
                    rows, tree.completed, signed.note, check_duplicates=False
                )
                if taken:
                    db.execute(
                        "DELETE FROM intake WHERE intake_id = ANY(%s::bigint[])",
                        (int_array(taken),),
                    )
                db.execute("SELECT pg_notify(%s, '')", (schema.SEQUENCED_CHANNEL,))
        except BaseException:
            state.tree = saved
            raise
        tree.completed.clear()
        self.committed_batches += 1
        self._forced = False
        if checkpoint_row is not None:
            state.last_checkpoint_seq = checkpoint_row.seq
            state.last_checkpoint_time = time.monotonic()
        return True

    def _checkpoint_row(self, tree: merkle.CompactRange) -> LedgerRow:
        ledger = self.ledger
        size = tree.size
        signed = checkpoints.sign_checkpoint(ledger.origin, size, tree.root(), ledger._signer)
        event = Checkpoint(
            origin=ledger.origin,
            tree_size=size,
            root_hash=signed.root_b64,
            note=signed.note,
            source="ledger",
        )
        return encode_row(event, size)


@dataclass
class _SequencerState:
    tree: merkle.CompactRange
    last_checkpoint_seq: int
    last_checkpoint_time: float
    highest_taken: int = 0
    last_full_scan: float = -math.inf  # monotonic time may start at boot
