"""The two ledger backends behind one fixture, so a store test runs on both and proves the
same behaviour: SQLite in a data directory, and PostgreSQL through the shared ledger (a
replica and its sequencer, connected as the gateway role)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pg import Database, fresh_database
from trailguard.ledger.keys import load_verifier
from trailguard.ledger.verify import VerificationReport, verify_ledger
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.base import Store
from trailguard.store.sqlite import SQLiteStore


@dataclass
class LedgerBackend:
    name: str
    tmp_path: Path
    database: Database | None = None
    opened: list[Any] = field(default_factory=list)

    @property
    def key_file(self) -> Path:
        return self.tmp_path / "shared-signing.key"

    def open(self, **config: Any) -> Any:
        """A ledger writer (the SQLite Ledger, or a SharedLedger replica with its sequencer)."""
        settings: dict[str, Any] = {
            "checkpoint_every_events": 50,
            "checkpoint_interval_seconds": 3600.0,
        }
        settings.update(config)
        if self.database is None:
            ledger: Any = Ledger.open(self.tmp_path / "ledger", config=LedgerConfig(**settings))
        else:
            from trailguard.ledger.shared import SharedLedger

            ledger = SharedLedger.open(
                self.database.gateway_url, config=LedgerConfig(**settings), key_file=self.key_file
            )
        self.opened.append(ledger)
        return ledger

    @property
    def opener(self) -> Callable[[], Store]:
        """Opens a read-only store (picklable, for the verifier's worker processes)."""
        if self.database is None:
            return functools.partial(
                SQLiteStore.in_data_dir, self.tmp_path / "ledger", read_only=True
            )
        from trailguard.store.postgres import PostgresStore

        return functools.partial(PostgresStore, self.database.gateway_url, read_only=True)

    def reader(self) -> Store:
        return self.opener()

    def verify(self, **options: Any) -> VerificationReport:
        if self.database is None:
            verifier = load_verifier(str(self.tmp_path / "ledger" / "signing.pub"))
        else:
            from trailguard.ledger.note import Signer

            verifier = Signer.from_string(self.key_file.read_text()).verifier
        store = self.reader()
        try:
            return verify_ledger(store, self.opener, verifier, workers=1, **options)
        finally:
            store.close()

    def close_all(self) -> None:
        for ledger in self.opened:
            with contextlib.suppress(Exception):
                ledger.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerBackend]:
    with contextlib.ExitStack() as stack:
        database = None
        if request.param == "postgres":
            database = stack.enter_context(fresh_database())
            database.install()
        chosen = LedgerBackend(request.param, tmp_path, database)
        stack.callback(chosen.close_all)
        yield chosen
