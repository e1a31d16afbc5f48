"""The ledger writer: assigns positions, hashes, signs checkpoints, and commits with group commit.

One thread owns the write connection. Callers hand it events and wait; it takes everything queued
so far, appends the batch in one durable transaction, and only then acknowledges each event. A
signed checkpoint is appended every N events or T seconds and at close, and every writer run is
bracketed by ``gateway_start`` / ``gateway_stop`` events so gaps in activity are explained.
"""

from __future__ import annotations

import collections
import fcntl
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from trailguard import __version__
from trailguard.errors import FaultError
from trailguard.events import (
    Alert,
    Checkpoint,
    Event,
    EventType,
    GatewayStart,
    GatewayStop,
    utc_now,
)
from trailguard.ledger import checkpoint as checkpoints
from trailguard.ledger import keys, merkle, note
from trailguard.ledger.canonical import canonical_document
from trailguard.ledger.stored_tree import StoredTree
from trailguard.store.backend import DataDirBackend
from trailguard.store.base import (
    SIGNED_HEAD_KEY,
    DuplicateEventError,
    LedgerRow,
    Store,
    StoreError,
)
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

LOCK_FILE = "writer.lock"


class LedgerError(FaultError):
    """The ledger cannot do what was asked; the message says why and what to do."""


class LedgerWriteError(LedgerError):
    """An append that was not committed (disk full, read-only, ...). Nothing of it was stored."""

    http_status: ClassVar[int] = 503


class EventRejectedError(LedgerError):
    """An event that cannot be stored as given (already has a position, not canonicalisable).

    ``receipts`` holds the receipts of the other events of the same call, which were stored.
    """

    def __init__(self, message: str, receipts: list[Receipt] | None = None) -> None:
        super().__init__(message)
        self.receipts = receipts or []


class LedgerIntegrityError(LedgerError):
    """The stored ledger does not match its own signed checkpoint or key; the writer refuses to
    extend it. Run ``trailguard verify`` to see what changed."""


@dataclass(frozen=True)
class Receipt:
    """Proof of a durable append: the event's position and leaf hash."""

    seq: int
    event_id: str
    leaf_hash: bytes
    duplicate: bool = False
    """True when an event with this id was already stored (at ``seq``); nothing new was written."""


@dataclass(frozen=True)
class LedgerConfig:
    checkpoint_every_events: int = 1000
    checkpoint_interval_seconds: float = 10.0
    max_batch: int = 2000


class WriterLock:
    """An exclusive advisory lock that makes one process the data directory's only writer."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LedgerError(
                f"{self.path.parent} is in use by another trailguard writer (pid {holder}); "
                "stop it first, or use the read-only commands (verify, query, checkpoint, proof)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def is_held(data_dir: Path) -> bool:
        """Whether some process currently writes to ``data_dir``."""
        path = data_dir / LOCK_FILE
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


_SEQ_SENTINEL = 2**53 - 1
"""The largest integer RFC 8785 represents exactly: the placeholder ``seq`` while encoding."""
_SEQ_DIGITS = len(str(_SEQ_SENTINEL))
_SEQ_KEY = b'"seq":'


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event encoded before it has a position: its index columns and its canonical bytes
    split around the value of ``seq``. RFC 8785 writes an integer as its decimal digits
    whatever surrounds it, so ``prefix + str(seq) + suffix`` is exactly the canonical body at
    ``seq``; the costly part (model dump, canonicalisation) can run anywhere, the writer only
    splices and hashes."""

    event_id: str
    timestamp: str
    event_type: str
    session_id: str | None
    developer_id: str | None
    project_id: str | None
    tool: str | None
    prefix: bytes
    """The canonical bytes up to and including ``"seq":``."""
    suffix: bytes

    def body(self, seq: int) -> bytes:
        """The canonical bytes at position ``seq``."""
        return b"".join((self.prefix, str(seq).encode(), self.suffix))

    def values(self) -> tuple[object, ...]:
        """The columns of the shared ledger's intake table (``INTAKE_COLUMNS``)."""
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

    def row(self, seq: int) -> LedgerRow:
        """The stored form at position ``seq``."""
        body = self.body(seq)
        return LedgerRow(
            seq=seq,
            event_id=self.event_id,
            timestamp=self.timestamp,
            event_type=self.event_type,
            session_id=self.session_id,
            developer_id=self.developer_id,
            project_id=self.project_id,
            tool=self.tool,
            leaf_hash=merkle.hash_leaf(body),
            body=body,
        )


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """An event that could not be prepared: it keeps its place in its request and is refused
    there (the others of the request are still stored)."""

    event_id: str
    event_type: str
    reason: str


def _canonical_at(document: dict[str, Any], free_form: tuple[str, ...], seq: int) -> bytes:
    document["seq"] = seq
    return canonical_document(document, free_form)


def prepare_event(event: Event) -> PreparedEvent:
    """Encode ``event`` for the ledger, all but its position. Raises EventRejectedError for
    an event that already has a position or cannot be canonicalised.

    The placeholder is fixed, so an agent can put it into its own input; that never misplaces
    ``seq`` (the second encoding finds the one byte that differs, which only the top-level
    value can hold), it only costs that event a second encoding. The shared ledger's intake
    uses the same form (trailguard.ledger.intake)."""
    if event.seq is not None:
        raise EventRejectedError(f"event {event.event_id} already has seq {event.seq}")
    document = event.to_json_dict()
    free_form = event.free_form_fields()
    try:
        body = _canonical_at(document, free_form, _SEQ_SENTINEL)
    except ValueError as exc:
        raise EventRejectedError(f"event {event.event_id}: {exc}") from None
    mark = _SEQ_KEY + str(_SEQ_SENTINEL).encode()
    start = body.find(mark)
    if start >= 0 and body.find(mark, start + 1) < 0:
        at = start + len(_SEQ_KEY)
    else:
        # The placeholder also occurs inside a value (agent-controlled input can hold anything):
        # encode once more with another placeholder of the same length; the one byte that
        # differs ends the top-level value.
        other = _canonical_at(document, free_form, _SEQ_SENTINEL - 1)
        at = next(i for i, (a, b) in enumerate(zip(body, other, strict=True)) if a != b)
        at -= _SEQ_DIGITS - 1
    return PreparedEvent(
        event_id=event.event_id,
        timestamp=event.timestamp,
        event_type=event.event_type.value,
        session_id=event.session_id,
        developer_id=event.developer_id,
        project_id=event.project_id,
        tool=getattr(event, "tool", None),
        prefix=body[:at],
        suffix=body[at + _SEQ_DIGITS :],
    )


def prepare_or_reject(event: Event) -> PreparedEvent | RejectedEvent:
    """``prepare_event``, with a refusal kept as a value (to be refused in its place)."""
    try:
        return prepare_event(event)
    except EventRejectedError as exc:
        return RejectedEvent(event.event_id, event.event_type.value, str(exc))


def encode_row(event: Event, seq: int) -> LedgerRow:
    """The stored form of ``event`` at position ``seq``: its canonical bytes and index columns."""
    return prepare_event(event).row(seq)


_Command = Literal["append", "checkpoint", "stop"]
_WRITER_OWNED = (Checkpoint, GatewayStart, GatewayStop)
"""Event types only the writer itself appends: a caller forging one could break the ledger."""
WRITER_OWNED_TYPES = frozenset(
    t.value for t in (EventType.CHECKPOINT, EventType.GATEWAY_START, EventType.GATEWAY_STOP)
)
Entry = PreparedEvent | RejectedEvent
"""What a request to the writer carries: events prepared by the caller (or refused there)."""


@dataclass
class _Request:
    command: _Command
    events: list[Entry]
    future: Future[list[Receipt]]


def quarantine_unsigned_tail(
    store: Store, verifier: note.Verifier, location: str
) -> list[LedgerRow]:
    """Check the stored tree against the latest signed tree head and move aside whatever lies
    beyond it: the writer signs a head in every commit, so such rows were written by something
    else (a sqlite3 shell, a tool, an attacker) and must never be adopted and signed.
    ``location`` is how `trailguard verify` is pointed at this ledger (``--data-dir D``).

    Raises LedgerIntegrityError when the head does not verify, or the events it covers were
    changed or removed."""
    signed_head = store.get_meta(SIGNED_HEAD_KEY)
    if signed_head is None:
        return []  # a ledger written before signed heads: the latest checkpoint is the check
    try:
        head = checkpoints.open_checkpoint(signed_head, verifier)
    except checkpoints.CheckpointError as exc:
        raise LedgerIntegrityError(
            f"the latest signed tree head does not verify: {exc}; run `trailguard verify "
            f"{location}`"
        ) from None
    size = store.tree_size()
    if size < head.tree_size:
        raise LedgerIntegrityError(
            f"the ledger holds {size} events but its latest signed tree head covers "
            f"{head.tree_size}: events were removed from the end; run `trailguard verify "
            f"{location}`"
        )
    if StoredTree(store).root(head.tree_size) != head.root_hash:
        raise LedgerIntegrityError(
            f"the events covered by the latest signed tree head (size {head.tree_size}) no "
            f"longer match it: an event was changed; run `trailguard verify {location}`"
        )
    if size == head.tree_size:
        return []
    return store.quarantine_from(
        head.tree_size,
        "beyond the latest signed tree head: not written by the ledger writer",
        utc_now(),
    )


def check_against_latest_checkpoint(
    store: Store, verifier: note.Verifier, size: int, location: str
) -> bool | None:
    """Refuse to extend a ledger whose stored tree no longer matches its signed checkpoint.
    Returns whether the previous writer stopped cleanly (None for a new ledger)."""
    if size == 0:
        return None
    last = store.last_row_of_type(EventType.CHECKPOINT.value)
    if last is not None:
        try:
            signed = checkpoints.open_checkpoint(
                checkpoints.note_of_event(bytes(last.body)), verifier
            )
        except checkpoints.CheckpointError as exc:
            raise LedgerIntegrityError(
                f"latest checkpoint (seq {last.seq}) does not verify: {exc}; "
                f"run `trailguard verify {location}`"
            ) from None
        recomputed = StoredTree(store).root(signed.tree_size)
        if signed.tree_size != last.seq or recomputed != signed.root_hash:
            raise LedgerIntegrityError(
                f"the stored tree does not match the latest signed checkpoint (seq {last.seq},"
                f" size {signed.tree_size}); run `trailguard verify {location}`"
            )
    # The events after that checkpoint are about to be signed: their bytes must still match
    # the leaf hashes written with them (a crash leaves them unsigned, not unprotected).
    covered = last.seq + 1 if last is not None else 0
    for row in store.rows(covered):
        if merkle.hash_leaf(bytes(row.body)) != row.leaf_hash:
            raise LedgerIntegrityError(
                f"seq {row.seq}, written after the latest checkpoint, no longer matches its "
                f"leaf hash; refusing to sign it. Run `trailguard verify {location}`"
            )
    tail = store.last_row_of_type(EventType.GATEWAY_STOP.value)
    # A clean stop is gateway_stop followed only by its closing checkpoint.
    return tail is not None and tail.seq >= size - 2


def _quarantine_alert(rows: list[LedgerRow]) -> Alert:
    shown = rows[:100]
    return Alert(
        alert_type="unsigned_events_quarantined",
        severity="critical",
        message=f"{len(rows)} event(s) at seq {rows[0].seq}..{rows[-1].seq} were found beyond the "
        "latest signed tree head: something other than the ledger writer wrote them. They were "
        "moved to quarantine, not signed",
        details={
            "count": len(rows),
            "events": [
                {
                    "seq": row.seq,
                    "eventId": row.event_id,
                    "eventType": row.event_type,
                    "leafHash": row.leaf_hash.hex(),
                }
                for row in shown
            ],
            "listedOnly": len(shown),
        },
        source="ledger",
    )


@dataclass(frozen=True)
class _Outage:
    """A stretch of time in which commits failed: what clients were refused, and why."""

    since: str
    refused_events: int = 0
    last_error: str = ""

    def refused(self, events: int, error: str) -> _Outage:
        return replace(self, refused_events=self.refused_events + events, last_error=error)

    def alert(self, until: str) -> Alert:
        return Alert(
            alert_type="ledger_write_refused",
            severity="critical",
            message=f"the ledger could not write from {self.since} to {until}: "
            f"{self.refused_events} event(s) were refused (their clients got 503 and, for tool "
            f"calls, a denial); last error: {self.last_error}",
            details={
                "since": self.since,
                "until": until,
                "refusedEvents": self.refused_events,
                "lastError": self.last_error,
            },
            source="ledger",
        )


class Ledger:
    """The append-only, signed event log of one data directory. Use ``Ledger.open``."""

    def __init__(
        self,
        data_dir: Path,
        store: SQLiteStore,
        lock: WriterLock,
        signer: keys.LoadedSigner,
        origin: str,
        config: LedgerConfig,
    ) -> None:
        self.data_dir = data_dir
        self.origin = origin
        self.config = config
        self._store = store
        self._lock = lock
        self._signer = signer.signer
        self.signer_source = signer.source
        self.backend = DataDirBackend(data_dir)
        tree = StoredTree(store)
        size = store.tree_size()
        self._tree = tree.compact_range(size)
        last = store.last_row_of_type(EventType.CHECKPOINT.value)
        self._last_checkpoint_seq = -1 if last is None else last.seq
        self._last_checkpoint_time = time.monotonic()
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._failure: BaseException | None = None
        self._outage: _Outage | None = None
        """Set while commits fail (disk full, read-only): the writer runs but cannot write."""
        self._submit_lock = threading.Lock()
        self._accepting = True
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="trailguard-ledger", daemon=True)

    # -- opening --------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        config: LedgerConfig | None = None,
        key_file: Path | None = None,
        run_reason: str = "serve",
    ) -> Ledger:
        """Open (creating on first use) the ledger in ``data_dir`` as its only writer, check the
        stored tree against its latest signed checkpoint, record ``gateway_start`` and sign a
        checkpoint covering it."""
        data_dir = data_dir.expanduser().absolute()
        try:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create data directory {data_dir}: {exc.strerror}") from None
        lock = WriterLock(data_dir)
        try:
            lock.acquire()
        except OSError as exc:
            raise LedgerError(f"cannot lock {data_dir}: {exc.strerror}") from None
        quarantined: list[LedgerRow] = []
        try:
            # Gateway state kept in the ledger file by older versions moves to its own file
            # before the ledger's migrations drop it there.
            GatewayState(data_dir, create=True).close()
            store = SQLiteStore.in_data_dir(data_dir)
            origin = store.get_meta("origin")
            key_name = origin or f"trailguard.local/{uuid.uuid4().hex[:16]}"
            signer = keys.load_or_create_signer(data_dir, key_file=key_file, default_name=key_name)
            verifier_key = signer.signer.verifier.to_string()
            if origin is None:
                origin = key_name
                store.set_meta_values({"origin": origin, "verifier_key": verifier_key})
            pinned = store.get_meta("verifier_key")
            if pinned != verifier_key:
                name, key_id, _ = verifier_key.split("+", 2)
                raise LedgerIntegrityError(
                    f"the signing key from {signer.source} ({name}+{key_id}) is not the key this "
                    f"ledger was created with ({pinned}); refusing to sign with a different key"
                )
            keys.ensure_public_key_file(data_dir, signer.signer.verifier)
            quarantined = quarantine_unsigned_tail(
                store, signer.signer.verifier, f"--data-dir {data_dir}"
            )
            ledger = cls(data_dir, store, lock, signer, origin, config or LedgerConfig())
            previous_clean = ledger._check_against_latest_checkpoint()
        except StoreError as exc:
            lock.release()
            raise LedgerError(str(exc)) from None
        except BaseException:
            lock.release()
            raise
        ledger._thread.start()
        ledger._submit(
            "append",
            [
                GatewayStart(
                    version=__version__,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    origin=origin,
                    verifier_key=verifier_key,
                    previous_tree_size=ledger._tree.size,
                    previous_stop_clean=previous_clean,
                    source=run_reason,
                )
            ],
            internal=True,
        ).result()
        # Sign at once, so the start is covered and `trailguard checkpoint` has an answer.
        ledger._submit("checkpoint", [], internal=True).result()
        if quarantined:
            ledger._submit("append", [_quarantine_alert(quarantined)], internal=True).result()
        return ledger

    def _check_against_latest_checkpoint(self) -> bool | None:
        return check_against_latest_checkpoint(
            self._store, self._signer.verifier, self._tree.size, f"--data-dir {self.data_dir}"
        )

    # -- appending ------------------------------------------------------------------------------

    def submit(self, event: Event) -> Future[list[Receipt]]:
        """Queue ``event``; the future resolves with its one Receipt once it is durable."""
        return self._submit("append", [event])

    def submit_many(self, events: list[Event]) -> Future[list[Receipt]]:
        """Queue ``events`` to be committed together, in order, in one transaction."""
        return self._submit("append", list(events))

    def append(self, event: Event) -> Receipt:
        """Append ``event`` and return once it is committed to disk."""
        return self._submit("append", [event]).result()[0]

    def append_many(self, events: Iterable[Event], *, chunk: int = 5000) -> list[Receipt]:
        """Append ``events`` in order, committed in chunks of up to ``chunk`` events per
        transaction. If some events cannot be stored, every other one still is, and then
        EventRejectedError is raised carrying all the receipts.

        The next chunk is encoded in this thread while the writer commits the previous one, so
        canonicalisation and the SQLite insert (which releases the GIL) overlap."""
        receipts: list[Receipt] = []
        rejected: list[str] = []
        in_flight: collections.deque[Future[list[Receipt]]] = collections.deque()

        def settle(future: Future[list[Receipt]]) -> None:
            try:
                receipts.extend(future.result())
            except EventRejectedError as exc:
                receipts.extend(exc.receipts)
                rejected.append(str(exc))

        def commit(batch: list[Event]) -> None:
            in_flight.append(self._submit("append", batch))
            while len(in_flight) > 1:
                settle(in_flight.popleft())

        batch: list[Event] = []
        try:
            for event in events:
                batch.append(event)
                if len(batch) >= chunk:
                    commit(batch)
                    batch = []
            if batch:
                commit(batch)
        finally:
            while in_flight:
                settle(in_flight.popleft())
        if rejected:
            raise EventRejectedError("; ".join(rejected), receipts)
        return receipts

    def submit_prepared(self, entries: list[Entry]) -> Future[list[Receipt]]:
        """Queue events a caller prepared (``prepare_or_reject``), e.g. in another process:
        committed together, in order, in one transaction."""
        for entry in entries:
            if entry.event_type in WRITER_OWNED_TYPES:
                raise EventRejectedError(
                    f"{entry.event_type} events are written by the ledger itself"
                )
        return self._enqueue("append", list(entries), internal=False)

    def checkpoint(self) -> Receipt:
        """Sign and append a checkpoint now (if anything is uncovered); returns the receipt of
        the latest checkpoint."""
        return self._submit("checkpoint", [], internal=True).result()[0]

    @property
    def tree_size(self) -> int:
        return self._tree.size

    @property
    def leads(self) -> bool:
        """Always: one process writes a data directory (the shared ledger's replicas differ)."""
        return True

    @property
    def verifier(self) -> note.Verifier:
        """The public half of the key that signs this ledger's checkpoints."""
        return self._signer.verifier

    @property
    def healthy(self) -> bool:
        """True while the writer thread accepts and commits appends."""
        return (
            self._failure is None
            and self._outage is None
            and not self._closed
            and self._thread.is_alive()
        )

    @property
    def write_outage(self) -> str | None:
        """Why commits fail now (and since when), or None while they succeed."""
        outage = self._outage
        if outage is None:
            return None
        return f"since {outage.since}: {outage.last_error}"

    def probe(self, timeout: float = 5.0) -> bool:
        """Try one commit now (it re-signs the tree head): whether the ledger can write."""
        try:
            self._submit("checkpoint", [], internal=True).result(timeout=timeout)
        except (LedgerError, TimeoutError):
            return False
        return self.healthy

    def _submit(
        self, command: _Command, events: list[Event], *, internal: bool = False
    ) -> Future[list[Receipt]]:
        if not internal:
            for event in events:
                if isinstance(event, _WRITER_OWNED):
                    raise EventRejectedError(
                        f"{event.event_type.value} events are written by the ledger itself"
                    )
        return self._enqueue(command, [prepare_or_reject(e) for e in events], internal=internal)

    def _enqueue(
        self, command: _Command, entries: list[Entry], *, internal: bool
    ) -> Future[list[Receipt]]:
        with self._submit_lock:
            if self._failure is not None:
                raise LedgerError(f"the ledger writer has stopped: {self._failure}")
            if self._closed or (command == "append" and not self._accepting and not internal):
                raise LedgerError("the ledger is closed")
            future: Future[list[Receipt]] = Future()
            # Running from the start: a caller that gives up (a cancelled request task, via
            # asyncio.wrap_future) cannot cancel it, so the writer can always settle it.
            future.set_running_or_notify_cancel()
            self._queue.put(_Request(command, entries, future))
            return future

    # -- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        batch: list[_Request] = []
        try:
            while True:
                timeout = max(
                    0.0,
                    self._last_checkpoint_time
                    + self.config.checkpoint_interval_seconds
                    - time.monotonic(),
                )
                batch = []
                pending = 0
                try:
                    batch.append(self._queue.get(timeout=timeout))
                    pending = len(batch[0].events)
                    while pending < self.config.max_batch:
                        batch.append(self._queue.get_nowait())
                        pending += len(batch[-1].events)
                except queue.Empty:
                    pass
                stop = any(request.command == "stop" for request in batch)
                self._commit(batch)
                if stop:
                    return
        except BaseException as exc:  # a bug: fail everything waiting rather than hang it
            error = LedgerError(f"the ledger writer has stopped: {exc}")
            with self._submit_lock:
                self._failure = exc
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                self._refuse_queued(error)
            raise

    def _refuse_queued(self, error: LedgerError) -> None:
        """Fail every queued request (under ``_submit_lock``, so none can slip in after)."""
        while True:
            try:
                self._queue.get_nowait().future.set_exception(error)
            except queue.Empty:
                return

    def _uncovered(self) -> int:
        """Events appended since the latest checkpoint, not counting the checkpoint itself."""
        return self._tree.size - self._last_checkpoint_seq - 1

    def _commit(self, batch: list[_Request], *, look_up_stored_ids: bool = False) -> None:
        """Append one batch in one transaction. Replayed event ids are rare, so the batch is
        first written optimistically; if the store reports a stored id it is redone with a
        lookup, and the replayed events are acknowledged as duplicates."""
        tree = self._tree
        saved = tree.copy()
        rows: list[LedgerRow] = []
        stored: dict[str, int] = {}
        if look_up_stored_ids:
            event_ids = [event.event_id for request in batch for event in request.events]
            stored = self._store.existing_event_ids(event_ids)
        written: dict[str, Receipt] = {}
        outcomes: list[tuple[_Request, list[Receipt], list[str]]] = []
        for request in batch:
            receipts: list[Receipt] = []
            rejected: list[str] = []
            for entry in request.events:
                event_id = entry.event_id
                if isinstance(entry, RejectedEvent):
                    rejected.append(entry.reason)
                    continue
                if event_id in written:
                    receipts.append(replace(written[event_id], duplicate=True))
                    continue
                if event_id in stored:
                    receipts.append(Receipt(stored[event_id], event_id, b"", duplicate=True))
                    continue
                row = entry.row(tree.size)
                tree.append(row.leaf_hash)
                rows.append(row)
                written[event_id] = receipt = Receipt(row.seq, event_id, row.leaf_hash)
                receipts.append(receipt)
            outcomes.append((request, receipts, rejected))

        forced = any(request.command != "append" for request in batch)
        due_by_count = self._uncovered() >= self.config.checkpoint_every_events
        due_by_time = (
            time.monotonic() - self._last_checkpoint_time >= self.config.checkpoint_interval_seconds
        )
        checkpoint_row = None
        if self._uncovered() > 0 and (forced or due_by_count or due_by_time):
            checkpoint_row = self._checkpoint_row()
            tree.append(checkpoint_row.leaf_hash)
            rows.append(checkpoint_row)
        elif due_by_time:
            self._last_checkpoint_time = time.monotonic()

        # The signed tree head of this commit, stored in the same transaction: every event is
        # covered by a signature before it is acknowledged, so at start anything beyond the
        # head was written by something other than this writer.
        head = checkpoints.sign_checkpoint(self.origin, tree.size, tree.root(), self._signer)
        try:
            self._store.append(rows, tree.completed, head.note)
        except DuplicateEventError:
            self._tree = saved
            if look_up_stored_ids:  # cannot happen twice; refuse rather than loop
                raise
            self._commit(batch, look_up_stored_ids=True)
            return
        except StoreError as exc:
            self._tree = saved
            error = LedgerWriteError(str(exc))
            refused = sum(len(request.events) for request in batch)
            self._outage = (self._outage or _Outage(utc_now())).refused(refused, str(exc))
            for request in batch:
                request.future.set_exception(error)
            return
        tree.completed.clear()
        if self._outage is not None:
            outage, self._outage = self._outage, None
            # Said in the ledger as soon as it can say anything again: when writes were refused.
            alert = prepare_event(outage.alert(utc_now()))
            self._queue.put(_Request("append", [alert], Future()))
        if checkpoint_row is not None:
            self._last_checkpoint_seq = checkpoint_row.seq
            self._last_checkpoint_time = time.monotonic()
        latest_checkpoint: list[Receipt] = []
        if forced:
            last = checkpoint_row or self._store.last_row_of_type(EventType.CHECKPOINT.value)
            if last is not None:
                latest_checkpoint = [Receipt(last.seq, last.event_id, last.leaf_hash)]
        for request, receipts, rejected in outcomes:
            if rejected:
                request.future.set_exception(EventRejectedError("; ".join(rejected), receipts))
            elif request.command == "append":
                request.future.set_result(receipts)
            elif latest_checkpoint:
                request.future.set_result(latest_checkpoint)
            else:
                request.future.set_exception(LedgerError("the ledger has no checkpoint yet"))

    def _checkpoint_row(self) -> LedgerRow:
        size = self._tree.size
        signed = checkpoints.sign_checkpoint(self.origin, size, self._tree.root(), self._signer)
        event = Checkpoint(
            origin=self.origin,
            tree_size=size,
            root_hash=signed.root_b64,
            note=signed.note,
            source="ledger",
        )
        return encode_row(event, size)

    # -- closing --------------------------------------------------------------------------------

    def close(self, reason: str = "shutdown") -> None:
        """Record ``gateway_stop``, sign a final checkpoint, and release the data directory."""
        if self._closed:
            return
        try:
            if self._failure is None:
                # Refuse new appends first, so nothing lands after gateway_stop.
                with self._submit_lock:
                    self._accepting = False
                stop = GatewayStop(reason=reason, source="ledger")
                self._submit("append", [stop], internal=True).result()
                self._submit("stop", [], internal=True).result()
        finally:
            with self._submit_lock:
                self._accepting = False
                self._closed = True
            if self._thread.is_alive():
                self._queue.put(_Request("stop", [], Future()))
            self._thread.join(timeout=30)
            with self._submit_lock:  # anything that raced the stop is refused, never dropped
                self._refuse_queued(LedgerError("the ledger closed before this event was written"))
            self._store.close()
            self._lock.release()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
