"""The offline verifier: everything an auditor checks, from the stored bytes alone.

It trusts nothing the store derived: index columns, cached hashes and event types are checked
against the stored bytes, never used in their place. It recomputes every leaf hash, rebuilds the
RFC 6962 tree, checks each checkpoint event's Ed25519 signature, its root against the rebuilt tree
and its own fields against what it signed, checks consecutive checkpoints with RFC 9162
consistency proofs built from the rebuilt tree, checks that ``seq`` is contiguous, and that every
event is covered by a signature. Given a trusted checkpoint kept outside the host it also detects
a truncated tail, a rollback or a fork.

The ledger is cut into aligned blocks of 2**14 events. Each block is a perfect subtree, so blocks
are checked independently (in parallel on several cores) and joined with a compact range.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from trailguard.events import EventType
from trailguard.ledger import checkpoint as checkpoints
from trailguard.ledger import merkle
from trailguard.ledger.findings import Finding
from trailguard.ledger.findings import failure as _failure
from trailguard.ledger.note import Verifier
from trailguard.ledger.verify_block import (
    BLOCK_LEVEL,
    BLOCK_SIZE,
    Block,
    StoreOpener,
    cache_mismatch,
    check_block,
)
from trailguard.store.base import (
    PRUNE_RECORD_KEY,
    PRUNED_BEFORE_KEY,
    SIGNED_HEAD_KEY,
    Store,
    StoreError,
)

Progress = Callable[[int, int], None]
"""Called with (events checked, events in the ledger) as verification advances."""

_CHECKPOINT = EventType.CHECKPOINT.value
_GATEWAY_START = EventType.GATEWAY_START.value
__all__ = [
    "BLOCK_LEVEL",
    "BLOCK_SIZE",
    "Finding",
    "Progress",
    "StoreOpener",
    "VerificationReport",
    "verify_ledger",
]


@dataclass
class VerificationReport:
    events: int = 0
    checkpoints: int = 0
    latest_checkpoint_size: int | None = None
    last_event_type: str | None = None
    """The type of the last event other than a checkpoint (``gateway_stop`` after a clean stop)."""
    first_event_type: str | None = None
    unsigned_events: int = 0
    """Events covered by neither a valid checkpoint event nor the signed tree head."""
    signed_head_size: int | None = None
    """The tree size of the latest signed tree head, when the ledger has one and it verifies."""
    quarantined: int = 0
    """Events a writer found beyond the signed head at start and moved aside."""
    archived: int = 0
    """Events seq 0..archived-1 were pruned from this store after they were archived (they are
    counted in ``events``; ``trailguard archive verify`` checks them, in the archive)."""
    prune_record: dict[str, Any] | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "failure"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def intact(self) -> bool:
        return not self.failures


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


# -- the whole ledger -----------------------------------------------------------------------------


class _RecomputedTree:
    """The tree rebuilt from the stored bytes, one block at a time.

    It keeps every perfect subtree of a whole block or larger, and every level of the blocks
    since ``keep_from`` (the previous checkpoint's): enough for the root at any checkpoint and
    the consistency proof between consecutive checkpoints, without the whole tree in memory.
    """

    def __init__(self) -> None:
        self._blocks = merkle.CompactRange(record_from_level=1)
        self.large_subtrees: dict[tuple[int, int], bytes] = {}
        """(level, index) -> hash for perfect subtrees of level >= BLOCK_LEVEL."""
        self._recent: dict[int, Block] = {}
        self.keep_from = 0
        """Leaf position from which every block's levels are kept."""

    def seed(self, size: int, subtrees: list[bytes]) -> None:
        """Start from the perfect subtrees covering [0, size) (``size`` a multiple of a block):
        the archived part of a pruned store. They are checked by the first checkpoint after."""
        bounds = merkle.CompactRange.subtree_bounds(size)
        self._blocks = merkle.CompactRange(size // BLOCK_SIZE, subtrees, record_from_level=1)
        for (begin, end), node in zip(bounds, subtrees, strict=True):
            level = (end - begin).bit_length() - 1
            self.large_subtrees[level, begin >> level] = node
        self.keep_from = size

    def add(self, block: Block) -> list[tuple[int, int, bytes]]:
        """Add a block; returns the large subtrees it completed (to cross-check the cache)."""
        self._recent[block.number] = block
        for number in [
            n for n in self._recent if n < min(block.number, self.keep_from // BLOCK_SIZE)
        ]:
            del self._recent[number]
        if block.count < BLOCK_SIZE:
            return []
        root = block.node(BLOCK_LEVEL, 0)
        completed = [(BLOCK_LEVEL, block.number, root)]
        self._blocks.append(root)
        completed += [(lvl + BLOCK_LEVEL, idx, h) for lvl, idx, h in self._blocks.completed]
        self._blocks.completed.clear()
        for level, index, node in completed:
            self.large_subtrees[level, index] = node
        return completed

    def range_hash(self, begin: int, end: int) -> bytes:
        """MTH(D[begin:end]) of the rebuilt tree (RFC 6962 §2.1)."""
        size = end - begin
        level = size.bit_length() - 1
        if size == 1 << level and begin % size == 0:
            if level >= BLOCK_LEVEL:
                return self.large_subtrees[level, begin >> level]
            return self._recent[begin >> BLOCK_LEVEL].node(level, (begin % BLOCK_SIZE) >> level)
        k = 1 << ((size - 1).bit_length() - 1)
        return merkle.hash_children(
            self.range_hash(begin, begin + k), self.range_hash(begin + k, end)
        )

    def root(self, size: int) -> bytes:
        """The root of the first ``size`` leaves (the block holding leaf ``size`` is kept)."""
        subtrees = [
            self.range_hash(begin, end) for begin, end in merkle.CompactRange.subtree_bounds(size)
        ]
        return merkle.root_from_subtrees(subtrees)


class _Verification:
    def __init__(
        self,
        store: Store,
        open_store: StoreOpener,
        verifier: Verifier,
        trusted: checkpoints.SignedCheckpoint | None,
        progress: Progress | None,
        workers: int,
        writer_running: bool,
    ) -> None:
        self.store = store
        self.open_store = open_store
        self.verifier = verifier
        self.trusted = trusted
        self.progress = progress
        self.workers = workers
        self.report = VerificationReport()
        self.origin: str | None = None
        self.previous_checkpoint: checkpoints.SignedCheckpoint | None = None
        self.last_checkpoint_position = -1
        self.root_at_trusted_size: bytes | None = None
        self.tree = _RecomputedTree()
        self.checkpoint_positions: set[int] = set()
        self.start_positions: list[int] = []
        self.writer_running = writer_running
        self.signed_head: checkpoints.SignedCheckpoint | None = None
        self.root_at_head_size: bytes | None = None
        self.base = 0
        """The first seq this store holds: events before it were archived and pruned."""

    def _scan_positions(self) -> tuple[int, list[int]]:
        """Check that ``seq`` runs 0, 1, 2... and find the seq where each block starts, plus the
        end of the last one: rows a live writer adds after this scan are not read."""
        span = getattr(self.store, "seq_span", None)
        if span is not None:
            count, low, high = span()
            if count and low == self.base and high - low + 1 == count:
                return self.base + count, [*range(self.base, high + 1, BLOCK_SIZE), high + 1]
        block_starts = []
        expected = self.base
        position = self.base - 1
        seq = self.base - 1
        for position, seq in enumerate(self.store.seqs(), start=self.base):
            if position % BLOCK_SIZE == 0:
                block_starts.append(seq)
            if seq != expected:
                self.report.findings.append(
                    _failure(
                        f"seq {expected}" if seq > expected else f"seq {seq}",
                        f"events seq {expected}..{seq - 1} are missing: seq is not contiguous"
                        if seq > expected
                        else "seq repeats or goes backwards",
                        expected=f"seq {expected}",
                        found=f"seq {seq}",
                    )
                )
            expected = seq + 1
        block_starts.append(seq + 1)
        return position + 1, block_starts

    def _blocks(self, block_starts: list[int]) -> Iterator[Block]:
        first_block = self.base // BLOCK_SIZE
        jobs = [
            (number, first_seq, block_starts[number + 1 - first_block])
            for number, first_seq in enumerate(block_starts[:-1], start=first_block)
        ]
        if self.workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield check_block(self.open_store, *job)
            return
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(check_block, self.open_store, *job) for job in jobs]
            for future in futures:
                yield future.result()

    def _read_signed_head(self) -> checkpoints.SignedCheckpoint | None:
        """The latest signed tree head (stored beside the events, signed in the same commit),
        read before the events so a live writer's later commits are merely newer."""
        signed_head = self.store.get_meta(SIGNED_HEAD_KEY)
        if signed_head is None:
            return None
        try:
            head = checkpoints.open_checkpoint(signed_head, self.verifier)
        except checkpoints.CheckpointError as exc:
            self.report.findings.append(_failure("signed tree head", f"does not verify: {exc}"))
            return None
        self.report.signed_head_size = head.tree_size
        return head

    def _read_prune_record(self, tree: _RecomputedTree) -> None:
        """A pruned store starts at ``pruned_before``, with the cached subtrees covering the
        archived events as the start of the tree; said as a warning, never as missing events."""
        value = self.store.get_meta(PRUNED_BEFORE_KEY)
        if not value:
            return
        base = int(value)
        if base <= 0 or base % BLOCK_SIZE:
            self.report.findings.append(
                _failure(
                    "ledger",
                    f"the store says it was pruned before seq {value}, which no "
                    "prune writes (a multiple of 16384)",
                )
            )
            return
        record: dict[str, Any] | None = None
        raw = self.store.get_meta(PRUNE_RECORD_KEY)
        if raw:
            try:
                loaded = orjson.loads(raw)
                record = loaded if isinstance(loaded, dict) else None
            except orjson.JSONDecodeError:
                record = None
        subtrees = []
        for begin, end in merkle.CompactRange.subtree_bounds(base):
            level = (end - begin).bit_length() - 1
            node = self.store.tree_node(level, begin >> level)
            if node is None:
                self.report.findings.append(
                    _failure(
                        f"seq 0..{base - 1}",
                        "archived and pruned, but the cached subtree covering seq "
                        f"{begin}..{end - 1} is missing: the hot events cannot be joined to them",
                    )
                )
                return
            subtrees.append(node)
        tree.seed(base, subtrees)
        self.base = base
        self.report.archived = base
        self.report.events = base
        self.report.prune_record = record
        where = record.get("archive") if record else None
        self.report.findings.append(
            Finding(
                "warning",
                f"seq 0..{base - 1}",
                f"archived{f' to {where}' if where else ''} and pruned from this store"
                + (f" at {record.get('prunedAt')}" if record and record.get("prunedAt") else "")
                + ": checked here only as the start of the tree the hot events extend; verify "
                "them with `trailguard archive verify`",
            )
        )

    def run(self) -> VerificationReport:
        self.signed_head = self._read_signed_head()
        head_size = self.signed_head.tree_size if self.signed_head else None
        self.root_at_head_size = merkle.EMPTY_ROOT if head_size == 0 else None
        tree = self.tree = _RecomputedTree()
        self._read_prune_record(tree)
        total, block_starts = self._scan_positions()
        trusted_size = self.trusted.tree_size if self.trusted else None
        for block in self._blocks(block_starts):
            self.report.findings.extend(block.findings)
            for level, index, node in tree.add(block):
                cached = self.store.tree_node(level, index)
                if cached != node:
                    self.report.findings.append(cache_mismatch(level, index, node, cached))
            for position, seq, document in block.checkpoints:
                self.checkpoint_positions.add(position)
                self._check_checkpoint(position, seq, document, tree.root(position))
            for position, document in block.starts:
                self.start_positions.append(position)
                self._check_start(position, document)
            if block.number == self.base // BLOCK_SIZE:
                self.report.first_event_type = block.first_event_type
            if block.last_event_type is not None:
                self.report.last_event_type = block.last_event_type
            self.report.events += block.count
            if (
                trusted_size is not None
                and self.base <= trusted_size <= self.report.events
                and self.root_at_trusted_size is None
            ):
                self.root_at_trusted_size = tree.root(trusted_size)
            if (
                head_size is not None
                and head_size <= self.report.events
                and self.root_at_head_size is None
            ):
                self.root_at_head_size = tree.root(head_size)
            if self.progress is not None:
                self.progress(self.report.events, total)
        if trusted_size == 0:
            self.root_at_trusted_size = merkle.EMPTY_ROOT
        if trusted_size is not None and 0 < trusted_size < self.base:
            self.trusted = None  # it covers only archived events: the archive is checked there
            self.report.findings.append(
                Finding(
                    "warning",
                    "trusted checkpoint",
                    f"covers {trusted_size} events, all archived and pruned from this store "
                    f"(seq 0..{self.base - 1}): check it against the archive with `trailguard "
                    "archive verify --trusted-checkpoint`",
                )
            )
        self._check_structure()
        self._check_signed_head()
        self._check_quarantine()
        self._check_tail()
        if self.trusted is not None:
            self._check_trusted()
        return self.report

    # -- checkpoints ----------------------------------------------------------------------------

    def _check_checkpoint(
        self, position: int, seq: int, document: dict[str, Any], recomputed: bytes
    ) -> None:
        where = f"checkpoint at seq {seq}"
        fail = self.report.findings.append
        signed_note = document.get("note")
        if not isinstance(signed_note, str):
            fail(_failure(where, "checkpoint event has no signed note"))
            return
        try:
            signed = checkpoints.open_checkpoint(signed_note, self.verifier)
        except checkpoints.CheckpointError as exc:
            fail(_failure(where, f"signature check failed: {exc}"))
            return
        self.report.checkpoints += 1
        self.last_checkpoint_position = position
        self.report.latest_checkpoint_size = signed.tree_size
        # The event's own fields are not signed; they must say exactly what the note says.
        for field_name, expected in (
            ("treeSize", signed.tree_size),
            ("rootHash", signed.root_b64),
            ("origin", signed.origin),
            ("source", "ledger"),
            ("extra", None),
        ):
            if document.get(field_name) != expected:
                fail(
                    _failure(
                        where,
                        f"the checkpoint event's {field_name} differs from its signed note",
                        expected=repr(expected),
                        found=repr(document.get(field_name)),
                    )
                )
        if self.origin is None:
            self.origin = signed.origin
        elif signed.origin != self.origin:
            fail(_failure(where, "names another log", expected=self.origin, found=signed.origin))
        if signed.tree_size != position:
            fail(
                _failure(
                    where,
                    "a checkpoint must cover exactly the events before it",
                    expected=f"tree size {position}",
                    found=f"tree size {signed.tree_size}",
                )
            )
            return
        if recomputed != signed.root_hash:
            since = self.previous_checkpoint.tree_size if self.previous_checkpoint else 0
            fail(
                _failure(
                    where,
                    f"signed root does not match the events before it: an event in seq "
                    f"{since}..{seq - 1} was changed, removed, inserted or reordered",
                    expected=f"signed root {signed.root_b64}",
                    found=f"recomputed root {_b64(recomputed)}",
                )
            )
            self.previous_checkpoint = None
            return
        previous = self.previous_checkpoint
        if previous is not None:
            # RFC 9162 §2.1.4 between consecutive signed checkpoints, with the proof taken from
            # the tree rebuilt from the events. Both roots were just matched against that tree,
            # so this restates consistency in the RFC's terms rather than finding new tampering.
            try:
                proof = merkle.consistency_proof(
                    previous.tree_size, signed.tree_size, self.tree.range_hash
                )
                merkle.verify_consistency(
                    previous.tree_size,
                    signed.tree_size,
                    previous.root_hash,
                    signed.root_hash,
                    proof,
                )
            except merkle.ProofError as exc:
                fail(
                    _failure(
                        where, f"no valid consistency proof from size {previous.tree_size}: {exc}"
                    )
                )
        self.previous_checkpoint = signed
        self.tree.keep_from = position

    def _check_start(self, position: int, document: dict[str, Any]) -> None:
        """A writer that did not stop cleanly left events unsigned until its successor signed."""
        if document.get("previousStopClean") is False:
            self.report.findings.append(
                Finding(
                    "warning",
                    f"seq {position}",
                    "the previous writer stopped without gateway_stop (crash, kill or power "
                    f"loss); events after seq {document.get('previousTreeSize')} of its run were "
                    "unsigned until this start",
                )
            )

    def _check_structure(self) -> None:
        """What the writer always does: a ledger opens with gateway_start and every start is
        followed at once by a checkpoint covering it."""
        if self.report.events and not self.base and self.report.first_event_type != _GATEWAY_START:
            self.report.findings.append(
                _failure(
                    "seq 0",
                    "a ledger starts with gateway_start",
                    expected="gateway_start",
                    found=repr(self.report.first_event_type),
                )
            )
        for position in self.start_positions:
            if position + 1 not in self.checkpoint_positions and position + 1 < self.report.events:
                self.report.findings.append(
                    _failure(
                        f"seq {position + 1}",
                        "a gateway_start must be followed at once by a checkpoint",
                        expected="checkpoint",
                        found="another event",
                    )
                )

    def _check_signed_head(self) -> None:
        """The latest signed tree head covers every acknowledged event: its root must be the
        root of the events it covers (RFC 6962 §2.1), and nothing may lie beyond it that a
        writer did not sign."""
        head = self.signed_head
        if head is None:
            return
        where = "signed tree head"
        fail = self.report.findings.append
        if self.origin is not None and head.origin != self.origin:
            fail(_failure(where, "names another log", expected=self.origin, found=head.origin))
            return
        if head.tree_size > self.report.events:
            fail(
                _failure(
                    where,
                    "the ledger is shorter than its own latest signed tree head: events were "
                    "removed from the end",
                    expected=f"at least {head.tree_size} events",
                    found=f"{self.report.events} events",
                )
            )
            return
        if self.root_at_head_size != head.root_hash:
            found = self.root_at_head_size
            fail(
                _failure(
                    where,
                    f"the events before seq {head.tree_size} differ from what the writer signed",
                    expected=f"root {head.root_b64} at size {head.tree_size}",
                    found=f"root {_b64(found) if found else '?'}",
                )
            )
            return
        beyond = self.report.events - head.tree_size
        if beyond > 0:
            where = f"seq {head.tree_size}..{self.report.events - 1}"
            if self.writer_running:
                self.report.findings.append(
                    Finding("warning", where, "committed after the signed head was read")
                )
            else:
                fail(
                    _failure(
                        where,
                        f"{beyond} event(s) lie beyond the latest signed tree head and no writer "
                        "is running: they were not written by the ledger writer (the next start "
                        "quarantines them)",
                    )
                )

    def _check_quarantine(self) -> None:
        quarantined = self.store.quarantined()
        self.report.quarantined = len(quarantined)
        if not quarantined:
            return
        seqs = sorted({seq for seq, *_ in quarantined})
        self.report.findings.append(
            Finding(
                "warning",
                "quarantine",
                f"{len(quarantined)} event(s) (seq {seqs[0]}..{seqs[-1]}) were found beyond the "
                "signed tree head at a start and moved to quarantine: something other than the "
                "ledger writer wrote them (see the unsigned_events_quarantined alert)",
            )
        )

    def _check_tail(self) -> None:
        events = self.report.events
        if events == 0:
            self.report.findings.append(Finding("warning", "ledger", "the ledger is empty"))
            return
        covered = self.last_checkpoint_position + 1
        head = self.signed_head
        if head is not None and self.root_at_head_size == head.root_hash:
            covered = max(covered, head.tree_size)
        unsigned = events - covered
        self.report.unsigned_events = unsigned
        if unsigned <= 0:
            return
        if head is not None:
            return  # _check_signed_head has judged what lies beyond the head
        where = f"seq {covered}..{events - 1}"
        if self.writer_running:
            self.report.findings.append(
                Finding(
                    "warning", where, "not yet covered by a signed checkpoint (a writer is running)"
                )
            )
        else:
            self.report.findings.append(
                _failure(
                    where,
                    f"{unsigned} event(s) are covered by no valid signed checkpoint and no writer "
                    "is running to sign them: they cannot be verified (start the gateway once to "
                    "sign them if they are genuine)",
                )
            )

    def _check_trusted(self) -> None:
        trusted = self.trusted
        assert trusted is not None
        where = "trusted checkpoint"
        fail = self.report.findings.append
        if self.origin is not None and trusted.origin != self.origin:
            fail(_failure(where, "names another log", expected=self.origin, found=trusted.origin))
            return
        if trusted.tree_size > self.report.events:
            fail(
                _failure(
                    where,
                    "the ledger is shorter than a checkpoint it once signed: events were removed "
                    "from the end (truncated or rolled back)",
                    expected=f"at least {trusted.tree_size} events",
                    found=f"{self.report.events} events",
                )
            )
            return
        if self.root_at_trusted_size != trusted.root_hash:
            found = self.root_at_trusted_size
            fail(
                _failure(
                    where,
                    "the ledger's first events differ from what was signed: the log was "
                    "rewritten (a fork)",
                    expected=f"root {trusted.root_b64} at size {trusted.tree_size}",
                    found=f"root {_b64(found) if found else '?'}",
                )
            )


def verify_ledger(
    store: Store,
    open_store: StoreOpener,
    verifier: Verifier,
    *,
    trusted_checkpoint: str | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    writer_running: bool = False,
) -> VerificationReport:
    """Verify the whole ledger in ``store`` with ``verifier``'s key.

    ``trusted_checkpoint`` is a signed checkpoint obtained earlier and kept off the host; it must
    verify under the same key (so a replaced signing key fails here). ``workers`` processes check
    blocks in parallel (default: one per CPU). ``writer_running`` says a gateway may still
    sign the newest events; otherwise an unsigned tail is a failure.
    """
    trusted = None
    trusted_failure = None
    if trusted_checkpoint is not None:
        try:
            trusted = checkpoints.open_checkpoint(trusted_checkpoint, verifier)
        except checkpoints.CheckpointError as exc:
            trusted_failure = _failure(
                "trusted checkpoint",
                f"does not verify under key {verifier.name}+{verifier.key_id.hex()}: {exc} "
                "(was the signing key replaced?)",
            )
    workers = workers if workers is not None else (os.cpu_count() or 1)
    verification = _Verification(
        store, open_store, verifier, trusted, progress, workers, writer_running
    )
    try:
        report = verification.run()
    except (StoreError, sqlite3.Error) as exc:
        report = verification.report
        report.findings.append(
            _failure("ledger", f"the database could not be read to the end: {exc}")
        )
    if trusted_failure is not None:
        report.findings.insert(0, trusted_failure)
    return report
