"""Finding archived events: the per-segment indexes answer "which segments hold session S,
developer D, project P, date Y" without fetching any segment; a query then fetches only those
segments, checks each against its signed checkpoint, and filters their events."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from trailguard.archive import layout
from trailguard.archive.backends import Archive, ArchiveConfigError, MissingObjectError
from trailguard.archive.layout import Manifest, SegmentIndex
from trailguard.archive.seal import ArchiveIntegrityError, read_event_lines, sealed_manifest_keys
from trailguard.ledger import checkpoint as checkpoints
from trailguard.ledger import merkle
from trailguard.ledger.note import Verifier
from trailguard.retrieval import EventQuery


@dataclass(frozen=True)
class Hit:
    """Where one looked-up value occurs in one segment."""

    first_seq: int
    tree_size: int
    matched_first: int
    matched_last: int
    count: int
    events_key: str

    def to_json(self) -> dict[str, Any]:
        return {
            "segment": f"{self.first_seq}..{self.tree_size - 1}",
            "firstSeq": self.matched_first,
            "lastSeq": self.matched_last,
            "count": self.count,
            "events": self.events_key,
        }


def _indexes(archive: Archive) -> Iterator[tuple[int, int, SegmentIndex]]:
    spans = [(first, size) for first, size, _ in sealed_manifest_keys(archive)]

    def one(span: tuple[int, int]) -> tuple[int, int, SegmentIndex]:
        stored = archive.get(layout.index_key(*span))
        return span[0], span[1], SegmentIndex.from_bytes(stored.data)

    if archive.write_once and len(spans) > 1:
        with ThreadPoolExecutor(max_workers=16) as pool:
            yield from pool.map(one, spans)
    else:
        yield from map(one, spans)


def find(
    archive: Archive,
    *,
    session: str | None = None,
    developer: str | None = None,
    project: str | None = None,
    day: str | None = None,
) -> list[Hit]:
    """The segments (and seq ranges) whose index names every given value."""
    wanted = [
        (table, value)
        for table, value in (
            ("sessions", session),
            ("developers", developer),
            ("projects", project),
            ("dates", day),
        )
        if value is not None
    ]
    if not wanted:
        raise ArchiveConfigError("give --session, --developer, --project or --date")
    hits = []
    for first, size, index in _indexes(archive):
        entries = [getattr(index, table).get(value) for table, value in wanted]
        if any(entry is None for entry in entries):
            continue
        matched = [entry for entry in entries if entry is not None]
        hits.append(
            Hit(
                first,
                size,
                max(entry["first"] for entry in matched),
                min(entry["last"] for entry in matched),
                min(entry["count"] for entry in matched),
                layout.events_key(first, size),
            )
        )
    return hits


def _segment_events(
    archive: Archive, first: int, size: int, verifier: Verifier
) -> list[tuple[bytes, dict[str, Any]]]:
    """A segment's events, checked on the way: the events file against its manifest, the
    manifest's checkpoint under the key, the events' root against that checkpoint."""
    where = f"{archive.url} segment seq {first}..{size - 1}"
    try:
        manifest = Manifest.from_bytes(archive.get(layout.manifest_key(first, size)).data)
        entry = manifest.file("events")
        data = archive.get(entry.key).data
    except MissingObjectError as exc:
        raise ArchiveIntegrityError(f"{where}: {exc}") from None
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise ArchiveIntegrityError(f"{where}: the events differ from what was sealed")
    try:
        signed = checkpoints.open_checkpoint(manifest.checkpoint, verifier)
    except checkpoints.CheckpointError as exc:
        raise ArchiveIntegrityError(f"{where}: its checkpoint {exc}") from None
    lines = read_event_lines(data)
    tree = merkle.CompactRange(first, manifest.left_frontier)
    for body in lines:
        tree.append(merkle.hash_leaf(body))
    if signed.tree_size != size or tree.root() != signed.root_hash:
        raise ArchiveIntegrityError(
            f"{where}: the events do not lead to the root their checkpoint signed; run "
            "`trailguard archive verify`"
        )
    return [(body, orjson.loads(body)) for body in lines]


def _matches(document: dict[str, Any], query: EventQuery) -> bool:
    wanted = query.filter
    for field_name, value in (
        ("sessionId", wanted.session_id),
        ("developerId", wanted.developer_id),
        ("projectId", wanted.project_id),
        ("eventType", wanted.event_type),
    ):
        if value is not None and document.get(field_name) != value:
            return False
    if wanted.tool is not None:
        tool = document.get("tool")
        if not isinstance(tool, str) or tool.lower() != wanted.tool.lower():
            return False
    timestamp = document.get("timestamp")
    if not isinstance(timestamp, str):
        return False
    if wanted.since is not None and timestamp < wanted.since:
        return False
    if wanted.until is not None and timestamp >= wanted.until:
        return False
    return not (query.decision is not None and document.get("policyResult") != query.decision)


def archived_events(
    archive: Archive, query: EventQuery, verifier: Verifier, *, below: int | None = None
) -> Iterator[dict[str, Any]]:
    """Archived events matching ``query`` (without limit or offset), from only the segments
    the indexes name; ``below``: only seqs under it (the rest are still in the hot store)."""
    for _, document in archived_bodies(archive, query, verifier, below=below):
        yield document


def archived_bodies(
    archive: Archive, query: EventQuery, verifier: Verifier, *, below: int | None = None
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Like :func:`archived_events`, each with its exact canonical bytes (for proofs)."""
    wanted = query.filter
    spans: list[tuple[int, int]] | None = None
    if wanted.session_id or wanted.developer_id or wanted.project_id:
        spans = [
            (hit.first_seq, hit.tree_size)
            for hit in find(
                archive,
                session=wanted.session_id,
                developer=wanted.developer_id,
                project=wanted.project_id,
            )
        ]
    if wanted.since is not None or wanted.until is not None:
        by_date = []
        for first, size, index in _indexes(archive):
            days = [day for day in index.dates if _day_overlaps(day, wanted.since, wanted.until)]
            if days:
                by_date.append((first, size))
        spans = by_date if spans is None else [span for span in spans if span in set(by_date)]
    if spans is None:
        spans = [(first, size) for first, size, _ in sealed_manifest_keys(archive)]
    for first, size in spans:
        if below is not None and first >= below:
            continue
        for body, document in _segment_events(archive, first, size, verifier):
            seq = document.get("seq")
            if below is not None and isinstance(seq, int) and seq >= below:
                break
            if _matches(document, query):
                yield body, document


def _day_overlaps(day: str, since: str | None, until: str | None) -> bool:
    start, end = f"{day}T00:00:00.000Z", f"{day}T23:59:59.999Z"
    return not ((since is not None and end < since) or (until is not None and start >= until))
