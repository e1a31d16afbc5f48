"""The shared ledger: several gateway replicas on one PostgreSQL database, one sequencer.

Modelled on transparency-log servers (Trillian, Tessera): every replica is a front end that
commits each event durably to an *intake* table (its canonical bytes around a placeholder for
the position) and then waits; exactly one replica at a time, the holder of a PostgreSQL advisory
lock, is the *sequencer*: it moves intake rows into the ledger in arrival order, assigns ``seq``,
extends the Merkle tree, signs the tree head in the same transaction (and a checkpoint every N
events or T seconds) and notifies the replicas, which then acknowledge. When the sequencer dies
its connection closes, the lock is released, and another replica takes over from what the
database holds: nothing acknowledged is lost, nothing is sequenced twice, and the database
itself refuses a ``seq`` that does not continue the ledger (``schema.continue_ledger``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from trailguard import __version__
from trailguard.events import Event, EventType, GatewayStart, GatewayStop
from trailguard.ledger import keys, merkle, note
from trailguard.ledger.intake import INTAKE_COLUMNS, IntakeRow, intake_row
from trailguard.ledger.sequencer import Sequencer
from trailguard.ledger.writer import (
    _WRITER_OWNED,
    EventRejectedError,
    LedgerConfig,
    LedgerError,
    LedgerIntegrityError,
    LedgerWriteError,
    Receipt,
)
from trailguard.store.backend import PostgresBackend
from trailguard.store.base import StoreError
from trailguard.store.postgres import schema
from trailguard.store.postgres.connect import (
    describe,
    first_line,
    int_array,
    open_connection,
    text_array,
)
from trailguard.store.postgres.ledger_store import PostgresStore

log = logging.getLogger("trailguard.shared")


def signer_for_store(key_file: Path | None, default_name: str) -> keys.LoadedSigner:
    """The shared signing key: ``key_file`` (created there on the first start when missing,
    with its verifier key beside it as ``<name>.pub``), else ``$TRAILGUARD_SIGNING_KEY``.
    Every replica must be given the same key."""
    if key_file is not None:
        key_file = key_file.expanduser().absolute()
        if not key_file.exists():
            signer = note.Signer.generate(default_name)
            with contextlib.suppress(FileExistsError):
                key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                keys.write_private_file(key_file, signer.to_string() + "\n")
        loaded = keys.load_or_create_signer(key_file.parent, key_file=key_file, default_name="")
        public = key_file.with_suffix(".pub")  # the verifier key, to hand to auditors
        if not public.exists():
            with contextlib.suppress(OSError):
                keys.write_file_durably(
                    public, loaded.signer.verifier.to_string() + "\n", mode=0o644
                )
        return loaded
    if os.environ.get(keys.SIGNING_KEY_ENV):
        return keys.load_or_create_signer(Path("."), default_name="")
    raise LedgerError(
        "a shared ledger needs its signing key: pass --signing-key FILE (created there on the "
        f"first start; give every replica the same file) or set ${keys.SIGNING_KEY_ENV}"
    )


def redaction_key_of(signer: note.Signer) -> bytes:
    """The redaction tags' key on a shared ledger: derived from the signing key every replica
    holds, so equal secrets get equal tags on every replica, and nobody with only the
    database can compute a tag."""
    seed = signer.private_key.private_bytes_raw()
    return hashlib.sha256(b"trailguard redaction key\x00" + seed).digest()


@dataclass
class _Request:
    events: list[Event]
    future: Future[list[Receipt]]
    rows: list[IntakeRow] = field(default_factory=list)
    receipts: list[Receipt | None] = field(default_factory=list)
    waiting: int = 0
    deadline: float = 0.0


@dataclass
class _Wait:
    request: _Request
    index: int
    row: IntakeRow
    duplicate: bool


class SharedLedger:
    """One replica's door to the shared ledger (and, while it holds the lock, its sequencer).
    Use ``SharedLedger.open``. The interface is the SQLite ``Ledger``'s."""

    def __init__(
        self,
        url: str,
        signer: keys.LoadedSigner,
        origin: str,
        config: LedgerConfig,
        *,
        sequencer: bool = True,
        sequencing_timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.where = describe(url)
        self.origin = origin
        self.config = config
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._signer = signer.signer
        self.signer_source = signer.source
        self.backend = PostgresBackend(url, redaction_key_of(signer.signer))
        self.sequencing_timeout = sequencing_timeout
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._waits: dict[int, list[_Wait]] = {}
        self._waits_lock = threading.Lock()
        self._submit_lock = threading.Lock()
        self._accepting = True
        self._closed = False
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._outage: str | None = None
        self._known_size = 0
        self._intake_db = self._open_intake()
        self._listen_db = open_connection(url)
        self._listen_db.execute(f"LISTEN {schema.SEQUENCED_CHANNEL}")
        self._own_channel = f"trailguard_replica_{uuid.uuid4().hex[:12]}"
        self._listen_db.execute(f"LISTEN {self._own_channel}")
        self.sequencer = Sequencer(self) if sequencer else None
        self._intake_thread = threading.Thread(
            target=self._intake_loop, name="trailguard-intake", daemon=True
        )
        self._listen_thread = threading.Thread(
            target=self._listen_loop, name="trailguard-sequenced", daemon=True
        )

    # -- opening --------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        config: LedgerConfig | None = None,
        key_file: Path | None = None,
        run_reason: str = "serve",
        sequencer: bool = True,
        sequencing_timeout: float = 30.0,
    ) -> SharedLedger:
        """Join the shared ledger at ``url`` (creating its schema when missing and allowed),
        with the shared signing key; record ``gateway_start`` once it is sequenced."""
        try:
            store = PostgresStore(url, create=True)
        except StoreError as exc:
            raise LedgerError(str(exc)) from None
        try:
            origin = store.get_meta("origin")
            key_name = origin or f"trailguard.shared/{uuid.uuid4().hex[:16]}"
            signer = signer_for_store(key_file, key_name)
            verifier_key = signer.signer.verifier.to_string()
            if origin is None:
                with contextlib.suppress(StoreError):  # another replica pinned first: see below
                    store.set_meta_values(
                        {"origin": signer.signer.name, "verifier_key": verifier_key}
                    )
                origin = store.get_meta("origin") or signer.signer.name
            pinned = store.get_meta("verifier_key")
            if pinned != verifier_key:
                name, key_id, _ = verifier_key.split("+", 2)
                raise LedgerIntegrityError(
                    f"the signing key from {signer.source} ({name}+{key_id}) is not the key this "
                    f"ledger was created with ({pinned}); every replica needs the same key"
                )
            previous_size = store.tree_size()
        except StoreError as exc:
            raise LedgerError(str(exc)) from None
        finally:
            store.close()
        try:
            ledger = cls(
                url,
                signer,
                origin,
                config or LedgerConfig(),
                sequencer=sequencer,
                sequencing_timeout=sequencing_timeout,
            )
        except StoreError as exc:
            raise LedgerError(str(exc)) from None
        ledger._known_size = previous_size
        ledger._intake_thread.start()
        ledger._listen_thread.start()
        if ledger.sequencer is not None:
            ledger.sequencer.start()
        try:
            ledger._submit(
                [
                    GatewayStart(
                        version=__version__,
                        hostname=socket.gethostname(),
                        pid=os.getpid(),
                        origin=origin,
                        verifier_key=verifier_key,
                        previous_tree_size=previous_size,
                        source=run_reason,
                        extra={"replica": ledger.replica},
                    )
                ],
                internal=True,
            ).result()
        except BaseException:
            ledger._shutdown()
            raise
        return ledger

    # -- appending (the replica) ----------------------------------------------------------------

    def submit(self, event: Event) -> Future[list[Receipt]]:
        return self._submit([event])

    def submit_many(self, events: list[Event]) -> Future[list[Receipt]]:
        return self._submit(list(events))

    def append(self, event: Event) -> Receipt:
        return self._submit([event]).result()[0]

    def append_many(self, events: Iterable[Event], *, chunk: int = 5000) -> list[Receipt]:
        receipts: list[Receipt] = []
        rejected: list[str] = []
        batch: list[Event] = []

        def commit(events: list[Event]) -> None:
            try:
                receipts.extend(self._submit(events).result())
            except EventRejectedError as exc:
                receipts.extend(exc.receipts)
                rejected.append(str(exc))

        for event in events:
            batch.append(event)
            if len(batch) >= chunk:
                commit(batch)
                batch = []
        if batch:
            commit(batch)
        if rejected:
            raise EventRejectedError("; ".join(rejected), receipts)
        return receipts

    def checkpoint(self) -> Receipt:
        """Ask the sequencer for a checkpoint covering everything sequenced so far; returns
        the receipt of that checkpoint once it is stored."""
        deadline = time.monotonic() + self.sequencing_timeout
        store = PostgresStore(self.url, read_only=True)
        try:
            size = store.tree_size()
            while True:
                last = store.last_row_of_type(EventType.CHECKPOINT.value)
                if last is not None and last.seq >= size - 1:
                    return Receipt(last.seq, last.event_id, last.leaf_hash)
                self._intake_db.execute(
                    "SELECT pg_notify(%s, 'checkpoint')", (schema.INTAKE_CHANNEL,)
                )
                if time.monotonic() > deadline:
                    raise LedgerWriteError(
                        f"no sequencer signed a checkpoint in {self.sequencing_timeout:g} s: "
                        "is any replica able to take the sequencer's lock?"
                    )
                time.sleep(0.02)
        except psycopg.Error as exc:
            raise LedgerWriteError(f"{self.where}: {first_line(exc)}") from None
        finally:
            store.close()

    @property
    def tree_size(self) -> int:
        return self._known_size

    @property
    def verifier(self) -> note.Verifier:
        return self._signer.verifier

    @property
    def healthy(self) -> bool:
        return (
            self._failure is None
            and self._outage is None
            and not self._closed
            and self._intake_thread.is_alive()
        )

    @property
    def write_outage(self) -> str | None:
        return self._outage

    @property
    def leads(self) -> bool:
        """Whether this replica is the sequencer now (it runs the once-only jobs)."""
        return self.sequencer is not None and self.sequencer.leading

    def probe(self, timeout: float = 5.0) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=max(1, int(timeout))) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        self._outage = None
        return self.healthy

    def _submit(self, events: list[Event], *, internal: bool = False) -> Future[list[Receipt]]:
        if not internal:
            for event in events:
                if isinstance(event, _WRITER_OWNED):
                    raise EventRejectedError(
                        f"{event.event_type.value} events are written by the ledger itself"
                    )
        with self._submit_lock:
            if self._failure is not None:
                raise LedgerError(f"the ledger replica has stopped: {self._failure}")
            if self._closed or (not self._accepting and not internal):
                raise LedgerError("the ledger is closed")
            future: Future[list[Receipt]] = Future()
            # Running from the start: a caller that gives up (a cancelled request task, via
            # asyncio.wrap_future) cannot cancel it, so the writer can always settle it.
            future.set_running_or_notify_cancel()
            self._queue.put(_Request(events, future))
            return future

    def _intake_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            pending = len(first.events)
            with contextlib.suppress(queue.Empty):
                while pending < self.config.max_batch:
                    more = self._queue.get_nowait()
                    if more is None:
                        self._queue.put(None)
                        break
                    batch.append(more)
                    pending += len(more.events)
            try:
                self._accept(batch)
            except BaseException as exc:
                log.exception("trailguard intake failed")
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(LedgerError(f"intake failed: {exc}"))

    def _accept(self, batch: list[_Request]) -> None:
        """Commit one batch to the intake in one transaction, then leave it to the sequencer."""
        live: list[_Request] = []
        for request in batch:
            try:
                request.rows = [intake_row(event) for event in request.events]
            except EventRejectedError as exc:
                request.future.set_exception(exc)
                continue
            request.receipts = [None] * len(request.rows)
            request.deadline = time.monotonic() + self.sequencing_timeout
            live.append(request)
        rows = [(request, index, row) for request in live for index, row in enumerate(request.rows)]
        if not rows:
            return
        waits: dict[int, list[_Wait]] = {}
        db = self._intake_db
        try:
            with db.transaction():
                stored = self._stored(db, [row.event_id for _, _, row in rows])
                first_of: dict[str, tuple[_Request, int, IntakeRow]] = {}
                repeats: list[tuple[_Request, int, IntakeRow]] = []
                for request, index, row in rows:
                    if row.event_id in stored:
                        seq, leaf = stored[row.event_id]
                        request.receipts[index] = Receipt(seq, row.event_id, leaf, duplicate=True)
                    elif row.event_id in first_of:  # the same id twice in one batch
                        repeats.append((request, index, row))
                    else:
                        first_of[row.event_id] = (request, index, row)
                inserted: dict[str, int] = {}
                if first_of:
                    # COPY into this connection's staging table, then one INSERT ... SELECT:
                    # far cheaper per row than binding arrays or many statements.
                    with (
                        db.cursor() as cursor,
                        cursor.copy(
                            f"COPY intake_batch (position, {INTAKE_COLUMNS}) FROM STDIN"
                        ) as copy,
                    ):
                        for position, entry in enumerate(first_of.values()):
                            copy.write_row((position, *entry[2].values()))
                    for intake_id, event_id in db.execute(
                        f"INSERT INTO intake ({INTAKE_COLUMNS}, replica) "
                        f"SELECT {INTAKE_COLUMNS}, %s FROM intake_batch ORDER BY position "
                        "ON CONFLICT (event_id) DO NOTHING RETURNING intake_id, event_id",
                        (self.replica,),
                    ):
                        inserted[str(event_id)] = int(intake_id)
                missing = [event_id for event_id in first_of if event_id not in inserted]
                queued: dict[str, int] = {}
                if missing:  # queued by another replica, or sequenced meanwhile
                    queued = {
                        str(event_id): int(intake_id)
                        for intake_id, event_id in db.execute(
                            "SELECT intake_id, event_id FROM intake "
                            "WHERE event_id = ANY(%s::text[])",
                            (text_array(missing),),
                        )
                    }
                    stored = self._stored(db, [i for i in missing if i not in queued])
                for event_id, (request, index, row) in first_of.items():
                    if event_id in inserted or event_id in queued:
                        intake_id = inserted.get(event_id, queued.get(event_id, -1))
                        request.waiting += 1
                        duplicate = event_id not in inserted
                        waits.setdefault(intake_id, []).append(
                            _Wait(request, index, row, duplicate)
                        )
                    elif event_id in stored:
                        seq, leaf = stored[event_id]
                        request.receipts[index] = Receipt(seq, event_id, leaf, duplicate=True)
                for request, index, row in repeats:
                    first = first_of[row.event_id]
                    intake_id = inserted.get(row.event_id, queued.get(row.event_id))
                    if intake_id is not None:
                        request.waiting += 1
                        waits.setdefault(intake_id, []).append(_Wait(request, index, row, True))
                    else:
                        request.receipts[index] = first[0].receipts[first[1]]
                db.execute("SELECT pg_notify(%s, '')", (schema.INTAKE_CHANNEL,))
        except psycopg.Error as exc:
            message = (
                f"could not accept {len(rows)} event(s) into {self.where}: {first_line(exc)}; "
                "nothing of this batch was stored"
            )
            self._outage = message
            for request in live:
                request.future.set_exception(LedgerWriteError(message))
            with contextlib.suppress(psycopg.Error):
                if db.closed or db.broken:
                    self._intake_db = self._open_intake()
            return
        self._outage = None
        for request in live:
            if request.waiting == 0:
                self._finish(request)
        if waits:
            with self._waits_lock:
                for intake_id, found in waits.items():
                    self._waits.setdefault(intake_id, []).extend(found)
            with contextlib.suppress(psycopg.Error):
                db.execute(f"NOTIFY {self._own_channel}")

    def _open_intake(self) -> psycopg.Connection[Any]:
        db = open_connection(self.url, application_name=f"trailguard intake {self.replica}")
        db.execute(
            "CREATE TEMPORARY TABLE intake_batch (position integer NOT NULL, "
            'event_id text, "timestamp" text, event_type text, session_id text, '
            "developer_id text, project_id text, tool text, body_prefix bytea, "
            "body_suffix bytea) ON COMMIT DELETE ROWS"
        )
        return db

    @staticmethod
    def _stored(db: psycopg.Connection[Any], event_ids: list[str]) -> dict[str, tuple[int, bytes]]:
        """(seq, leaf hash) of the ``event_ids`` already in the ledger."""
        if not event_ids:
            return {}
        return {
            str(event_id): (int(seq), bytes(leaf))
            for event_id, seq, leaf in db.execute(
                # A probe per id: "= ANY(array)" may be planned as a scan of every row
                # while a growing partition has no statistics yet.
                "SELECT wanted.event_id, e.seq, e.leaf_hash FROM unnest(%s::text[]) AS "
                "wanted(event_id) CROSS JOIN LATERAL (SELECT seq, leaf_hash FROM events "
                "WHERE events.event_id = wanted.event_id LIMIT 1) AS e",
                (text_array(event_ids),),
            )
        }

    def _finish(self, request: _Request) -> None:
        if request.future.done():
            return
        if any(receipt is None for receipt in request.receipts):
            request.future.set_exception(LedgerError("an event of this request was not stored"))
        else:
            request.future.set_result([r for r in request.receipts if r is not None])

    def _listen_loop(self) -> None:
        """Acknowledge waiting requests as the sequencer reports progress."""
        while not (self._stopping.is_set() and not self._waits):
            try:
                for _ in self._listen_db.notifies(timeout=0.25, stop_after=1):
                    pass
                self._resolve()
            except psycopg.Error as exc:
                log.warning("trailguard: lost the notification connection: %s", first_line(exc))
                time.sleep(0.2)
                with contextlib.suppress(StoreError, psycopg.Error):
                    self._listen_db.close()
                    self._listen_db = open_connection(self.url)
                    self._listen_db.execute(f"LISTEN {schema.SEQUENCED_CHANNEL}")
                    self._listen_db.execute(f"LISTEN {self._own_channel}")

    def _resolve(self) -> None:
        db = self._listen_db
        row = db.execute("SELECT next_seq FROM ledger_head").fetchone()
        if row is not None:
            self._known_size = int(row[0])
        with self._waits_lock:
            queued = list(self._waits)
        if queued:
            pending = {
                int(intake_id)
                for (intake_id,) in db.execute(
                    "SELECT intake_id FROM intake WHERE intake_id = ANY(%s::bigint[])",
                    (int_array(queued),),
                )
            }
            done = [intake_id for intake_id in queued if intake_id not in pending]
            with self._waits_lock:
                finished = {intake_id: self._waits.pop(intake_id, []) for intake_id in done}
            event_ids = sorted({wait.row.event_id for found in finished.values() for wait in found})
            stored = self._stored(db, event_ids)
            for found in finished.values():
                for wait in found:
                    request = wait.request
                    if wait.row.event_id not in stored:
                        if not request.future.done():
                            request.future.set_exception(
                                LedgerError(
                                    f"event {wait.row.event_id} left the intake unsequenced"
                                )
                            )
                        continue
                    seq, leaf = stored[wait.row.event_id]
                    duplicate = wait.duplicate or leaf != merkle.hash_leaf(wait.row.body(seq))
                    request.receipts[wait.index] = Receipt(
                        seq, wait.row.event_id, leaf, duplicate=duplicate
                    )
                    request.waiting -= 1
                    if request.waiting == 0:
                        self._finish(request)
        now = time.monotonic()
        with self._waits_lock:
            for intake_id, found in list(self._waits.items()):
                for wait in found:
                    request = wait.request
                    if now > request.deadline and not request.future.done():
                        request.future.set_exception(
                            LedgerWriteError(
                                f"event {wait.row.event_id} is stored in the intake of "
                                f"{self.where} but no sequencer gave it a position within "
                                f"{self.sequencing_timeout:g} s; it is sequenced when one runs"
                            )
                        )
                remaining = [wait for wait in found if not wait.request.future.done()]
                if remaining:
                    self._waits[intake_id] = remaining
                else:
                    del self._waits[intake_id]

    # -- closing --------------------------------------------------------------------------------

    def close(self, reason: str = "shutdown") -> None:
        """Record this replica's ``gateway_stop``, hand over the sequencer (signing a final
        checkpoint if it led), and disconnect."""
        if self._closed:
            return
        try:
            with self._submit_lock:
                self._accepting = False
            if self._failure is None:
                # Without a sequencer the stop stays in the intake, sequenced when one runs.
                with contextlib.suppress(LedgerError, TimeoutError):
                    self._submit(
                        [
                            GatewayStop(
                                reason=reason, source="ledger", extra={"replica": self.replica}
                            )
                        ],
                        internal=True,
                    ).result(timeout=self.sequencing_timeout)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        with self._submit_lock:
            self._accepting = False
            self._closed = True
        self._queue.put(None)
        self._intake_thread.join(timeout=30)
        self._stopping.set()
        if self.sequencer is not None:
            self.sequencer.stop()
        self._listen_thread.join(timeout=5)
        with self._waits_lock:
            for found in self._waits.values():
                for wait in found:
                    if not wait.request.future.done():
                        wait.request.future.set_exception(LedgerError("the ledger replica closed"))
            self._waits.clear()
        for db in (self._intake_db, self._listen_db):
            with contextlib.suppress(psycopg.Error):
                db.close()

    def __enter__(self) -> SharedLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
