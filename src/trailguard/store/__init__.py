"""Where ledger entries live: the Store protocol and its embedded SQLite implementation."""

from trailguard.store.base import EventFilter, LedgerRow, Store, StoreError

__all__ = ["EventFilter", "LedgerRow", "Store", "StoreError"]
