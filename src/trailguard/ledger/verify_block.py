"""Checking one aligned block of the ledger: every event's bytes against its stored leaf hash,
its own seq and the index columns, and the block's perfect subtrees against the cached ones.

The common case (an intact row) takes a fast path that builds no per-event dict: the signed
seq and index fields are decoded straight from the event's bytes into one small struct
(the rest of the JSON is validated, not materialised) and compared with the row's columns as
one tuple. Any difference, and every checkpoint and gateway_start, takes the slow path, which
checks the row field by field and reports exactly what differs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import msgspec
import orjson

from trailguard.events import EventType
from trailguard.ledger import merkle
from trailguard.ledger.findings import Finding, failure
from trailguard.ledger.stored_tree import CACHED_SUBTREE_LEVEL
from trailguard.store.base import LedgerRow, Store

BLOCK_LEVEL = 14
BLOCK_SIZE = 1 << BLOCK_LEVEL
HASH_SIZE = 32
_CHECKPOINT = EventType.CHECKPOINT.value
_GATEWAY_START = EventType.GATEWAY_START.value
_SLOW_TYPES = frozenset((_CHECKPOINT, _GATEWAY_START))
_NONE_YET: Any = object()

StoreOpener = Callable[[], Store]
"""Opens a fresh read-only connection to the same store (one per worker process)."""

# Index columns (LedgerRow positions 1..7) and the field of the signed event each must equal.
INDEXED_FIELDS = (
    "eventId",
    "timestamp",
    "eventType",
    "sessionId",
    "developerId",
    "projectId",
    "tool",
)
_signed_index_values = operator.itemgetter(*INDEXED_FIELDS[:-1])


class _Signed(msgspec.Struct, gc=False):
    """The signed fields the row's seq and index columns must equal, in LedgerRow's order."""

    seq: Any = None
    eventId: Any = None
    timestamp: Any = None
    eventType: Any = None
    sessionId: Any = None
    developerId: Any = None
    projectId: Any = None
    tool: Any = None


_decode_signed = msgspec.json.Decoder(_Signed).decode
_signed_tuple = msgspec.structs.astuple


def row_batches(store: Store, first_seq: int, end_seq: int) -> Iterator[Sequence[tuple[Any, ...]]]:
    """Rows first_seq <= seq < end_seq in seq order, in batches, in LedgerRow's column order."""
    native = getattr(store, "verification_rows", None)
    if native is not None:
        yield from native(first_seq, end_seq)
        return
    batch: list[LedgerRow] = []
    for row in store.rows(first_seq, end_seq):
        batch.append(row)
        if len(batch) == 4096:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Block:
    """What checking one block found; positions are leaf indexes (row ranks) in the ledger."""

    number: int
    count: int = 0
    findings: list[Finding] = field(default_factory=list)
    levels: list[bytes] = field(default_factory=list)
    """Every perfect subtree of the block, by level, concatenated: ``levels[k]`` holds the
    32-byte hashes of ``merkle.subtree_levels(leaves)[k]`` (one bytes object per level is cheap
    to send back from a worker process)."""
    checkpoints: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    """(position, seq, event) of every checkpoint event in the block."""
    starts: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """(position, event) of every gateway_start in the block."""
    first_event_type: str | None = None
    last_event_type: str | None = None

    def node(self, level: int, index: int) -> bytes:
        """The hash of the block's perfect subtree ``index`` at ``level``."""
        return self.levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE]


def _type_name(event_type: object) -> str | None:
    return event_type if isinstance(event_type, str) else None


def _bytes_or_none(value: object) -> bytes | None:
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None


def check_block(open_store: StoreOpener, number: int, first_seq: int, end_seq: int) -> Block:
    """Recompute the leaves and subtrees of one aligned block and check each event's bytes."""
    position = number * BLOCK_SIZE
    block = Block(number)
    store = open_store()
    try:
        leaves: list[bytes] = []
        add_leaf = leaves.append
        decode, as_tuple = _decode_signed, _signed_tuple
        offset = 0
        last_type: Any = _NONE_YET  # the signed type of the last event that took the fast path
        for batch in row_batches(store, first_seq, end_seq):
            for row in batch:
                body = row[9]
                try:
                    leaf = sha256(b"\x00" + body).digest()
                    signed = decode(body)
                    intact = (
                        leaf == row[8]
                        and as_tuple(signed) == row[:8]
                        and signed.eventType not in _SLOW_TYPES
                    )
                except (TypeError, ValueError, msgspec.DecodeError):
                    intact = False
                if intact:
                    add_leaf(leaf)
                    last_type = signed.eventType
                    if offset == 0:
                        block.first_event_type = _type_name(last_type)
                else:
                    if last_type is not _NONE_YET:
                        block.last_event_type = _type_name(last_type)
                    add_leaf(
                        _check_row_slowly(LedgerRow._make(row), position + offset, offset, block)
                    )
                    last_type = _NONE_YET
                offset += 1
        if last_type is not _NONE_YET:
            block.last_event_type = _type_name(last_type)
        block.count = offset
        levels = merkle.subtree_levels(leaves, BLOCK_LEVEL)
        block.levels = [b"".join(level) for level in levels]
        for level in range(CACHED_SUBTREE_LEVEL, BLOCK_LEVEL + 1):
            computed = levels[level]
            if not computed:
                break
            first = position >> level
            cached = store.tree_nodes(level, first, first + len(computed))
            for index, node in enumerate(computed, start=first):
                if cached.get(index) != node:
                    block.findings.append(cache_mismatch(level, index, node, cached.get(index)))
        return block
    finally:
        store.close()


def _check_row_slowly(row: LedgerRow, position: int, offset: int, block: Block) -> bytes:
    """Check one row field by field, saying what differs; returns its recomputed leaf hash."""
    where = f"seq {row.seq}"
    findings = block.findings
    body = _bytes_or_none(row.body)
    if body is None:  # a damaged or hand-edited row: still a leaf, and a failure
        findings.append(failure(where, f"stored event is {type(row.body).__name__}, not bytes"))
        body = repr(row.body).encode()
    leaf = merkle.hash_leaf(body)
    if leaf != _bytes_or_none(row.leaf_hash):
        findings.append(
            failure(
                where,
                "event bytes were changed after they were written",
                expected=f"leaf hash {row.leaf_hash!r}"
                if not isinstance(row.leaf_hash, bytes)
                else f"leaf hash {row.leaf_hash.hex()}",
                found=f"bytes hashing to {leaf.hex()}",
            )
        )
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        findings.append(failure(where, f"event bytes are not JSON: {exc}"))
        return leaf
    if not isinstance(document, dict):
        findings.append(failure(where, "event bytes are not a JSON object"))
        return leaf
    if document.get("seq") != row.seq:
        findings.append(
            failure(
                where,
                "the event's own seq disagrees with its position",
                expected=row.seq,
                found=document.get("seq"),
            )
        )
    # A query by session must not be steerable by editing an index column.
    try:
        signed_values = (*_signed_index_values(document), document.get("tool"))
    except KeyError:
        signed_values = tuple(document.get(key) for key in INDEXED_FIELDS)
    if row[1:8] != signed_values:
        for key, column_value, signed in zip(INDEXED_FIELDS, row[1:8], signed_values, strict=True):
            if column_value != signed:
                findings.append(
                    failure(
                        where,
                        f"index column for {key} disagrees with the signed event",
                        expected=repr(signed),
                        found=repr(column_value),
                    )
                )
    event_type = document.get("eventType")  # the signed type, not the column
    if offset == 0:
        block.first_event_type = event_type if isinstance(event_type, str) else None
    if event_type == _CHECKPOINT:
        block.checkpoints.append((position, row.seq, document))
    else:
        block.last_event_type = event_type if isinstance(event_type, str) else None
        if event_type == _GATEWAY_START:
            block.starts.append((position, document))
    return leaf


def cache_mismatch(level: int, index: int, node: bytes, cached: bytes | None) -> Finding:
    return failure(
        f"tree node level {level} index {index}",
        "the cached Merkle subtree (used for proofs) disagrees with the events",
        expected=node.hex(),
        found=None if cached is None else cached.hex(),
    )
