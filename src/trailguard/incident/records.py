"""The events of an incident's scope, merged in time order across sessions, and each checked
against the latest signed tree head: its exact stored bytes must be the leaf at its ``seq`` of
the tree that checkpoint signs (RFC 9162 §2.1.3), and its index columns must say what its
signed bytes say.

That proves every event shown is in the signed log unchanged. It does not prove that no event
of the scope was left out (`trailguard verify` checks the whole ledger for that).
"""

from __future__ import annotations

import bisect
import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from trailguard.errors import InvalidInputError
from trailguard.events import EventType
from trailguard.ledger import merkle
from trailguard.ledger.checkpoint import SignedCheckpoint
from trailguard.ledger.note import Verifier
from trailguard.ledger.proof import ProofBundleError, latest_tree_head
from trailguard.ledger.stored_tree import CACHED_SUBTREE_LEVEL, StoredTree
from trailguard.store.base import EventFilter, LedgerRow, Store


class ScopeError(InvalidInputError):
    """A scope that selects nothing sensible; the message says what to give."""


@dataclass(frozen=True)
class Scope:
    """Which events an incident export covers: the sessions named, or everything of a
    developer or project; each given filter narrows, times are the ledger's UTC form."""

    sessions: tuple[str, ...] = ()
    developer: str | None = None
    project: str | None = None
    since: str | None = None
    """Inclusive lower bound on ``timestamp``."""
    until: str | None = None
    """Exclusive upper bound on ``timestamp``."""

    def __post_init__(self) -> None:
        if not self.sessions and self.developer is None and self.project is None:
            raise ScopeError(
                "say what the export covers: --session S (repeatable), --developer D or --project P"
            )
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ScopeError(f"--since {self.since} is not before --until {self.until}")
        object.__setattr__(self, "sessions", tuple(dict.fromkeys(self.sessions)))

    def filters(self) -> list[EventFilter]:
        common = EventFilter(
            developer_id=self.developer,
            project_id=self.project,
            since=self.since,
            until=self.until,
        )
        if self.sessions:
            return [replace(common, session_id=session) for session in self.sessions]
        return [common]

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions": list(self.sessions),
            "developer": self.developer,
            "project": self.project,
            "since": self.since,
            "until": self.until,
        }

    def describe(self) -> str:
        parts = []
        if self.sessions:
            parts.append(
                ("session " if len(self.sessions) == 1 else "sessions ") + ", ".join(self.sessions)
            )
        if self.developer is not None:
            parts.append(f"developer {self.developer}")
        if self.project is not None:
            parts.append(f"project {self.project}")
        if self.since or self.until:
            parts.append(f"from {self.since or 'the start'} until {self.until or 'now'}")
        return "; ".join(parts)


def _time_order(row: LedgerRow) -> tuple[str, int]:
    return row.timestamp, row.seq


def collect(store: Store, scope: Scope) -> list[LedgerRow]:
    """Every event of ``scope``, in time order (``timestamp``, then ``seq``) across sessions:
    one indexed query per session, merged."""
    streams = [store.query(event_filter) for event_filter in scope.filters()]
    return list(heapq.merge(*streams, key=_time_order))


_CONTEXT_TYPES = (EventType.GATEWAY_START.value, EventType.GATEWAY_STOP.value)


def collect_context(store: Store, first: str, last: str) -> list[LedgerRow]:
    """Events that explain the scope without belonging to it: the ``policy_change`` in force at
    ``first`` and every later one up to ``last``, and the gateway's starts and stops between
    (an outage shows as a stop and a start)."""
    policy: list[LedgerRow] = []
    for row in store.query(EventFilter(event_type=EventType.POLICY_CHANGE.value)):
        if row.timestamp > last:
            break
        if row.timestamp < first:
            policy = [row]  # only the one in force at the start is kept
        else:
            policy.append(row)
    runs = [
        row
        for event_type in _CONTEXT_TYPES
        for row in store.query(EventFilter(event_type=event_type, since=first))
        if row.timestamp <= last
    ]
    return sorted([*policy, *runs], key=_time_order)


# -- verification ---------------------------------------------------------------------------------


LeafSource = Callable[[int, int], list[bytes]]
"""``(begin, end) -> leaf hashes``: the store's own, or with pruned ones from the archive."""


class ProofTree(StoredTree):
    """The stored tree for many proofs in a row: range hashes above a cached block are
    memoised, and each block of 2**8 leaves is read and hashed once (a few kept), so proofs of
    neighbouring events share their reads. ``leaves`` reads leaf hashes (default: the store's;
    trailguard.archive.evidence.TileLeaves adds the pruned ones from the archive)."""

    _BLOCKS_KEPT = 64

    def __init__(self, store: Store, leaves: LeafSource | None = None) -> None:
        super().__init__(store)
        self._leaves = leaves or store.leaf_hashes
        self._memo: dict[tuple[int, int], bytes] = {}
        self._blocks: OrderedDict[int, list[list[bytes]]] = OrderedDict()

    def range_hash(self, begin: int, end: int) -> bytes:
        size = end - begin
        if size <= 0:
            return merkle.EMPTY_ROOT
        level = size.bit_length() - 1
        perfect = size == 1 << level and begin % size == 0
        if perfect and level < CACHED_SUBTREE_LEVEL:
            try:
                return self._block(begin >> CACHED_SUBTREE_LEVEL)[level][
                    (begin % (1 << CACHED_SUBTREE_LEVEL)) >> level
                ]
            except IndexError:
                raise LookupError(f"ledger is missing leaves in [{begin}, {end})") from None
        key = (begin, end)
        found = self._memo.get(key)
        if found is None:
            cached = self._store.tree_node(level, begin >> level) if perfect else None
            if cached is None:
                k = 1 << ((size - 1).bit_length() - 1)
                cached = merkle.hash_children(
                    self.range_hash(begin, begin + k), self.range_hash(begin + k, end)
                )
            found = self._memo[key] = cached
        return found

    def root_with(self, leaves: dict[int, bytes], size: int) -> bytes:
        """MTH of the first ``size`` leaves where the leaves in ``leaves`` (seq -> leaf hash,
        computed by the caller from the events' bytes) replace the stored ones: every range
        holding one of them is rehashed from its children, every other range is the stored
        tree's (RFC 6962 §2.1). Equal to the signed root only if each given leaf is the one
        signed at its position."""
        positions = sorted(leaves)

        def holds(begin: int, end: int) -> bool:
            index = bisect.bisect_left(positions, begin)
            return index < len(positions) and positions[index] < end

        def node(begin: int, end: int) -> bytes:
            if not holds(begin, end):
                return self.range_hash(begin, end)
            if end - begin == 1:
                return leaves[begin]
            k = 1 << ((end - begin - 1).bit_length() - 1)
            return merkle.hash_children(node(begin, begin + k), node(begin + k, end))

        return node(0, size)

    def _block(self, number: int) -> list[list[bytes]]:
        levels = self._blocks.get(number)
        if levels is None:
            first = number << CACHED_SUBTREE_LEVEL
            leaves = self._leaves(first, first + (1 << CACHED_SUBTREE_LEVEL))
            levels = merkle.subtree_levels(leaves, CACHED_SUBTREE_LEVEL)
            self._blocks[number] = levels
            if len(self._blocks) > self._BLOCKS_KEPT:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(number)
        return levels


@dataclass(frozen=True)
class Problem:
    """One event (or the checkpoint) that did not verify, and why."""

    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


@dataclass
class Verification:
    """What checking the scope's events against the latest signed tree head found."""

    key: Verifier
    key_source: str
    key_pinned: bool
    checkpoint: SignedCheckpoint | None = None
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    paths: dict[int, list[bytes]] = field(default_factory=dict)
    """seq -> inclusion path against ``checkpoint`` (kept for evidence bundles)."""
    archive: str | None = None
    archived: int = 0
    """Events read from ``archive`` (pruned from the hot store), each segment checked against
    its own signed checkpoint under the same key as it was read."""
    archived_proven: bool = False
    """Whether the archived events are among those proven against ``checkpoint`` (an evidence
    bundle's are; a report's are checked segment by segment only)."""

    @property
    def intact(self) -> bool:
        return self.checkpoint is not None and not self.problems

    @property
    def verified(self) -> int:
        failed = {p.where for p in self.problems if p.where.startswith("seq ")}
        return self.checked - len(failed) if self.checkpoint is not None else 0

    def summary(self) -> str:
        key = f"{self.key.name}+{self.key.key_id.hex()}, {self.key_source}"
        if self.checkpoint is None:
            return f"not verified: {self.problems[0].problem if self.problems else '?'}"
        result = "VERIFIED" if self.intact else "FAILED"
        archived = (
            f"; {self.archived} more from the archive {self.archive}, each segment checked "
            "against its signed checkpoint"
            if self.archive
            else ""
        )
        if self.archive and self.archived_proven:
            archived = (
                f"; {self.archived} of them read from the archive {self.archive} (pruned from "
                "the hot store), each segment checked against its signed checkpoint"
            )
        return (
            f"{result}: {self.verified} of {self.checked} events are entries of the log "
            f"{self.checkpoint.origin} at tree size {self.checkpoint.tree_size} (root "
            f"{self.checkpoint.root_b64}), signed by key {key}{archived}"
        )

    def to_json(self) -> dict[str, Any]:
        signed = self.checkpoint
        return {
            "result": "verified" if self.intact else "failed",
            "summary": self.summary(),
            "checked": self.checked,
            "verified": self.verified,
            "checkpoint": None
            if signed is None
            else {
                "origin": signed.origin,
                "treeSize": signed.tree_size,
                "rootHash": signed.root_b64,
                "note": signed.note,
            },
            "key": self.key.to_string(),
            "keySource": self.key_source,
            "keyPinned": self.key_pinned,
            "problems": [{"where": p.where, "problem": p.problem} for p in self.problems],
            "archive": self.archive,
            "archivedEvents": self.archived,
            "notChecked": "that no event of the scope was left out: `trailguard verify` checks "
            "the whole ledger",
        }


_INDEXED = (
    ("event_id", "eventId"),
    ("timestamp", "timestamp"),
    ("event_type", "eventType"),
    ("session_id", "sessionId"),
    ("developer_id", "developerId"),
    ("project_id", "projectId"),
    ("tool", "tool"),
)


def verify_rows(
    store: Store,
    rows: Sequence[LedgerRow],
    verifier: Verifier,
    *,
    key_source: str,
    key_pinned: bool,
    keep_paths: bool = False,
    documents: dict[int, Any] | None = None,
    leaf_source: LeafSource | None = None,
) -> Verification:
    """Check each row's stored bytes against the latest signed tree head (its signature and
    root are checked first). Every problem is named by seq.

    All rows are proven at once: the root is recomputed from their own bytes and the stored
    tree's hashes of the ranges between them (an RFC 6962 multi-leaf proof), which costs one
    hash per event plus a path per cluster of neighbouring events. Only when that root differs
    is each row proven on its own, to name the ones that fail. ``documents`` (seq -> the
    decoded bytes) spares decoding them again; ``leaf_source`` reads the leaf hashes the proofs
    need (see :class:`ProofTree`)."""
    result = Verification(verifier, key_source, key_pinned)
    try:
        head = latest_tree_head(store, verifier)
    except ProofBundleError as exc:
        # The signature may still hold while the stored tree no longer matches it: then each
        # event is still checked against the signed root, and the ones changed are named.
        try:
            head = latest_tree_head(store, verifier, check_stored_root=False)
        except ProofBundleError:
            result.problems.append(Problem("checkpoint", str(exc)))
            result.checked = len(rows)
            return result
        result.problems.append(
            Problem(
                "checkpoint",
                f"the stored tree no longer matches the signed tree head of size "
                f"{head.tree_size}: an event was changed, removed, inserted or reordered (run "
                "`trailguard verify` to find every one); no event can be proven against it",
            )
        )
    result.checkpoint = head
    ordered = sorted(rows, key=lambda r: r.seq)
    result.checked = len(ordered)
    tree = ProofTree(store, leaf_source)
    leaves: dict[int, bytes] = {}
    for row in ordered:
        leaf = merkle.hash_leaf(bytes(row.body))
        document = documents.get(row.seq) if documents is not None else None
        for problem in _check_row(row, leaf, head, document):
            result.problems.append(Problem(f"seq {row.seq}", problem))
        if row.seq < head.tree_size:
            leaves[row.seq] = leaf
    try:
        proven = bool(leaves) and tree.root_with(leaves, head.tree_size) == head.root_hash
    except LookupError:
        proven = False
    failed = {p.where for p in result.problems}
    for seq, leaf in leaves.items():
        # A kept path is checked even when the joint root matched: the bundle carries the
        # path, not the joint proof, and a wrong neighbour's hash would only show in it.
        if (proven and not keep_paths) or f"seq {seq}" in failed:
            continue
        try:
            path = tree.inclusion_proof(seq, head.tree_size)
            merkle.verify_inclusion(leaf, seq, head.tree_size, path, head.root_hash)
        except (merkle.InclusionProofError, LookupError) as exc:
            result.problems.append(
                Problem(
                    f"seq {seq}",
                    "its inclusion proof does not lead to the signed root: this event, or "
                    f"another one of the ledger, was changed after it was signed ({exc})",
                )
            )
            continue
        if keep_paths:
            result.paths[seq] = path
    return result


def _check_row(
    row: LedgerRow, leaf: bytes, head: SignedCheckpoint, document: Any = None
) -> Iterator[str]:
    """What can be checked of one row by itself: its bytes against the leaf stored with them,
    its place under the signed head, its own seq and its index columns."""
    if leaf != bytes(row.leaf_hash):
        yield (
            "its bytes were changed after they were written: they no longer hash to the leaf "
            f"stored with them (expected {bytes(row.leaf_hash).hex()}, found {leaf.hex()})"
        )
        return
    if row.seq >= head.tree_size:
        yield (
            f"stored after the latest signed tree head (size {head.tree_size}): no signature "
            "covers it; run `trailguard verify`"
        )
        return
    if document is None:
        try:
            document = orjson.loads(bytes(row.body))
        except orjson.JSONDecodeError:
            yield "its signed bytes are not JSON"
            return
    if not isinstance(document, dict) or document.get("seq") != row.seq:
        yield "its signed bytes do not say they are this seq"
        return
    for column, key in _INDEXED:
        if getattr(row, column) != document.get(key):
            yield (
                f"the index column for {key} says {getattr(row, column)!r} but the signed "
                f"event says {document.get(key)!r}: the index was edited to steer queries"
            )
