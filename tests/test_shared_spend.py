"""Spend shared between processes (gateway/shared_spend.py): the catch-up reads the others'
cost events through one kept reader per thread, sees what committed since its last read, and
opens a fresh reader after a failure."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal as D
from pathlib import Path

import pytest

from trailguard.cost.budgets import BudgetConfig, BudgetTracker
from trailguard.events import Cost
from trailguard.gateway.costs import today
from trailguard.gateway.shared_spend import SharedSpend
from trailguard.ledger.writer import Ledger
from trailguard.store.backend import DataDirBackend
from trailguard.store.base import Store


class CountingOpener:
    """``open_reader`` of a real data directory, counting the readers it opens."""

    def __init__(self, data_dir: Path) -> None:
        self.backend = DataDirBackend(data_dir)
        self.opened: list[Store] = []

    def __call__(self) -> Store:
        store = self.backend.open_reader()
        self.opened.append(store)
        return store


def spend(session: str, usd: str) -> Cost:
    return Cost(session_id=session, developer_id="dev", model="m", cost_usd=float(usd))


@pytest.fixture
def ledger(tmp_path: Path):
    opened = Ledger.open(tmp_path / "ledger")
    yield opened
    opened.close()


def test_catch_ups_share_one_reader_per_thread_and_see_each_new_commit(ledger, tmp_path):
    opener = CountingOpener(tmp_path / "ledger")
    tracker = BudgetTracker(BudgetConfig(session_usd=D("1")))
    shared = SharedSpend(tracker, opener)
    ledger.append(spend("s", "0.4"))  # another process's spend
    assert shared.catch_up("s") == 1
    ledger.append(spend("s", "0.7"))  # committed after the first read
    assert shared.catch_up("s") == 1
    assert shared.catch_up("s") == 0  # nothing counted twice
    exhausted = tracker.exhausted("s", "dev", None, today())
    assert exhausted is not None
    assert exhausted.spent == D("1.1")
    assert len(opener.opened) == 1  # three catch-ups, one reader

    other = threading.Thread(target=shared.catch_up)
    other.start()
    other.join()
    assert len(opener.opened) == 2  # a reader is never shared between threads
    shared.close()
    with pytest.raises(sqlite3.ProgrammingError):
        opener.opened[0].tree_size()  # closed


def test_a_failed_catch_up_drops_its_reader_and_the_next_opens_a_fresh_one(ledger, tmp_path):
    opener = CountingOpener(tmp_path / "ledger")
    shared = SharedSpend(BudgetTracker(BudgetConfig(session_usd=D("1"))), opener)
    ledger.append(spend("s", "0.2"))
    assert shared.catch_up("s") == 1
    opener.opened[0].close()  # the connection breaks under it
    with pytest.raises(sqlite3.ProgrammingError):
        shared.catch_up("s")
    ledger.append(spend("s", "0.3"))
    assert shared.catch_up("s") == 1
    assert len(opener.opened) == 2
    shared.close()
