"""One run of the exporter: cut the ledger at signed checkpoints into segments, write each
segment's objects once, seal it with its manifest (written last), read it back and verify it,
and export every signed checkpoint.

A run is idempotent and resumable: objects are deterministic and written create-if-absent, so a
run killed at any point leaves objects that the next run finds already written (identical) and
completes; a segment is sealed only when its manifest exists, and a manifest is written only
after every object it names.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from trailguard import __version__
from trailguard.archive import layout, parquet
from trailguard.archive.backends import (
    Archive,
    ArchiveConfigError,
    MissingObjectError,
    ObjectConflictError,
)
from trailguard.archive.layout import FileEntry, Manifest, Retention, SegmentIndex
from trailguard.archive.tiles import TILE_WIDTH, TileBuilder, new_tiles, split_tile, tile_path
from trailguard.errors import FaultError, VerificationError
from trailguard.events import EventType
from trailguard.ledger import checkpoint as checkpoints
from trailguard.ledger import merkle
from trailguard.ledger.note import Verifier
from trailguard.ledger.stored_tree import StoredTree
from trailguard.store.base import SIGNED_HEAD_KEY, LedgerRow, Store

Progress = Callable[[int, int], None]
_CHECKPOINT = EventType.CHECKPOINT.value


class ArchiveIntegrityError(VerificationError):
    """The ledger and the archive disagree (a fork, a truncated or rolled-back ledger, a
    tampered event or archive); nothing was sealed past the last agreeing point."""


class ArchiveRunError(FaultError):
    """A run that could not complete; what it sealed before stays sealed."""


@dataclass(frozen=True)
class SealConfig:
    retention: Retention = field(default_factory=Retention)
    segment_events: int = 100_000
    """Cut at the first checkpoint at or past this many events in the segment."""
    daily: bool = True
    """Also cut at the first checkpoint at or after 00:00 UTC."""
    parquet: bool = True


@dataclass
class RunResult:
    sealed: list[Manifest] = field(default_factory=list)
    checkpoints_exported: int = 0
    archived_size: int = 0
    """The tree size the archive covers after this run (the last sealed checkpoint's)."""
    ledger_size: int = 0
    warnings: list[str] = field(default_factory=list)


# -- the archive's state --------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedSegment:
    manifest: Manifest
    manifest_sha256: str
    checkpoint: checkpoints.SignedCheckpoint


def sealed_manifest_keys(archive: Archive) -> list[tuple[int, int, str]]:
    """(first seq, tree size, key) of every manifest in the archive, in seq order."""
    found = []
    for key in archive.list_keys(layout.SEGMENTS):
        parts = key.split("/")
        if len(parts) != 3 or parts[2] != "manifest.json":
            continue
        span = layout.parse_segment_element(parts[1])
        if span is not None:
            found.append((span[0], span[1], key))
    return sorted(found)


def read_sealed(archive: Archive, key: str, verifier: Verifier) -> SealedSegment:
    """One manifest, parsed, with its checkpoint verified under ``verifier``."""
    stored = archive.get(key)
    manifest = Manifest.from_bytes(stored.data)
    if layout.manifest_key(manifest.first_seq, manifest.tree_size) != key:
        raise ArchiveIntegrityError(
            f"{archive.url}/{key}: the manifest seals seq {manifest.first_seq}.."
            f"{manifest.last_seq}, not the range its key names (a segment replayed under "
            "another name); run `trailguard archive verify`"
        )
    try:
        signed = checkpoints.open_checkpoint(manifest.checkpoint, verifier)
    except checkpoints.CheckpointError as exc:
        raise ArchiveIntegrityError(f"{archive.url}/{key}: its checkpoint {exc}") from None
    if signed.tree_size != manifest.tree_size:
        raise ArchiveIntegrityError(
            f"{archive.url}/{key}: the manifest says tree size {manifest.tree_size}, its signed "
            f"checkpoint {signed.tree_size}"
        )
    return SealedSegment(manifest, hashlib.sha256(stored.data).hexdigest(), signed)


def last_sealed(archive: Archive, verifier: Verifier) -> SealedSegment | None:
    keys = sealed_manifest_keys(archive)
    if not keys:
        return None
    return read_sealed(archive, keys[-1][2], verifier)


def tiles_at(archive: Archive, size: int, root: bytes) -> TileBuilder:
    """The tree's state at ``size`` from the archive's partial tiles, checked against the
    signed ``root`` of that size (so a swapped tile is refused, not built on)."""
    if size == 0:
        return TileBuilder()
    opened: list[list[bytes]] = []
    level = 0
    while size >> (8 * level):
        width = (size >> (8 * level)) % TILE_WIDTH
        hashes: list[bytes] = []
        if width:
            index = (size >> (8 * level)) // TILE_WIDTH
            key = tile_path(level, index, width)
            try:
                hashes = split_tile(archive.get(key).data, width)
            except (MissingObjectError, ValueError) as exc:
                raise ArchiveIntegrityError(
                    f"{archive.url}/{key}: the tile the next segment continues from is "
                    f"unusable: {exc}; run `trailguard archive verify`"
                ) from None
        opened.append(hashes)
        level += 1
    builder = TileBuilder(size, opened)
    if builder.root() != root:
        raise ArchiveIntegrityError(
            f"{archive.url}: the tiles at tree size {size} do not lead to the signed root of "
            "that size (a tile was replaced); run `trailguard archive verify`"
        )
    return builder


# -- one segment ----------------------------------------------------------------------------------


class _SegmentTree:
    """Range hashes of the tree [0, end) known from the compact range at ``first`` and the
    leaves [first, end): enough for RFC 9162 consistency proofs from ``first``."""

    def __init__(self, first: int, frontier: list[bytes], leaves: list[bytes]) -> None:
        self.first = first
        self.leaves = leaves
        self.known = dict(zip(merkle.CompactRange.subtree_bounds(first), frontier, strict=True))

    def range_hash(self, begin: int, end: int) -> bytes:
        if end <= self.first:
            return self.known[begin, end]
        if begin >= self.first:
            return merkle.root_of(self.leaves[begin - self.first : end - self.first])
        k = 1 << ((end - begin - 1).bit_length() - 1)
        return merkle.hash_children(
            self.range_hash(begin, begin + k), self.range_hash(begin + k, end)
        )


def _gzip_lines(bodies: list[bytes]) -> bytes:
    """The events file: every canonical event followed by 0x0A, gzip with no name and mtime 0
    (the same events always give the same bytes)."""
    return gzip.compress(b"\n".join(bodies) + b"\n", compresslevel=6, mtime=0)


def read_event_lines(data: bytes) -> list[bytes]:
    """The events of an events file (ValueError when it is not gzip of newline-ended lines)."""
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise ValueError(f"not a gzip file: {exc}") from None
    if text and not text.endswith(b"\n"):
        raise ValueError("the last event is not followed by a newline (a cut-off file)")
    return text.split(b"\n")[:-1]


@dataclass
class _Pending:
    """The segment being built."""

    first: int
    frontier: list[bytes]
    previous_checkpoint: str | None
    bodies: list[bytes] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    tiles: dict[tuple[int, int, int], bytes] = field(default_factory=dict)


class _Writer:
    """Writes one segment's objects (in parallel on S3) and then its manifest."""

    def __init__(self, archive: Archive, config: SealConfig, now: datetime) -> None:
        self.archive = archive
        self.config = config
        self.now = now
        self.retain_until = config.retention.retain_until(now)

    def put(self, key: str, data: bytes, *, same: Callable[[bytes], bool] | None = None) -> str:
        """Write ``key`` once; returns the SHA-256 (hex) of what the archive holds. ``same``
        accepts an object already there whose bytes differ but whose content is the same (a
        rerun under another zlib or pyarrow version)."""
        try:
            self.archive.put_once(
                key, data, mode=self.config.retention.mode, retain_until=self.retain_until
            )
        except ObjectConflictError:
            existing = self.archive.get(key).data
            if same is None or not same(existing):
                raise
            return hashlib.sha256(existing).hexdigest()
        return hashlib.sha256(data).hexdigest()

    def put_many(
        self, items: list[tuple[str, bytes, str, Callable[[bytes], bool] | None]]
    ) -> list[FileEntry]:
        def one(item: tuple[str, bytes, str, Callable[[bytes], bool] | None]) -> FileEntry:
            key, data, role, same = item
            digest = self.put(key, data, same=same)
            size = len(data) if digest == hashlib.sha256(data).hexdigest() else -1
            if size < 0:
                size = len(self.archive.get(key).data)
            return FileEntry(key, role, digest, size)

        if not self.archive.write_once or len(items) < 4:
            return [one(item) for item in items]
        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(one, items))


def _same_events(expected: list[bytes]) -> Callable[[bytes], bool]:
    def check(existing: bytes) -> bool:
        try:
            return read_event_lines(existing) == expected
        except ValueError:
            return False

    return check


def _same_parquet(expected: list[tuple[int, bytes]]) -> Callable[[bytes], bool]:
    def check(existing: bytes) -> bool:
        try:
            return parquet.parquet_rows(existing) == expected
        except Exception:  # any unreadable file is simply not the same
            return False

    return check


def _seal(
    writer: _Writer,
    pending: _Pending,
    signed: checkpoints.SignedCheckpoint,
    builder: TileBuilder,
    origin: str,
) -> Manifest:
    first, size = pending.first, signed.tree_size
    config = writer.config
    if builder.root() != signed.root_hash:
        raise ArchiveIntegrityError(
            f"the events seq {first}..{size - 1} do not lead to the root their checkpoint "
            f"signed (size {size}): the ledger was changed; run `trailguard verify`"
        )
    tree = _SegmentTree(first, pending.frontier, pending.leaves)
    proof = merkle.consistency_proof(first, size, tree.range_hash) if first else []
    for partial in builder.partial_tiles():
        pending.tiles[partial[0], partial[1], partial[2]] = partial[3]
    items: list[tuple[str, bytes, str, Callable[[bytes], bool] | None]] = [
        (
            layout.events_key(first, size),
            _gzip_lines(pending.bodies),
            "events",
            _same_events(pending.bodies),
        )
    ]
    index = SegmentIndex(first, size - 1)
    for offset, document in enumerate(pending.documents):
        index.add(first + offset, document)
    items.append((layout.index_key(first, size), index.to_bytes(), "index", None))
    if config.parquet:
        rows = [
            (first + offset, body, document)
            for offset, (body, document) in enumerate(
                zip(pending.bodies, pending.documents, strict=True)
            )
        ]
        for day, data in sorted(parquet.parquet_by_day(rows).items()):
            day_rows = [(seq, body) for seq, body, document in rows if _day(document) == day]
            items.append(
                (layout.parquet_key(day, first, size), data, "parquet", _same_parquet(day_rows))
            )
    for level, tile_index, width in new_tiles(first, size):
        items.append(
            (
                tile_path(level, tile_index, width),
                pending.tiles[level, tile_index, width],
                "tile",
                None,
            )
        )
    files = writer.put_many(items)
    manifest = Manifest(
        origin=origin,
        first_seq=first,
        tree_size=size,
        first_timestamp=str(pending.documents[0].get("timestamp")),
        last_timestamp=str(pending.documents[-1].get("timestamp")),
        checkpoint=signed.note,
        previous_checkpoint=pending.previous_checkpoint,
        consistency_proof=proof,
        left_frontier=pending.frontier,
        files=files,
        retention=config.retention,
        retain_until=layout.format_time(writer.retain_until),
        sealed_at=layout.format_time(writer.now),
        writer=f"trailguard {__version__}",
    )
    key = layout.manifest_key(first, size)
    try:
        writer.put(key, manifest.to_bytes())
    except ObjectConflictError:
        # Another run sealed this segment first: its manifest stands if it seals the same.
        existing = Manifest.from_bytes(writer.archive.get(key).data)
        if existing.checkpoint != manifest.checkpoint or existing.files != manifest.files:
            raise
        manifest = existing
    return manifest


def _day(document: dict[str, Any]) -> str:
    timestamp = document.get("timestamp")
    return timestamp[:10] if isinstance(timestamp, str) else "unknown"


# -- the run --------------------------------------------------------------------------------------


def _rows(store: Store, start: int, end: int) -> Iterator[LedgerRow]:
    expected = start
    for row in store.rows(start, end):
        if row.seq != expected:
            raise ArchiveIntegrityError(
                f"the ledger has no event at seq {expected} (found seq {row.seq} next): events "
                "were removed; run `trailguard verify`"
            )
        expected += 1
        yield row
    if expected != end:
        raise ArchiveIntegrityError(
            f"the ledger ends at seq {expected - 1}, before its own checkpoint at seq {end - 1}"
        )


def check_bucket(archive: Archive) -> str:
    """Refuse an S3 bucket without Object Lock; returns what was found, for the status line."""
    if not archive.write_once:
        return "none (a local directory: not write-once)"
    lock = archive.bucket_lock()
    if not lock.enabled:
        raise ArchiveConfigError(
            f"{archive.url}: the bucket has no Object Lock, so archived segments could be "
            "deleted or overwritten. Create the bucket with Object Lock enabled "
            "(aws s3api create-bucket --object-lock-enabled-for-bucket ...) and archive there"
        )
    default = ""
    if lock.default_mode:
        span = (
            f"{lock.default_years} year(s)" if lock.default_years else f"{lock.default_days} day(s)"
        )
        default = f", default retention {lock.default_mode} {span}"
    return f"Object Lock enabled{default}, versioning {lock.versioning or 'unknown'}"


def archive_ledger(
    store: Store,
    verifier: Verifier,
    archive: Archive,
    config: SealConfig,
    *,
    now: datetime | None = None,
    progress: Progress | None = None,
    read_back: Callable[[Archive, SealedSegment, Verifier, SealedSegment | None], object]
    | None = None,
) -> RunResult:
    """Seal every checkpointed event not yet in ``archive``, then export the checkpoints.

    ``read_back`` checks each sealed segment as read back from the archive (the verifier's
    ``check_sealed_segment``); it raises to stop the run."""
    if config.segment_events < 1:
        raise ArchiveConfigError("--segment-events must be at least 1")
    if config.parquet and not parquet.available():
        raise ArchiveConfigError(
            "the Parquet copy needs pyarrow: pip install 'trailguard[archive]' (or --no-parquet)"
        )
    check_bucket(archive)
    now = now or datetime.now(UTC)
    result = RunResult(ledger_size=store.tree_size())
    origin = store.get_meta("origin") or verifier.name
    previous = last_sealed(archive, verifier)
    start = previous.manifest.tree_size if previous else 0
    result.archived_size = start
    if previous is not None:
        check_ledger_extends(store, previous, archive)
        builder = tiles_at(archive, start, previous.checkpoint.root_hash)
    else:
        builder = TileBuilder()
    last_checkpoint = store.last_row_of_type(_CHECKPOINT)
    end = last_checkpoint.seq if last_checkpoint is not None else 0
    writer = _Writer(archive, config, now)
    if end > start:
        pending = _Pending(
            start,
            builder.compact_range(),
            previous.checkpoint.note if previous else None,
        )
        total = end - start
        for row in _rows(store, start, end + 1):
            body = bytes(row.body)
            leaf = merkle.hash_leaf(body)
            if leaf != bytes(row.leaf_hash):
                raise ArchiveIntegrityError(
                    f"seq {row.seq}: the event's bytes no longer match the leaf hash written "
                    "with them; refusing to archive a changed event. Run `trailguard verify`"
                )
            document = orjson.loads(body)
            if document.get("eventType") == _CHECKPOINT and row.seq > pending.first:
                cut = row.seq == end or _due(pending, row.seq, document, config)
                if cut:
                    signed = _signed_checkpoint(document, row.seq, verifier)
                    manifest = _seal(writer, pending, signed, builder, origin)
                    sealed = SealedSegment(
                        manifest,
                        hashlib.sha256(manifest.to_bytes()).hexdigest(),
                        signed,
                    )
                    if read_back is not None:
                        read_back(archive, sealed, verifier, previous)
                    result.sealed.append(manifest)
                    result.archived_size = manifest.tree_size
                    previous = sealed
                    if progress is not None:
                        progress(row.seq - start, total)
                    pending = _Pending(row.seq, builder.compact_range(), signed.note)
                    if row.seq == end:
                        break
            pending.bodies.append(body)
            pending.leaves.append(leaf)
            pending.documents.append(document)
            builder.append(leaf)
            for level, index, width, data in builder.completed:
                pending.tiles[level, index, width] = data
            builder.completed.clear()
    result.checkpoints_exported = export_checkpoints(store, verifier, archive, config, now)
    return result


def _due(pending: _Pending, seq: int, checkpoint: dict[str, Any], config: SealConfig) -> bool:
    if seq - pending.first >= config.segment_events:
        return True
    if not config.daily or not pending.documents:
        return False
    return _day(checkpoint) != _day(pending.documents[0])


def _signed_checkpoint(
    document: dict[str, Any], seq: int, verifier: Verifier
) -> checkpoints.SignedCheckpoint:
    note = document.get("note")
    try:
        if not isinstance(note, str):
            raise checkpoints.CheckpointError("the checkpoint event carries no note")
        signed = checkpoints.open_checkpoint(note, verifier)
    except checkpoints.CheckpointError as exc:
        raise ArchiveIntegrityError(
            f"checkpoint at seq {seq} does not verify: {exc}; run `trailguard verify`"
        ) from None
    if signed.tree_size != seq:
        raise ArchiveIntegrityError(
            f"checkpoint at seq {seq} signs tree size {signed.tree_size}, not {seq}"
        )
    return signed


def check_ledger_extends(store: Store, sealed: SealedSegment, archive: Archive) -> None:
    """The local ledger must extend what the archive sealed: same root at the sealed size."""
    size = sealed.manifest.tree_size
    held = store.tree_size()
    if held < size:
        raise ArchiveIntegrityError(
            f"the ledger holds {held} events but {archive.url} sealed {size}: the ledger was "
            "truncated or rolled back after it was archived. Check it with `trailguard verify "
            f"--trusted-checkpoint {archive.url}`"
        )
    try:
        root = StoredTree(store).root(size)
    except LookupError:
        root = b""
    if root != sealed.checkpoint.root_hash:
        raise ArchiveIntegrityError(
            f"the ledger's first {size} events differ from what {archive.url} sealed (a "
            "rewritten history, a fork): nothing more is archived. Check it with `trailguard "
            f"verify --trusted-checkpoint {archive.url}`"
        )


# -- checkpoints off the host ---------------------------------------------------------------------


def export_checkpoints(
    store: Store, verifier: Verifier, archive: Archive, config: SealConfig, now: datetime
) -> int:
    """Write every signed checkpoint (each checkpoint event's note, and the latest signed tree
    head) to ``checkpoints/<size>`` once; returns how many were new."""
    from trailguard.store.base import EventFilter

    existing = {
        layout.parse_seq_element(key.rsplit("/", 1)[-1])
        for key in archive.list_keys(layout.CHECKPOINTS)
    }
    notes: dict[int, str] = {}
    for row in store.query(EventFilter(event_type=_CHECKPOINT)):
        note = checkpoints.note_of_event(bytes(row.body))
        notes[row.seq] = note
    head = store.get_meta(SIGNED_HEAD_KEY)
    if head is not None:
        # An unverifiable head is `trailguard verify`'s finding; it is never exported.
        with contextlib.suppress(checkpoints.CheckpointError):
            notes[checkpoints.open_checkpoint(head, verifier).tree_size] = head
    writer = _Writer(archive, config, now)
    items: list[tuple[str, bytes, str, Callable[[bytes], bool] | None]] = []
    for size, note in sorted(notes.items()):
        if size in existing:
            continue
        try:
            signed = checkpoints.open_checkpoint(note, verifier)
        except checkpoints.CheckpointError:
            continue
        items.append((layout.checkpoint_key(signed.tree_size), note.encode(), "checkpoint", None))
    try:
        writer.put_many(items)
    except ObjectConflictError as exc:
        raise ArchiveIntegrityError(
            f"{exc}: that key holds another signed checkpoint of the same size, so this ledger's "
            "history differs from what was exported before (a fork or a rollback). Check it "
            f"with `trailguard verify --trusted-checkpoint {archive.url}`"
        ) from None
    return len(items)


def latest_exported_checkpoint(
    archive: Archive, verifier: Verifier
) -> checkpoints.SignedCheckpoint:
    """The newest checkpoint in the archive whose signature verifies under ``verifier`` (one
    that does not is skipped: it was not signed by this log's key)."""
    sizes = sorted(
        (size, key)
        for key in archive.list_keys(layout.CHECKPOINTS)
        if (size := layout.parse_seq_element(key.rsplit("/", 1)[-1])) is not None
    )
    for size, key in reversed(sizes):
        try:
            signed = checkpoints.open_checkpoint(archive.get(key).data.decode(), verifier)
        except (checkpoints.CheckpointError, UnicodeDecodeError, MissingObjectError):
            continue
        if signed.tree_size == size:
            return signed
    raise MissingObjectError(
        f"{archive.url} holds no checkpoint signed by {verifier.name}+{verifier.key_id.hex()}"
    )
