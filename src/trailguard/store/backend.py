"""Where a ledger and its gateway state live: a data directory (SQLite) or a PostgreSQL
database shared by several gateway replicas. The gateway and the CLI open readers and the state
through this, never a concrete store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from trailguard.store.base import Store
    from trailguard.store.state import GatewayStateStore


class Backend(Protocol):
    @property
    def description(self) -> str:
        """What to print: the data directory, or the database without its password."""
        ...

    @property
    def location_option(self) -> str:
        """How commands are pointed at it: ``--data-dir D`` or ``--store URL``."""
        ...

    def open_reader(self) -> Store:
        """A read-only store connection (one per thread)."""
        ...

    def open_state(self) -> GatewayStateStore: ...

    def redaction_key(self) -> bytes: ...

    def writer_running(self) -> bool:
        """Whether a writer (the gateway, or the shared ledger's sequencer) runs now."""
        ...


@dataclass(frozen=True)
class DataDirBackend:
    data_dir: Path

    @property
    def description(self) -> str:
        return str(self.data_dir)

    @property
    def location_option(self) -> str:
        return f"--data-dir {self.data_dir}"

    def open_reader(self) -> Store:
        from trailguard.store.sqlite import SQLiteStore

        return SQLiteStore.in_data_dir(self.data_dir, read_only=True)

    def open_state(self) -> GatewayStateStore:
        from trailguard.store.gateway_state import GatewayState

        return GatewayState(self.data_dir)

    def redaction_key(self) -> bytes:
        from trailguard.ledger.keys import redaction_key

        return redaction_key(self.data_dir)

    def writer_running(self) -> bool:
        from trailguard.ledger.writer import WriterLock

        return WriterLock.is_held(self.data_dir)


@dataclass(frozen=True)
class PostgresBackend:
    url: str
    shared_redaction_key: bytes | None = None
    """Derived from the shared signing key (replicas have it; the CLI does not need it)."""

    @property
    def description(self) -> str:
        from trailguard.store.postgres.connect import describe

        return describe(self.url)

    @property
    def location_option(self) -> str:
        return f"--store {self.description}"

    def open_reader(self) -> Store:
        from trailguard.store.postgres import PostgresStore

        return PostgresStore(self.url, read_only=True)

    def open_state(self) -> GatewayStateStore:
        from trailguard.store.postgres.state import PostgresGatewayState

        return PostgresGatewayState(self.url)

    def redaction_key(self) -> bytes:
        if self.shared_redaction_key is None:
            from trailguard.store.base import StoreError

            raise StoreError("the redaction key of a shared ledger comes from its signing key")
        return self.shared_redaction_key

    def writer_running(self) -> bool:
        from trailguard.store.postgres import PostgresStore

        store = PostgresStore(self.url, read_only=True)
        try:
            return store.sequencer_running()
        finally:
            store.close()
