"""The Store protocol: what the ledger needs from a database, whichever database it is.

A store keeps ledger rows (an event's canonical bytes plus the columns it is indexed by) and the
cached Merkle subtree hashes used for fast proofs. It never decides anything: positions, hashes
and signatures come from the ledger, and the verifier trusts none of the derived columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from trailguard.errors import FaultError
from trailguard.ledger import merkle

SIGNED_HEAD_KEY = "signed_head"
"""Meta key of the latest signed tree head: a C2SP checkpoint note the writer signs in the same
transaction as the events it covers, so no acknowledged event is ever unsigned."""


PRUNED_BEFORE_KEY = "pruned_before"
"""Meta key: events with a smaller ``seq`` were removed from this store after they were archived
and verified there (``trailguard archive prune``); the cached subtrees that cover them stay."""
PRUNE_RECORD_KEY = "prune_record"
"""Meta key: JSON saying where the pruned events are archived and under which checkpoint."""


class StoreError(FaultError):
    """The store could not do what was asked (disk full, read-only, corrupt, locked...)."""


class DuplicateEventError(StoreError):
    """An appended event id is already stored; nothing of the batch was written."""


class LedgerRow(NamedTuple):
    seq: int
    event_id: str
    timestamp: str
    event_type: str
    session_id: str | None
    developer_id: str | None
    project_id: str | None
    tool: str | None
    leaf_hash: bytes
    """A cache of SHA-256(0x00 || body); the verifier recomputes it and never trusts it."""
    body: bytes
    """The event's RFC 8785 canonical bytes, exactly as hashed."""


def row_of(body: bytes, document: dict[str, Any]) -> LedgerRow:
    """The ledger row of an event's canonical ``body`` (``document`` is it decoded): its index
    columns from the document, its leaf hash computed, never taken from anywhere."""
    return LedgerRow(
        document["seq"],
        document["eventId"],
        document["timestamp"],
        document["eventType"],
        document.get("sessionId"),
        document.get("developerId"),
        document.get("projectId"),
        document.get("tool"),
        merkle.hash_leaf(body),
        body,
    )


TreeNode = tuple[int, int, bytes]
"""(level, index, hash) of a perfect subtree: leaves [index * 2**level, (index+1) * 2**level)."""


@dataclass(frozen=True)
class EventFilter:
    """Retrieval filters; every field narrows the result, ``None`` means any."""

    session_id: str | None = None
    developer_id: str | None = None
    project_id: str | None = None
    event_type: str | None = None
    tool: str | None = None
    since: str | None = None
    """Inclusive lower bound on ``timestamp`` (RFC 3339 UTC, compared as text)."""
    until: str | None = None
    """Exclusive upper bound on ``timestamp``."""
    limit: int | None = None


class Store(Protocol):
    def tree_size(self) -> int:
        """How many rows the store holds (the next ``seq``)."""
        ...

    def append(
        self,
        rows: Sequence[LedgerRow],
        nodes: Sequence[TreeNode],
        signed_head: str | None = None,
    ) -> None:
        """Store ``rows`` (contiguous, starting at ``tree_size()``), ``nodes`` and the signed
        tree head covering them, atomically.

        Returns only after the transaction is durable; on failure nothing is stored. Raises
        DuplicateEventError when an event id is already stored.
        """
        ...

    def existing_event_ids(self, event_ids: Sequence[str]) -> dict[str, int]:
        """Which of ``event_ids`` are already stored, and at which ``seq``."""
        ...

    def rows(self, start: int = 0, end: int | None = None) -> Iterator[LedgerRow]:
        """Rows with start <= seq < end in ``seq`` order, streamed."""
        ...

    def row_by_event_id(self, event_id: str) -> LedgerRow | None: ...

    def leaf_hashes(self, begin: int, end: int) -> list[bytes]: ...

    def tree_node(self, level: int, index: int) -> bytes | None: ...

    def tree_nodes(self, level: int, begin: int, end: int) -> dict[int, bytes]:
        """Cached subtrees of ``level`` with begin <= index < end, by index."""
        ...

    def seqs(self) -> Iterator[int]:
        """Every stored ``seq`` in order (cheap: no event bytes are read)."""
        ...

    def last_row_of_type(self, event_type: str) -> LedgerRow | None: ...

    def session_ids(self, prefix: str = "", limit: int = 20) -> list[str]:
        """Distinct session ids starting with ``prefix``, in order."""
        ...

    def quarantine_from(self, seq: int, reason: str, at: str) -> list[LedgerRow]:
        """Move the events from ``seq`` on out of the tree (they were never signed)."""
        ...

    def quarantined(self) -> list[tuple[int, str, bytes, str, str]]: ...

    def query(self, event_filter: EventFilter) -> Iterator[LedgerRow]: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...
