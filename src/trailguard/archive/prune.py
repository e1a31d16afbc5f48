"""Pruning the hot store: events leave it only after the archive was read back and verified.

The events [pruned_before, boundary) are removed only when every one of them is, byte for byte
(by leaf hash), an event of a sealed segment that was just read back from the archive and
verified under the ledger's pinned key: its objects unchanged since they were sealed, locked as
the policy requires (on S3), its events leading to the signed roots, its tiles continuing the
signed tree. The boundary is a multiple of 2**14 (the verifier's block), at or before the end
of the last such segment whose events are all older than the hot period, so the cached subtrees
that stay in the hot store join the remaining events to the archived tree; those subtrees are
checked against the archive's verified tree before anything is removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import orjson

from trailguard.archive import layout
from trailguard.archive.backends import Archive, ArchiveConfigError
from trailguard.archive.seal import (
    ArchiveIntegrityError,
    SealedSegment,
    check_bucket,
    check_ledger_extends,
    read_sealed,
    sealed_manifest_keys,
)
from trailguard.archive.verify import LockPolicy, check_sealed_segment
from trailguard.ledger import merkle
from trailguard.ledger.note import Verifier
from trailguard.ledger.stored_tree import StoredTree
from trailguard.ledger.verify import BLOCK_SIZE
from trailguard.store.base import PRUNED_BEFORE_KEY, Store


class PrunableStore(Store, Protocol):
    """A store that can give up archived events (``SQLiteStore``; the shared PostgreSQL ledger
    does not prune yet)."""

    def prune_before(self, boundary: int, record: str, *, chunk: int = 16384) -> int: ...


@dataclass
class PrunePlan:
    pruned_before: int
    """Where the hot store starts now."""
    boundary: int
    """Where it would start after the prune (== pruned_before: nothing to do)."""
    archived_size: int
    """The end of the archived segments whose events are all older than the hot period."""
    segments: list[SealedSegment] = field(default_factory=list)
    """The sealed segments holding [pruned_before, boundary), to read back and verify."""
    reason: str = ""


@dataclass
class PruneResult:
    plan: PrunePlan
    removed: int = 0
    verified_events: int = 0


def plan_prune(
    store: Store, archive: Archive, verifier: Verifier, *, hot_days: int, now: datetime
) -> PrunePlan:
    """What a prune would remove, from the archive's manifests (nothing is read back yet)."""
    start = int(store.get_meta(PRUNED_BEFORE_KEY) or 0)
    cutoff = now - timedelta(days=hot_days)
    chain: list[SealedSegment] = []
    expected = 0
    archived = 0
    for first, size, key in sealed_manifest_keys(archive):
        if first != expected:
            break  # a gap or an overlap: nothing past it counts as archived
        if size <= start:
            expected = archived = size  # already pruned: read and verified by that prune
            continue
        sealed = read_sealed(archive, key, verifier)
        if layout.parse_time(sealed.manifest.last_timestamp) >= cutoff:
            break
        chain.append(sealed)
        expected = archived = size
    boundary = max(start, archived - archived % BLOCK_SIZE)
    hot_end = store.tree_size()
    # The newest checkpoint (and what follows it) always stays: new events extend from it.
    boundary = min(boundary, hot_end - hot_end % BLOCK_SIZE)
    plan = PrunePlan(start, max(start, boundary), archived)
    if plan.boundary <= start:
        plan.reason = (
            f"nothing to prune: the archive's segments older than {hot_days} day(s) end at seq "
            f"{archived}, and events leave the hot store in blocks of {BLOCK_SIZE} "
            f"(it starts at seq {start})"
        )
        return plan
    plan.segments = [
        sealed
        for sealed in chain
        if sealed.manifest.tree_size > start and sealed.manifest.first_seq < plan.boundary
    ]
    return plan


def prune_hot_store(
    store: PrunableStore,
    archive: Archive,
    verifier: Verifier,
    *,
    hot_days: int,
    now: datetime | None = None,
    lock_policy: LockPolicy | None = None,
    allow_not_write_once: bool = False,
    dry_run: bool = False,
) -> PruneResult:
    """Remove from ``store`` the events older than ``hot_days`` that the archive holds, after
    reading their segments back and verifying them. Raises ArchiveIntegrityError (nothing
    removed) when anything disagrees."""
    if not archive.write_once and not allow_not_write_once:
        raise ArchiveConfigError(
            f"{archive.url} is a local directory, not write-once: pruning would leave the only "
            "copy of those events where anyone owning it can delete them. Archive to s3:// with "
            "Object Lock, or pass --allow-not-write-once"
        )
    check_bucket(archive)
    pinned = store.get_meta("verifier_key")
    if pinned is not None and pinned != verifier.to_string():
        raise ArchiveConfigError(
            "the key given is not the key this ledger was created with; prune checks the "
            "archive under the ledger's own key"
        )
    now = now or datetime.now(UTC)
    plan = plan_prune(store, archive, verifier, hot_days=hot_days, now=now)
    result = PruneResult(plan)
    if plan.boundary <= plan.pruned_before:
        return result
    # The hot ledger must be the archived one (no fork, nothing rolled back).
    check_ledger_extends(store, plan.segments[-1], archive)
    previous: SealedSegment | None = None
    keys = sealed_manifest_keys(archive)
    first_index = next(i for i, k in enumerate(keys) if k[0] == plan.segments[0].manifest.first_seq)
    if first_index > 0:
        previous = read_sealed(archive, keys[first_index - 1][2], verifier)
    frontier: list[bytes] | None = None
    for sealed in plan.segments:
        manifest = sealed.manifest
        check = check_sealed_segment(
            archive,
            sealed,
            verifier,
            previous,
            lock_policy=lock_policy,
            want_frontiers={plan.boundary},
            keep_leaves=True,
        )
        if plan.boundary in check.frontiers:
            frontier = check.frontiers[plan.boundary]
        # Every hot event to be removed is the archived one, byte for byte.
        low = max(manifest.first_seq, plan.pruned_before)
        high = min(manifest.tree_size, plan.boundary)
        expected = low
        for row in store.rows(low, high):
            if row.seq != expected:
                raise ArchiveIntegrityError(
                    f"the hot store has no event at seq {expected}: refusing to prune around a "
                    "gap; run `trailguard verify`"
                )
            archived_leaf = check.leaves[row.seq - manifest.first_seq]
            if merkle.hash_leaf(bytes(row.body)) != archived_leaf:
                raise ArchiveIntegrityError(
                    f"seq {row.seq}: the hot event differs from the archived one; nothing was "
                    "pruned. Run `trailguard verify` and `trailguard archive verify`"
                )
            expected += 1
            result.verified_events += 1
        if expected != high:
            raise ArchiveIntegrityError(
                f"the hot store ends at seq {expected - 1}, inside the range to prune"
            )
        previous = sealed
    if frontier is None:
        raise ArchiveIntegrityError(f"no verified segment reaches seq {plan.boundary}")
    # The cached subtrees that stay must be the archive's tree at the boundary.
    tree = StoredTree(store)
    for (begin, end), node in zip(
        merkle.CompactRange.subtree_bounds(plan.boundary), frontier, strict=True
    ):
        if tree.range_hash(begin, end) != node:
            raise ArchiveIntegrityError(
                f"the hot store's cached subtree over seq {begin}..{end - 1} differs from the "
                "archived tree; nothing was pruned. Run `trailguard verify`"
            )
    if dry_run:
        return result
    last = plan.segments[-1]
    record = {
        "archive": archive.url,
        "prunedBefore": plan.boundary,
        "archivedSize": last.manifest.tree_size,
        "checkpoint": last.manifest.checkpoint,
        "segments": [
            layout.manifest_key(s.manifest.first_seq, s.manifest.tree_size) for s in plan.segments
        ],
        "prunedAt": layout.format_time(now),
        "hotDays": hot_days,
    }
    result.removed = store.prune_before(
        plan.boundary, orjson.dumps(record).decode(), chunk=BLOCK_SIZE
    )
    return result


def check_pruned_range(store: Store, archive: Archive, verifier: Verifier) -> list[str]:
    """For `verify --trusted-checkpoint <archive>` on a pruned store: the events this store
    says were archived must be in ``archive``: sealed segments from seq 0 past the prune
    boundary, whose signed root the hot store's tree reproduces. Returns the problems found
    (none: the pruned range is the archived one)."""
    boundary = int(store.get_meta(PRUNED_BEFORE_KEY) or 0)
    if not boundary:
        return []
    expected = 0
    for first, size, key in sealed_manifest_keys(archive):
        if first != expected:
            break
        expected = size
        if size < boundary:
            continue
        sealed = read_sealed(archive, key, verifier)
        if size > store.tree_size():
            return [f"{archive.url} seals {size} events, more than this store holds"]
        try:
            root = StoredTree(store).root(size)
        except LookupError:
            root = b""
        if root != sealed.checkpoint.root_hash:
            return [
                f"the hot store's tree at size {size} differs from what {archive.url} sealed: the "
                "pruned events are not the archived ones"
            ]
        return []
    return [
        f"this store says seq 0..{boundary - 1} were archived and pruned, but {archive.url} "
        f"holds sealed segments only up to seq {expected - 1}: events were removed without "
        "being archived"
    ]
