"""Verification of an archive from its objects and the log's public key alone.

Trusts nothing the archive says about itself: every object's bytes against the SHA-256 its
manifest names, every event's leaf, the RFC 6962 root at every checkpoint inside a segment and
at its end, every checkpoint's Ed25519 signature, the RFC 9162 consistency proof between
consecutive segments, the hash tiles against the tree rebuilt from the events, each index and
Parquet copy against the events, that seq runs without gaps, and (on S3) that every object is
the original, locked version with the retention the policy requires. Each failure names the
segment or object, what was expected and what was found.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from trailguard.archive import layout, parquet
from trailguard.archive.backends import (
    Archive,
    ArchiveUnavailableError,
    KeyVersions,
    MissingObjectError,
    StoredObject,
)
from trailguard.archive.layout import Manifest, ManifestError, Retention, SegmentIndex
from trailguard.archive.seal import ArchiveIntegrityError, SealedSegment, read_event_lines
from trailguard.archive.tiles import TileBuilder, new_tiles, tile_path
from trailguard.events import EventType
from trailguard.ledger import checkpoint as checkpoints
from trailguard.ledger import merkle
from trailguard.ledger.findings import Finding
from trailguard.ledger.findings import failure as _failure
from trailguard.ledger.note import Verifier

Progress = Callable[[int, int], None]
_CHECKPOINT = EventType.CHECKPOINT.value
_KNOWN_PREFIXES = (layout.SEGMENTS, layout.CHECKPOINTS, layout.PARQUET, "tile/")


def _warning(where: str, problem: str) -> Finding:
    return Finding("warning", where, problem)


@dataclass
class ArchiveReport:
    segments: int = 0
    events: int = 0
    tree_size: int = 0
    """The size of the tree the archive's sealed segments cover, without gaps."""
    checkpoints_in_events: int = 0
    checkpoint_objects: int = 0
    latest_checkpoint: checkpoints.SignedCheckpoint | None = None
    """The newest checkpoint object that verifies (it may be ahead of the sealed segments)."""
    objects: int = 0
    locked_objects: int = 0
    legal_holds: int = 0
    lock_enabled: bool | None = None
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


@dataclass(frozen=True)
class LockPolicy:
    """What every object's lock must satisfy: the mode, and a retain-until no earlier than the
    retention counted from the segment's last event. ``retention`` None: each manifest's own."""

    retention: Retention | None = None
    mode: str | None = None

    def check(
        self, stored: StoredObject, manifest_retention: Retention, counted_from: datetime
    ) -> list[str]:
        problems = []
        retention = self.retention or manifest_retention
        mode = self.mode or retention.mode
        lock = stored.lock
        if lock.mode is None:
            problems.append(f"is not locked (expected Object Lock {mode})")
            return problems
        if lock.mode != mode:
            problems.append(f"is locked in {lock.mode} mode, expected {mode}")
        required = retention.retain_until(counted_from).replace(microsecond=0)
        if lock.retain_until is None or lock.retain_until < required:
            found = lock.retain_until.isoformat() if lock.retain_until else "none"
            problems.append(
                f"is retained until {found}, earlier than {retention.describe()} after its last "
                f"event requires ({required.isoformat()})"
            )
        return problems


# -- one segment ----------------------------------------------------------------------------------


@dataclass
class SegmentCheck:
    """What checking one sealed segment found."""

    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    checkpoints: int = 0
    roots: dict[int, bytes] = field(default_factory=dict)
    """Root at every tree size asked for in ``want_roots`` that falls inside the segment."""
    frontiers: dict[int, list[bytes]] = field(default_factory=dict)
    """The compact range at every size asked for in ``want_frontiers``."""
    leaves: list[bytes] = field(default_factory=list)
    """Every event's leaf hash, when asked for (``keep_leaves``)."""


def _where(manifest: Manifest) -> str:
    return f"segment seq {manifest.first_seq}..{manifest.last_seq}"


def check_segment(
    manifest: Manifest,
    objects: dict[str, StoredObject],
    builder: TileBuilder,
    previous: checkpoints.SignedCheckpoint | None,
    verifier: Verifier,
    *,
    lock_policy: LockPolicy | None,
    want_roots: set[int] | frozenset[int] = frozenset(),
    want_frontiers: set[int] | frozenset[int] = frozenset(),
    keep_leaves: bool = False,
    check_parquet: bool = True,
) -> SegmentCheck:
    """Check one segment whose objects were fetched (original versions) into ``objects``.

    ``builder`` is the tree at ``manifest.first_seq`` (checked against ``previous``, the signed
    checkpoint that ends the segment before); it is advanced through the segment's events."""
    result = SegmentCheck()
    fail = result.findings.append
    where = _where(manifest)
    first, size = manifest.first_seq, manifest.tree_size
    # The checkpoint that seals it.
    try:
        signed = checkpoints.open_checkpoint(manifest.checkpoint, verifier)
    except checkpoints.CheckpointError as exc:
        fail(_failure(where, f"the sealing checkpoint does not verify: {exc}"))
        return result
    if signed.tree_size != size:
        fail(_failure(where, "the sealing checkpoint covers another size", size, signed.tree_size))
        return result
    # Where it starts.
    previous_root = previous.root_hash if previous is not None else merkle.EMPTY_ROOT
    previous_size = previous.tree_size if previous is not None else 0
    if first != previous_size:
        fail(
            _failure(where, "does not start where the previous segment ends", previous_size, first)
        )
        return result
    if first and manifest.previous_checkpoint != (previous.note if previous else None):
        fail(_failure(where, "names another previous checkpoint than the previous segment's"))
    if builder.size != first:
        raise ValueError(f"tree builder at {builder.size}, segment starts at {first}")
    if merkle.root_from_subtrees(manifest.left_frontier) != previous_root:
        fail(
            _failure(
                where,
                "its left frontier does not lead to the previous checkpoint's root",
                layout.b64(previous_root),
                layout.b64(merkle.root_from_subtrees(manifest.left_frontier)),
            )
        )
    elif manifest.left_frontier != builder.compact_range():
        fail(_failure(where, "its left frontier differs from the tree rebuilt from the archive"))
    # Every file it names, byte for byte.
    data: dict[str, bytes] = {}
    for entry in manifest.files:
        stored = objects.get(entry.key)
        if stored is None:
            fail(_failure(f"{entry.key}", f"named by the manifest of {where} but missing"))
            continue
        digest = hashlib.sha256(stored.data).hexdigest()
        if digest != entry.sha256 or len(stored.data) != entry.size:
            fail(
                _failure(
                    entry.key,
                    "the object's bytes differ from what its manifest sealed",
                    f"sha256 {entry.sha256} ({entry.size} bytes)",
                    f"sha256 {digest} ({len(stored.data)} bytes)",
                )
            )
            continue
        data[entry.key] = stored.data
    # The objects' locks.
    if lock_policy is not None:
        counted_from = layout.parse_time(manifest.last_timestamp)
        for key in [*(entry.key for entry in manifest.files), layout.manifest_key(first, size)]:
            stored = objects.get(key)
            if stored is None:
                continue
            for problem in lock_policy.check(stored, manifest.retention, counted_from):
                fail(_failure(key, problem))
    # The events.
    try:
        events_entry = manifest.file("events")
        index_entry = manifest.file("index")
    except ManifestError as exc:
        fail(_failure(where, str(exc)))
        return result
    if events_entry.key != layout.events_key(first, size):
        fail(
            _failure(
                where,
                "its events file is not at its own key",
                layout.events_key(first, size),
                events_entry.key,
            )
        )
    raw_events = data.get(events_entry.key)
    if raw_events is None:
        return result
    try:
        lines = read_event_lines(raw_events)
    except ValueError as exc:
        fail(_failure(events_entry.key, f"cannot be read: {exc}"))
        return result
    if len(lines) != manifest.count:
        fail(
            _failure(
                events_entry.key,
                "holds another number of events than sealed",
                manifest.count,
                len(lines),
            )
        )
        return result
    index = SegmentIndex(first, size - 1)
    documents: list[tuple[int, bytes, dict[str, Any]]] = []
    origin = signed.origin
    for offset, body in enumerate(lines):
        seq = first + offset
        if seq in want_roots:
            result.roots[seq] = builder.root()
        if seq in want_frontiers:
            result.frontiers[seq] = builder.compact_range()
        leaf = merkle.hash_leaf(body)
        if keep_leaves:
            result.leaves.append(leaf)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            fail(_failure(f"seq {seq}", f"event bytes are not JSON: {exc}"))
            builder.append(leaf)
            continue
        if not isinstance(document, dict):
            fail(_failure(f"seq {seq}", "event bytes are not a JSON object"))
            builder.append(leaf)
            continue
        if document.get("seq") != seq:
            fail(
                _failure(
                    f"seq {seq}",
                    "the event's own seq disagrees with its position",
                    seq,
                    document.get("seq"),
                )
            )
        if document.get("eventType") == _CHECKPOINT:
            _check_checkpoint_event(document, seq, builder.root(), verifier, origin, fail)
            result.checkpoints += 1
            if offset == 0 and first and document.get("note") != manifest.previous_checkpoint:
                fail(
                    _failure(
                        f"seq {seq}",
                        "the segment's first event is not the checkpoint that sealed the "
                        "previous segment",
                    )
                )
        elif offset == 0 and first:
            fail(
                _failure(
                    f"seq {seq}",
                    "a segment after the first starts with the checkpoint that sealed the "
                    "one before",
                    "checkpoint",
                    document.get("eventType"),
                )
            )
        index.add(seq, document)
        documents.append((seq, body, document))
        builder.append(leaf)
        result.events += 1
    if size in want_roots:
        result.roots[size] = builder.root()
    if size in want_frontiers:
        result.frontiers[size] = builder.compact_range()
    root = builder.root()
    if root != signed.root_hash:
        fail(
            _failure(
                where,
                f"the events do not lead to the root its checkpoint signed: an event in seq "
                f"{first}..{size - 1} was changed, removed, inserted or reordered",
                f"signed root {signed.root_b64}",
                f"recomputed root {layout.b64(root)}",
            )
        )
    if first:
        try:
            merkle.verify_consistency(
                previous_size, size, previous_root, signed.root_hash, manifest.consistency_proof
            )
        except merkle.ProofError as exc:
            fail(_failure(where, f"no valid consistency proof from size {previous_size}: {exc}"))
    # Tiles: exactly the new tiles of this size, each equal to the rebuilt tree's.
    built = {(level, index_, width): tile for level, index_, width, tile in builder.completed}
    built.update(
        {(level, index_, width): tile for level, index_, width, tile in builder.partial_tiles()}
    )
    builder.completed.clear()
    expected_tiles = {tile_path(*spec): spec for spec in new_tiles(first, size)}
    named_tiles = {entry.key for entry in manifest.files if entry.role == "tile"}
    for key in sorted(set(expected_tiles) - named_tiles):
        fail(_failure(key, f"a hash tile {where} completes is not in its manifest"))
    for key in sorted(named_tiles - set(expected_tiles)):
        fail(_failure(key, f"the manifest of {where} names a tile it does not complete"))
    for key in sorted(named_tiles & set(expected_tiles)):
        if key in data and data[key] != built.get(expected_tiles[key]):
            fail(_failure(key, "the hash tile differs from the tree rebuilt from the events"))
    # The index, rebuilt from the signed events.
    raw_index = data.get(index_entry.key)
    if raw_index is not None and raw_index != index.to_bytes():
        fail(
            _failure(
                index_entry.key,
                "the index differs from the one rebuilt from the events (`archive find` would "
                "be misled)",
            )
        )
    # The Parquet copies, rebuilt rows against the events.
    if check_parquet and parquet.available():
        parquet_entries = [entry for entry in manifest.files if entry.role == "parquet"]
        by_day: dict[str, list[tuple[int, bytes]]] = {}
        for seq, body, document in documents:
            timestamp = document.get("timestamp")
            day = timestamp[:10] if isinstance(timestamp, str) else "unknown"
            by_day.setdefault(day, []).append((seq, body))
        expected_keys = {layout.parquet_key(day, first, size): rows for day, rows in by_day.items()}
        for entry in parquet_entries:
            raw = data.get(entry.key)
            if raw is None:
                continue
            rows = expected_keys.pop(entry.key, None)
            try:
                found = parquet.parquet_rows(raw)
            except Exception as exc:  # pyarrow raises several kinds for a damaged file
                fail(_failure(entry.key, f"the Parquet copy cannot be read: {exc}"))
                continue
            if rows is None or found != rows:
                fail(_failure(entry.key, "the Parquet copy differs from the segment's events"))
        if parquet_entries:
            for key in sorted(expected_keys):
                fail(_failure(key, f"the Parquet copy of a day of {where} is missing"))
    return result


def _check_checkpoint_event(
    document: dict[str, Any],
    seq: int,
    root: bytes,
    verifier: Verifier,
    origin: str,
    fail: Callable[[Finding], None],
) -> None:
    where = f"checkpoint at seq {seq}"
    note = document.get("note")
    if not isinstance(note, str):
        fail(_failure(where, "checkpoint event has no signed note"))
        return
    try:
        signed = checkpoints.open_checkpoint(note, verifier)
    except checkpoints.CheckpointError as exc:
        fail(_failure(where, f"signature check failed: {exc}"))
        return
    if signed.origin != origin:
        fail(_failure(where, "names another log", origin, signed.origin))
    if signed.tree_size != seq:
        fail(
            _failure(
                where, "a checkpoint must cover exactly the events before it", seq, signed.tree_size
            )
        )
    elif signed.root_hash != root:
        fail(
            _failure(
                where,
                "signed root does not match the events before it",
                signed.root_b64,
                layout.b64(root),
            )
        )


# -- the whole archive ----------------------------------------------------------------------------


@dataclass
class _Inventory:
    versions: dict[str, KeyVersions]
    sealed: list[tuple[int, int, str]]
    """(first seq, tree size, manifest key) in seq order."""
    segment_objects: dict[tuple[int, int], list[str]]
    checkpoint_sizes: dict[int, str]


def _inventory(archive: Archive, report: ArchiveReport) -> _Inventory:
    versions = archive.list_versions("")
    fail = report.findings.append
    sealed = []
    segment_objects: dict[tuple[int, int], list[str]] = {}
    checkpoint_sizes: dict[int, str] = {}
    for key, key_versions in sorted(versions.items()):
        if len(key_versions.versions) > 1:
            fail(
                _failure(
                    key,
                    f"has {len(key_versions.versions)} versions: it was overwritten after it was "
                    "written (the original, locked version is the one checked)",
                )
            )
        if key_versions.delete_markers:
            fail(
                _failure(
                    key,
                    "was deleted (a delete marker hides it); the locked original version is the "
                    "one checked",
                )
            )
        if not key.startswith(_KNOWN_PREFIXES):
            report.findings.append(_warning(key, "an object the archive format does not name"))
            continue
        parts = key.split("/")
        if key.startswith(layout.SEGMENTS):
            span = layout.parse_segment_element(parts[1]) if len(parts) == 3 else None
            if span is None:
                fail(_failure(key, "an object under segments/ that no segment can hold"))
                continue
            segment_objects.setdefault(span, []).append(key)
            if parts[2] == "manifest.json":
                sealed.append((span[0], span[1], key))
        elif key.startswith(layout.CHECKPOINTS):
            size = layout.parse_seq_element(parts[-1]) if len(parts) == 2 else None
            if size is None:
                fail(_failure(key, "an object under checkpoints/ not named by a tree size"))
                continue
            checkpoint_sizes[size] = key
    return _Inventory(versions, sorted(sealed), segment_objects, checkpoint_sizes)


def _fetch(archive: Archive, inventory: _Inventory, keys: list[str]) -> dict[str, StoredObject]:
    """The original version of each key (missing ones are left out)."""
    wanted = [(key, inventory.versions[key].original) for key in keys if key in inventory.versions]
    return {stored.key: stored for stored in _get_all(archive, wanted)}


def _get_all(archive: Archive, wanted: list[tuple[str, str | None]]) -> Iterator[StoredObject]:
    if archive.write_once:
        yield from archive.get_many(wanted)
        return
    for key, version in wanted:
        try:
            yield archive.get(key, version)
        except MissingObjectError:
            continue


def verify_archive(
    archive: Archive,
    verifier: Verifier,
    *,
    lock_policy: LockPolicy | None = None,
    trusted_checkpoint: str | None = None,
    progress: Progress | None = None,
    check_parquet: bool = True,
) -> ArchiveReport:
    """Verify everything in ``archive`` with ``verifier``'s key (see the module docstring).

    On S3 every object must be locked as ``lock_policy`` says (default: each manifest's own
    retention); a local archive is not write-once, which is said as a warning."""
    report = ArchiveReport()
    fail = report.findings.append
    if archive.write_once:
        lock = archive.bucket_lock()
        report.lock_enabled = lock.enabled
        if not lock.enabled:
            fail(
                _failure(archive.url, "the bucket has no Object Lock: nothing in it is write-once")
            )
        lock_policy = lock_policy or LockPolicy()
    else:
        report.findings.append(
            _warning(
                archive.url,
                "a local directory is not write-once: whoever owns it can delete or replace "
                "files, and only what the signatures cover is checked",
            )
        )
        lock_policy = None
    inventory = _inventory(archive, report)
    trusted = None
    if trusted_checkpoint is not None:
        try:
            trusted = checkpoints.open_checkpoint(trusted_checkpoint, verifier)
        except checkpoints.CheckpointError as exc:
            fail(_failure("trusted checkpoint", f"does not verify under the key: {exc}"))
    want_roots = set(inventory.checkpoint_sizes)
    if trusted is not None:
        want_roots.add(trusted.tree_size)
    roots: dict[int, bytes] = {}
    total = sum(size - first for first, size, _ in inventory.sealed)
    builder = TileBuilder()
    previous: checkpoints.SignedCheckpoint | None = None
    expected_first = 0
    claimed: set[str] = set()
    sealed_ranges = {(first, size) for first, size, _ in inventory.sealed}
    for span, keys in sorted(inventory.segment_objects.items()):
        if span not in sealed_ranges:
            report.findings.append(
                _warning(
                    f"segment seq {span[0]}..{span[1] - 1}",
                    f"{len(keys)} object(s) without a manifest: left by an interrupted run (the "
                    "next run with the same segment settings seals them); not part of the archive",
                )
            )
    with ThreadPoolExecutor(max_workers=1) as prefetcher:
        fetches = [
            prefetcher.submit(_fetch_segment, archive, inventory, first, size, key)
            for first, size, key in inventory.sealed[:1]
        ]
        for position, (first, size, key) in enumerate(inventory.sealed):
            if position + 1 < len(inventory.sealed):
                nxt = inventory.sealed[position + 1]
                fetches.append(prefetcher.submit(_fetch_segment, archive, inventory, *nxt))
            try:
                manifest, objects = fetches[position].result()
            except (ManifestError, MissingObjectError) as exc:
                fail(_failure(key, f"the manifest is unusable: {exc}"))
                break
            except ArchiveUnavailableError as exc:
                fail(_failure(key, f"could not be read: {exc}"))
                break
            if (manifest.first_seq, manifest.tree_size) != (first, size):
                fail(
                    _failure(
                        key,
                        "the manifest seals another range than its key names",
                        f"{first}..{size - 1}",
                        f"{manifest.first_seq}..{manifest.last_seq}",
                    )
                )
                break
            if first != expected_first:
                if first > expected_first:
                    fail(
                        _failure(
                            f"seq {expected_first}",
                            f"events seq {expected_first}..{first - 1} are not in the archive: "
                            "no sealed segment holds them",
                        )
                    )
                else:
                    fail(
                        _failure(
                            _where(manifest),
                            f"overlaps the segment before (which ends at seq {expected_first - 1})",
                        )
                    )
                break
            if manifest.first_seq and builder.size != first:
                break
            check = check_segment(
                manifest,
                objects,
                builder,
                previous,
                verifier,
                lock_policy=lock_policy,
                want_roots=want_roots,
                check_parquet=check_parquet,
            )
            report.findings.extend(check.findings)
            roots.update(check.roots)
            report.segments += 1
            report.events += check.events
            report.checkpoints_in_events += check.checkpoints
            report.objects += len(objects)
            report.locked_objects += sum(1 for stored in objects.values() if stored.lock.mode)
            report.legal_holds += sum(1 for stored in objects.values() if stored.lock.legal_hold)
            claimed.update(entry.key for entry in manifest.files)
            claimed.add(key)
            for other in inventory.segment_objects.get((first, size), []):
                if other not in claimed:
                    fail(_failure(other, f"in {_where(manifest)} but not named by its manifest"))
            try:
                previous = checkpoints.open_checkpoint(manifest.checkpoint, verifier)
            except checkpoints.CheckpointError:
                break
            if builder.size != size:
                break  # the segment's events were unreadable; nothing after it can be checked
            expected_first = size
            report.tree_size = size
            if progress is not None:
                progress(report.events, total)
    for key in sorted(inventory.versions):
        if key.startswith(("tile/", layout.PARQUET)) and key not in claimed:
            report.findings.append(
                _warning(
                    key,
                    "no sealed segment names this object (left by an interrupted run, or "
                    "planted): it is not part of the archive and was not used",
                )
            )
    _check_checkpoint_objects(archive, inventory, verifier, report, roots, lock_policy)
    if trusted is not None:
        _check_trusted(trusted, report, roots)
    if not inventory.sealed:
        report.findings.append(_warning(archive.url, "the archive holds no sealed segment"))
    return report


def _fetch_segment(
    archive: Archive, inventory: _Inventory, first: int, size: int, key: str
) -> tuple[Manifest, dict[str, StoredObject]]:
    objects = _fetch(archive, inventory, [key])
    if key not in objects:
        raise MissingObjectError(f"{key} could not be read")
    manifest = Manifest.from_bytes(objects[key].data)
    keys = [entry.key for entry in manifest.files]
    objects.update(_fetch(archive, inventory, keys))
    return manifest, objects


def _check_checkpoint_objects(
    archive: Archive,
    inventory: _Inventory,
    verifier: Verifier,
    report: ArchiveReport,
    roots: dict[int, bytes],
    lock_policy: LockPolicy | None,
) -> None:
    fail = report.findings.append
    keys = [inventory.checkpoint_sizes[size] for size in sorted(inventory.checkpoint_sizes)]
    objects = _fetch(archive, inventory, keys)
    for size in sorted(inventory.checkpoint_sizes):
        key = inventory.checkpoint_sizes[size]
        stored = objects.get(key)
        if stored is None:
            fail(_failure(key, "could not be read"))
            continue
        try:
            signed = checkpoints.open_checkpoint(stored.data.decode(), verifier)
        except (checkpoints.CheckpointError, UnicodeDecodeError) as exc:
            fail(_failure(key, f"is not a checkpoint signed by the key: {exc}"))
            continue
        report.checkpoint_objects += 1
        if signed.tree_size != size:
            fail(_failure(key, "holds the checkpoint of another size", size, signed.tree_size))
            continue
        if size <= report.tree_size and roots.get(size) != signed.root_hash:
            fail(
                _failure(
                    key,
                    "signs another root than the archived events have at that size (a "
                    "fork: history was rewritten and re-signed)",
                    layout.b64(roots[size]) if size in roots else "?",
                    signed.root_b64,
                )
            )
            continue
        if report.latest_checkpoint is None or size > report.latest_checkpoint.tree_size:
            report.latest_checkpoint = signed
        if lock_policy is not None:
            mode = lock_policy.mode or (
                lock_policy.retention.mode if lock_policy.retention is not None else None
            )
            if stored.lock.mode is None:
                fail(_failure(key, "is not locked"))
            elif mode is not None and stored.lock.mode != mode:
                fail(_failure(key, f"is locked in {stored.lock.mode} mode, expected {mode}"))


def _check_trusted(
    trusted: checkpoints.SignedCheckpoint, report: ArchiveReport, roots: dict[int, bytes]
) -> None:
    where = "trusted checkpoint"
    if trusted.tree_size > report.tree_size:
        report.findings.append(
            _warning(
                where,
                f"covers {trusted.tree_size} events, more than the archive has sealed "
                f"({report.tree_size}): only the sealed part could be checked against it",
            )
        )
        return
    found = roots.get(trusted.tree_size)
    if found != trusted.root_hash:
        report.findings.append(
            _failure(
                where,
                "the archive's events differ from what the trusted checkpoint signed (a fork)",
                f"root {trusted.root_b64} at size {trusted.tree_size}",
                f"root {layout.b64(found) if found else '?'}",
            )
        )


# -- one segment read back (for the exporter and the pruner) --------------------------------------


def check_sealed_segment(
    archive: Archive,
    sealed: SealedSegment,
    verifier: Verifier,
    previous: SealedSegment | None,
    *,
    lock_policy: LockPolicy | None = None,
    want_frontiers: set[int] | frozenset[int] = frozenset(),
    keep_leaves: bool = False,
) -> SegmentCheck:
    """Read one sealed segment back from the archive (the current versions: one overwritten
    since it was sealed fails) and verify it, including the tiles it continues from; raises
    ArchiveIntegrityError naming each failure."""
    from trailguard.archive.seal import tiles_at

    manifest = sealed.manifest
    key = layout.manifest_key(manifest.first_seq, manifest.tree_size)
    prefix = layout.segment_dir(manifest.first_seq, manifest.tree_size)
    # Current versions: an object overwritten since, even with a locked original, fails here.
    versions = archive.list_versions(prefix)
    problems = [
        f"{k}: overwritten ({len(v.versions)} versions) or deleted"
        for k, v in versions.items()
        if len(v.versions) > 1 or v.delete_markers
    ]
    objects: dict[str, StoredObject] = {}
    names = [key, *(entry.key for entry in manifest.files)]

    def get(name: str) -> StoredObject | None:
        with contextlib.suppress(MissingObjectError):
            return archive.get(name)
        return None

    with ThreadPoolExecutor(max_workers=16 if archive.write_once else 1) as pool:
        for stored in pool.map(get, names):
            if stored is not None:
                objects[stored.key] = stored
    if key not in objects:
        raise ArchiveIntegrityError(f"{archive.url}/{key}: the manifest cannot be read back")
    if Manifest.from_bytes(objects[key].data).to_bytes() != manifest.to_bytes():
        problems.append(f"{key}: the manifest read back differs from the one written")
    previous_signed = previous.checkpoint if previous is not None else None
    builder = (
        tiles_at(archive, manifest.first_seq, previous_signed.root_hash)
        if previous_signed is not None
        else TileBuilder()
    )
    if not archive.write_once:
        lock_policy = None  # a local directory has no locks to check
    elif lock_policy is None:
        lock_policy = LockPolicy()
    check = check_segment(
        manifest,
        objects,
        builder,
        previous_signed,
        verifier,
        lock_policy=lock_policy,
        want_frontiers=want_frontiers,
        keep_leaves=keep_leaves,
    )
    problems.extend(str(finding) for finding in check.findings if finding.severity == "failure")
    if problems:
        raise ArchiveIntegrityError(
            f"{archive.url}: {_where(manifest)} does not verify when read back: "
            + "; ".join(problems[:20])
            + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else "")
        )
    return check


def check_uploaded_segment(
    archive: Archive,
    sealed: SealedSegment,
    verifier: Verifier,
    previous: SealedSegment | None,
    *,
    lock_policy: LockPolicy | None = None,
) -> None:
    """The exporter's read-back: every object of a segment just sealed, read back from the
    archive, is byte for byte what was written (SHA-256 against the manifest) and locked as the
    policy says. What was written had been checked against the signed roots before upload, so
    this proves the archive holds it; ``prune`` does the full check (``check_sealed_segment``)
    before anything leaves the hot store. Raises ArchiveIntegrityError naming each problem."""
    manifest = sealed.manifest
    key = layout.manifest_key(manifest.first_seq, manifest.tree_size)
    names = [key, *(entry.key for entry in manifest.files)]

    def get(name: str) -> StoredObject | None:
        with contextlib.suppress(MissingObjectError):
            return archive.get(name)
        return None

    with ThreadPoolExecutor(max_workers=16 if archive.write_once else 1) as pool:
        objects = dict(zip(names, pool.map(get, names), strict=True))
    problems = [f"{name}: missing" for name, stored in objects.items() if stored is None]
    stored_manifest = objects.get(key)
    if (
        stored_manifest is not None
        and Manifest.from_bytes(stored_manifest.data).to_bytes() != manifest.to_bytes()
    ):
        problems.append(f"{key}: the manifest read back differs from the one written")
    for entry in manifest.files:
        stored = objects.get(entry.key)
        if stored is not None and hashlib.sha256(stored.data).hexdigest() != entry.sha256:
            problems.append(f"{entry.key}: the object read back differs from the one written")
    if archive.write_once:
        policy = lock_policy or LockPolicy()
        counted_from = layout.parse_time(manifest.last_timestamp)
        for name, stored in objects.items():
            if stored is not None:
                problems.extend(
                    f"{name}: {problem}"
                    for problem in policy.check(stored, manifest.retention, counted_from)
                )
    if problems:
        raise ArchiveIntegrityError(
            f"{archive.url}: {_where(manifest)} does not verify when read back: "
            + "; ".join(problems[:20])
            + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else "")
        )
