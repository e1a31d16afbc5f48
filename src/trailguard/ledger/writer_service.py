"""The ledger's writer process serving gateway workers: one ``Ledger`` (the only writer of the
data directory) behind a Unix socket. Every worker connection has a reader thread that hands
prepared events to the ledger's queue, so requests from all workers meet in the same group
commit, and a sender thread that answers each one only once its commit is durable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from trailguard.ledger.wire import (
    FrameReader,
    WireError,
    entry_from_wire,
    error_to_wire,
    frame,
    receipts_to_wire,
)
from trailguard.ledger.writer import Ledger, LedgerError, Receipt

log = logging.getLogger("trailguard.writer")


class _Connection:
    def __init__(self, service: WriterService, sock: socket.socket) -> None:
        self.service = service
        self.sock = sock
        self.replies: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.threads = (
            threading.Thread(target=self._read, name="trailguard-writer-in", daemon=True),
            threading.Thread(target=self._send, name="trailguard-writer-out", daemon=True),
        )

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        # Shut down before the sender may close the socket: a close while the reader thread
        # sits in recv() sends no FIN, and the worker would never hear that the writer left.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.replies.put(None)

    def _answer(self, request_id: int, future: Future[list[Receipt]]) -> None:
        ledger = self.service.ledger
        try:
            message: dict[str, Any] = {"ok": receipts_to_wire(future.result())}
        except Exception as exc:  # the kind travels; the worker raises the same kind
            message = error_to_wire(exc)
        message |= {"id": request_id, "size": ledger.tree_size, "outage": ledger.write_outage}
        self.replies.put(frame(message))

    def _handle(self, message: dict[str, Any]) -> None:
        ledger = self.service.ledger
        request_id = int(message.get("id", 0))
        op = message.get("op")
        try:
            if op == "append":
                entries = [entry_from_wire(item) for item in message.get("entries", [])]
                future = ledger.submit_prepared(entries)
            elif op == "checkpoint":
                future = Future()
                future.set_result([ledger.checkpoint()])
            elif op == "size":  # answered with the current size, like every answer
                future = Future()
                future.set_result([])
            elif op == "probe":
                if not ledger.probe():
                    raise LedgerError(ledger.write_outage or "the ledger cannot write")
                future = Future()
                future.set_result([])
            else:
                raise WireError(f"unknown operation {op!r}")
        except LedgerError as exc:
            failed: Future[list[Receipt]] = Future()
            failed.set_exception(exc)
            self._answer(request_id, failed)
            return
        future.add_done_callback(lambda done: self._answer(request_id, done))

    def _read(self) -> None:
        reader = FrameReader(self.sock)
        try:
            hello = {
                "id": 0,
                "origin": self.service.ledger.origin,
                "verifier": self.service.ledger.verifier.to_string(),
                "size": self.service.ledger.tree_size,
                "pid": os.getpid(),
            }
            self.replies.put(frame(hello))
            while (message := reader.read()) is not None:
                self._handle(message)
        except (OSError, WireError) as exc:
            log.warning("trailguard writer: a worker connection failed: %s", exc)
        finally:
            self.close()
            self.service.forget(self)

    def _send(self) -> None:
        try:
            while True:
                reply = self.replies.get()
                if reply is None:
                    return
                pending = [reply]
                # Every answer of one group commit goes out in one write.
                with contextlib.suppress(queue.Empty):
                    while len(pending) < 256:
                        more = self.replies.get_nowait()
                        if more is None:
                            self.sock.sendall(b"".join(pending))
                            return
                        pending.append(more)
                self.sock.sendall(b"".join(pending))
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                self.sock.close()


class WriterService:
    """Serves ``ledger`` on a Unix socket at ``path`` (in a directory only this user reads)."""

    def __init__(self, ledger: Ledger, path: Path) -> None:
        self.ledger = ledger
        self.path = path
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a writer that died: its ledger lock is free again
        self._listener.bind(str(path))
        os.chmod(path, 0o600)
        self._listener.listen(256)
        self._thread = threading.Thread(target=self._accept, name="trailguard-writer-accept")
        self._stopping = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            connection = _Connection(self, sock)
            with self._lock:
                self._connections.add(connection)
            connection.start()

    def forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def stop(self) -> None:
        """Stop taking requests (workers then fail closed) and close every connection."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
