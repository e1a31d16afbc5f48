"""What the gateway needs from a ledger, whichever kind: the SQLite ``Ledger`` of one data
directory (trailguard.ledger.writer) or a replica of the shared ledger on PostgreSQL
(trailguard.ledger.shared)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from typing import Protocol

from trailguard.events import Event
from trailguard.ledger.note import Verifier
from trailguard.ledger.writer import Receipt
from trailguard.store.backend import Backend


class EventLog(Protocol):
    @property
    def origin(self) -> str: ...

    @property
    def backend(self) -> Backend:
        """Where its readers, gateway state and redaction key come from."""
        ...

    def submit(self, event: Event) -> Future[list[Receipt]]: ...

    def submit_many(self, events: list[Event]) -> Future[list[Receipt]]:
        """Queue ``events``; the future resolves once they are durable (and signed)."""
        ...

    def append(self, event: Event) -> Receipt: ...

    def append_many(self, events: Iterable[Event], *, chunk: int = 5000) -> list[Receipt]: ...

    def checkpoint(self) -> Receipt: ...

    @property
    def tree_size(self) -> int: ...

    @property
    def verifier(self) -> Verifier: ...

    @property
    def healthy(self) -> bool: ...

    @property
    def write_outage(self) -> str | None: ...

    @property
    def leads(self) -> bool:
        """Whether this process runs the once-only jobs (recording kills and timeouts,
        appending queued CLI events): always for SQLite, the sequencer for a shared ledger."""
        ...

    def probe(self, timeout: float = 5.0) -> bool: ...

    def close(self, reason: str = "shutdown") -> None: ...
