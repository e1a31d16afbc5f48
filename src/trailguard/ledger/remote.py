"""A gateway worker's view of the ledger (``EventLog``) when the writer is another process
(``serve --workers N``): events are prepared here, on this worker's core, sent over the
writer's Unix socket, and acknowledged only when the writer answers that they are durable.

Fail-closed: while the writer is unreachable every append raises LedgerWriteError (its
clients get 503, tool calls are denied), and the connection is retried in the background, so
the worker recovers by itself when a writer runs again.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from trailguard.events import Event
from trailguard.ledger.note import Verifier
from trailguard.ledger.wire import (
    FrameReader,
    WireError,
    entry_to_wire,
    error_from_wire,
    frame,
    receipts_from_wire,
)
from trailguard.ledger.writer import (
    WRITER_OWNED_TYPES,
    EventRejectedError,
    LedgerError,
    LedgerWriteError,
    Receipt,
    prepare_or_reject,
)
from trailguard.store.backend import DataDirBackend

log = logging.getLogger("trailguard.worker")

RECONNECT_SECONDS = 0.1


class _Link:
    """One connection to the writer and the requests waiting on it."""

    def __init__(self, sock: socket.socket, hello: dict[str, Any]) -> None:
        self.sock = sock
        self.hello = hello
        self.pending: dict[int, Future[Any]] = {}
        self.lock = threading.Lock()
        self.open = True


class RemoteLedger:
    """The writer process's ledger, seen from a worker. ``leads``: this worker runs the
    once-only jobs (recording kills and timeouts, appending queued CLI events)."""

    def __init__(self, data_dir: Path, socket_path: Path, *, leads: bool) -> None:
        self.backend = DataDirBackend(data_dir)
        self.socket_path = socket_path
        self._leads = leads
        self._ids = itertools.count(1)
        self._link: _Link | None = None
        self._link_lock = threading.Lock()
        self._closed = threading.Event()
        self._origin = ""
        self._verifier: Verifier | None = None
        self._size = 0
        self._outage: str | None = None
        self._connect()
        if self._link is None:
            raise LedgerError(f"cannot reach the ledger writer at {socket_path}")
        self._retry = threading.Thread(target=self._reconnect, name="trailguard-link", daemon=True)
        self._retry.start()

    # -- the connection -------------------------------------------------------------------------

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path))
            reader = FrameReader(sock)
            hello = reader.read()
        except (OSError, WireError):
            sock.close()
            return
        if hello is None:
            sock.close()
            return
        link = _Link(sock, hello)
        self._origin = str(hello["origin"])
        self._verifier = Verifier.from_string(str(hello["verifier"]))
        self._size = int(hello["size"])
        self._outage = None
        with self._link_lock:
            self._link = link
        threading.Thread(
            target=self._receive, args=(link, reader), name="trailguard-link-in", daemon=True
        ).start()

    def _reconnect(self) -> None:
        while not self._closed.wait(RECONNECT_SECONDS):
            if self._link is None:
                self._connect()
                if self._link is not None:
                    log.warning("trailguard worker: reconnected to the ledger writer")

    def _receive(self, link: _Link, reader: FrameReader) -> None:
        try:
            while (message := reader.read()) is not None:
                self._size = int(message.get("size", self._size))
                self._outage = message.get("outage")
                with link.lock:
                    future = link.pending.pop(int(message.get("id", 0)), None)
                if future is None:
                    continue
                if "error" in message:
                    future.set_exception(error_from_wire(message))
                else:
                    future.set_result(receipts_from_wire(message.get("ok", [])))
        except (OSError, WireError) as exc:
            log.error("trailguard worker: the connection to the ledger writer failed: %s", exc)
        finally:
            self._drop(link)

    def _drop(self, link: _Link) -> None:
        with self._link_lock:
            if self._link is link:
                self._link = None
        with link.lock:
            link.open = False
            pending, link.pending = link.pending, {}
        with contextlib.suppress(OSError):
            link.sock.close()
        error = LedgerWriteError(
            "the ledger writer process went away before answering: the event may not be "
            "stored, so it is not acknowledged (retry with the same event id)"
        )
        for future in pending.values():
            future.set_exception(error)

    def _request(self, message: dict[str, Any]) -> Future[Any]:
        link = self._link
        if link is None or self._closed.is_set():
            raise LedgerWriteError(
                f"the ledger writer is unreachable ({self.socket_path}): nothing can be "
                "recorded, so nothing is acknowledged"
            )
        request_id = next(self._ids)
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        data = frame(message | {"id": request_id})
        with link.lock:
            if not link.open:
                raise LedgerWriteError("the ledger writer went away: nothing was recorded")
            link.pending[request_id] = future
            try:
                link.sock.sendall(data)
            except OSError as exc:
                link.pending.pop(request_id, None)
                raise LedgerWriteError(f"cannot reach the ledger writer: {exc}") from None
        return future

    # -- EventLog -------------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def verifier(self) -> Verifier:
        assert self._verifier is not None  # set by the first connection, before any use
        return self._verifier

    def submit(self, event: Event) -> Future[list[Receipt]]:
        return self.submit_many([event])

    def submit_many(self, events: list[Event]) -> Future[list[Receipt]]:
        for event in events:
            if event.event_type.value in WRITER_OWNED_TYPES:
                raise EventRejectedError(
                    f"{event.event_type.value} events are written by the ledger itself"
                )
        entries = [entry_to_wire(prepare_or_reject(event)) for event in events]
        future: Future[list[Receipt]] = self._request({"op": "append", "entries": entries})
        return future

    def append(self, event: Event) -> Receipt:
        return self.submit_many([event]).result()[0]

    def append_many(self, events: Iterable[Event], *, chunk: int = 5000) -> list[Receipt]:
        receipts: list[Receipt] = []
        batch: list[Event] = []
        for event in events:
            batch.append(event)
            if len(batch) >= chunk:
                receipts.extend(self.submit_many(batch).result())
                batch = []
        if batch:
            receipts.extend(self.submit_many(batch).result())
        return receipts

    def checkpoint(self) -> Receipt:
        receipts: list[Receipt] = self._request({"op": "checkpoint"}).result()
        return receipts[0]

    @property
    def tree_size(self) -> int:
        """The writer's current size (asked; the last one heard while it is unreachable)."""
        with contextlib.suppress(LedgerError, TimeoutError):
            self._request({"op": "size"}).result(timeout=2.0)
        return self._size

    @property
    def healthy(self) -> bool:
        return self._link is not None and self._outage is None and not self._closed.is_set()

    @property
    def write_outage(self) -> str | None:
        if self._link is None:
            return f"the ledger writer is unreachable at {self.socket_path}"
        return self._outage

    @property
    def leads(self) -> bool:
        return self._leads

    def probe(self, timeout: float = 5.0) -> bool:
        try:
            self._request({"op": "probe"}).result(timeout=timeout)
        except (LedgerError, TimeoutError):
            return False
        return self.healthy

    def close(self, reason: str = "shutdown") -> None:
        """Disconnect (the writer process, not a worker, stops the ledger); ``reason`` is
        accepted for the EventLog protocol."""
        self._closed.set()
        link = self._link
        if link is not None:
            with contextlib.suppress(OSError):
                link.sock.shutdown(socket.SHUT_RDWR)
            self._drop(link)
