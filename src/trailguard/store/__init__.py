"""Where ledger entries live: the Store protocol and its embedded SQLite implementation."""

from trailguard.store.base import DuplicateEventError, EventFilter, LedgerRow, Store, StoreError

__all__ = ["DuplicateEventError", "EventFilter", "LedgerRow", "Store", "StoreError"]
