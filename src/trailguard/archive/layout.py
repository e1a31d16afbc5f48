"""The archive's object names and its two JSON documents (segment manifest, segment index), as
specified in docs/archive-format.md. Documents are RFC 8785 canonical JSON, so the same content
is always the same bytes (a rerun writes identical objects)."""

from __future__ import annotations

import base64
import binascii
import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from trailguard.archive.backends import LOCK_MODES, ArchiveConfigError, LockMode
from trailguard.errors import VerificationError
from trailguard.ledger.canonical import canonical_json

MANIFEST_FORMAT = "trailguard-archive-segment/v1"
INDEX_FORMAT = "trailguard-archive-index/v1"
SEGMENTS = "segments/"
CHECKPOINTS = "checkpoints/"
PARQUET = "parquet/"


class ManifestError(VerificationError):
    """A manifest or index that is not what the format says; the message names the field."""


def segment_dir(first_seq: int, tree_size: int) -> str:
    """``segments/<first seq>-<tree size>/``, both 20 digits: the events [first, size)."""
    return f"{SEGMENTS}{first_seq:020d}-{tree_size:020d}/"


def manifest_key(first_seq: int, tree_size: int) -> str:
    return segment_dir(first_seq, tree_size) + "manifest.json"


def events_key(first_seq: int, tree_size: int) -> str:
    return segment_dir(first_seq, tree_size) + "events.jsonl.gz"


def index_key(first_seq: int, tree_size: int) -> str:
    return segment_dir(first_seq, tree_size) + "index.json"


def parquet_key(day: str, first_seq: int, tree_size: int) -> str:
    return f"{PARQUET}date={day}/{first_seq:020d}-{tree_size:020d}.parquet"


def checkpoint_key(tree_size: int) -> str:
    return f"{CHECKPOINTS}{tree_size:020d}"


def parse_seq_element(element: str) -> int | None:
    """The number a 20-digit key element names, or None when it is not one."""
    if len(element) == 20 and element.isascii() and element.isdigit():
        return int(element)
    return None


def parse_segment_element(element: str) -> tuple[int, int] | None:
    """(first seq, tree size) of a ``<first>-<size>`` key element, or None."""
    first, dash, size = element.partition("-")
    start, end = parse_seq_element(first), parse_seq_element(size)
    if not dash or start is None or end is None or end <= start:
        return None
    return start, end


# -- retention ------------------------------------------------------------------------------------

PRESETS = {"soc2": 1, "hipaa": 6}
"""Years of retention per preset: SOC 2 (one year of audit evidence), HIPAA (six years)."""


def _add_years(moment: datetime, years: int) -> datetime:
    year = moment.year + years
    day = min(moment.day, calendar.monthrange(year, moment.month)[1])  # 29 Feb -> 28 Feb
    return moment.replace(year=year, day=day)


@dataclass(frozen=True)
class Retention:
    """How long archived objects are locked, and in which Object Lock mode."""

    mode: LockMode = "COMPLIANCE"
    years: int | None = 1
    days: int | None = None
    hot_days: int = field(default=90, compare=False)
    """Days of events kept in the hot store (not part of the lock; the prune policy)."""

    @classmethod
    def build(
        cls,
        preset: str | None,
        days: int | None,
        mode: str = "COMPLIANCE",
        hot_days: int = 90,
    ) -> Retention:
        """From CLI options; raises ArchiveConfigError naming the option."""
        if mode.upper() not in LOCK_MODES:
            raise ArchiveConfigError(f"--lock-mode must be COMPLIANCE or GOVERNANCE, got {mode!r}")
        if hot_days < 0:
            raise ArchiveConfigError("--hot-days must be 0 or more")
        lock_mode: LockMode = "COMPLIANCE" if mode.upper() == "COMPLIANCE" else "GOVERNANCE"
        if preset is not None and days is not None:
            raise ArchiveConfigError("give --retention or --retention-days, not both")
        if days is not None:
            if days < 1:
                raise ArchiveConfigError("--retention-days must be at least 1")
            return cls(lock_mode, None, days, hot_days)
        name = (preset or "soc2").lower()
        if name not in PRESETS:
            raise ArchiveConfigError(
                f"--retention {preset!r}: one of {', '.join(PRESETS)} (or --retention-days N)"
            )
        return cls(lock_mode, PRESETS[name], None, hot_days)

    def retain_until(self, start: datetime) -> datetime:
        """The retain-until date for an object whose retention starts at ``start``, rounded up
        to a whole second (S3 keeps seconds)."""
        end = _add_years(start, self.years) if self.years is not None else start
        if self.days is not None:
            end += timedelta(days=self.days)
        if end.microsecond:
            end = end.replace(microsecond=0) + timedelta(seconds=1)
        return end

    def describe(self) -> str:
        span = f"{self.years} year(s)" if self.years is not None else f"{self.days} day(s)"
        return f"{self.mode} for {span}"

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "years": self.years, "days": self.days}

    @classmethod
    def from_json(cls, value: Any) -> Retention:
        if not isinstance(value, dict) or value.get("mode") not in LOCK_MODES:
            raise ManifestError("manifest retention must name a lock mode")
        years, days = value.get("years"), value.get("days")
        for name, number in (("years", years), ("days", days)):
            if number is not None and (not isinstance(number, int) or number < 1):
                raise ManifestError(f"manifest retention {name} must be a positive integer")
        if years is None and days is None:
            raise ManifestError("manifest retention names neither years nor days")
        return cls(value["mode"], years, days)


def parse_time(text: str) -> datetime:
    """A ledger timestamp (RFC 3339, UTC, ``Z``) as a datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


# -- documents ------------------------------------------------------------------------------------


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ManifestError(f"{what} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ManifestError(f"{what} is not valid base64") from None


@dataclass(frozen=True)
class FileEntry:
    key: str
    role: str
    """events, index, parquet or tile."""
    sha256: str
    """Hex SHA-256 of the object's bytes."""
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "role": self.role, "sha256": self.sha256, "size": self.size}


ROLES = ("events", "index", "parquet", "tile")


@dataclass(frozen=True)
class Manifest:
    """What seals one segment: the events [first_seq, tree_size), the signed checkpoint of
    ``tree_size`` that ends it, and the SHA-256 of every object written for it."""

    origin: str
    first_seq: int
    tree_size: int
    first_timestamp: str
    last_timestamp: str
    checkpoint: str
    previous_checkpoint: str | None
    consistency_proof: list[bytes]
    left_frontier: list[bytes]
    files: list[FileEntry]
    retention: Retention
    retain_until: str
    sealed_at: str
    writer: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def last_seq(self) -> int:
        return self.tree_size - 1

    @property
    def count(self) -> int:
        return self.tree_size - self.first_seq

    def file(self, role: str) -> FileEntry:
        for entry in self.files:
            if entry.role == role:
                return entry
        raise ManifestError(f"manifest of segment {self.first_seq} names no {role} file")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "origin": self.origin,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "count": self.count,
            "treeSize": self.tree_size,
            "firstTimestamp": self.first_timestamp,
            "lastTimestamp": self.last_timestamp,
            "checkpoint": self.checkpoint,
            "previousCheckpoint": self.previous_checkpoint,
            "consistencyProof": [b64(node) for node in self.consistency_proof],
            "leftFrontier": [b64(node) for node in self.left_frontier],
            "files": [entry.to_json() for entry in self.files],
            "retention": {**self.retention.to_json(), "retainUntil": self.retain_until},
            "sealedAt": self.sealed_at,
            "writer": self.writer,
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ManifestError(f"manifest is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise ManifestError("manifest is not a JSON object")
        if document.get("format") != MANIFEST_FORMAT:
            raise ManifestError(
                f"manifest format is {document.get('format')!r}, not {MANIFEST_FORMAT}"
            )

        def number(name: str) -> int:
            value = document.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ManifestError(f"manifest field {name} must be a non-negative integer")
            return value

        def text(name: str, *, optional: bool = False) -> Any:
            value = document.get(name)
            if value is None and optional:
                return None
            if not isinstance(value, str):
                raise ManifestError(f"manifest field {name} must be a string")
            return value

        first, size = number("firstSeq"), number("treeSize")
        if size <= first:
            raise ManifestError("manifest treeSize must be greater than firstSeq")
        if number("lastSeq") != size - 1 or number("count") != size - first:
            raise ManifestError("manifest lastSeq and count disagree with firstSeq and treeSize")
        files = []
        raw_files = document.get("files")
        if not isinstance(raw_files, list):
            raise ManifestError("manifest field files must be a list")
        for position, entry in enumerate(raw_files):
            if not isinstance(entry, dict):
                raise ManifestError(f"manifest files[{position}] is not an object")
            key, role, digest, length = (
                entry.get("key"),
                entry.get("role"),
                entry.get("sha256"),
                entry.get("size"),
            )
            if (
                not isinstance(key, str)
                or role not in ROLES
                or not isinstance(digest, str)
                or len(digest) != 64
                or not isinstance(length, int)
            ):
                raise ManifestError(f"manifest files[{position}] needs key, role, sha256, size")
            files.append(FileEntry(key, role, digest, length))
        for name in ("consistencyProof", "leftFrontier"):
            if not isinstance(document.get(name), list):
                raise ManifestError(f"manifest field {name} must be a list")
        retention = document.get("retention")
        return cls(
            origin=text("origin"),
            first_seq=first,
            tree_size=size,
            first_timestamp=text("firstTimestamp"),
            last_timestamp=text("lastTimestamp"),
            checkpoint=text("checkpoint"),
            previous_checkpoint=text("previousCheckpoint", optional=True),
            consistency_proof=[
                unb64(node, f"consistencyProof[{i}]")
                for i, node in enumerate(document["consistencyProof"])
            ],
            left_frontier=[
                unb64(node, f"leftFrontier[{i}]") for i, node in enumerate(document["leftFrontier"])
            ],
            files=files,
            retention=Retention.from_json(retention),
            retain_until=_retain_until(retention),
            sealed_at=text("sealedAt"),
            writer=text("writer"),
        )


def _retain_until(retention: Any) -> str:
    value = retention.get("retainUntil") if isinstance(retention, dict) else None
    if not isinstance(value, str):
        raise ManifestError("manifest retention must give retainUntil")
    return value


IndexEntry = dict[str, int]
"""{"first": seq, "last": seq, "count": n}: where one value occurs in a segment."""


@dataclass
class SegmentIndex:
    """Session, developer, project and UTC date -> the seqs of a segment where they occur."""

    first_seq: int
    last_seq: int
    sessions: dict[str, IndexEntry] = field(default_factory=dict)
    developers: dict[str, IndexEntry] = field(default_factory=dict)
    projects: dict[str, IndexEntry] = field(default_factory=dict)
    dates: dict[str, IndexEntry] = field(default_factory=dict)

    def add(self, seq: int, document: dict[str, Any]) -> None:
        timestamp = document.get("timestamp")
        for table, value in (
            (self.sessions, document.get("sessionId")),
            (self.developers, document.get("developerId")),
            (self.projects, document.get("projectId")),
            (self.dates, timestamp[:10] if isinstance(timestamp, str) else None),
        ):
            if value.__class__ is not str:
                continue
            entry = table.get(value)
            if entry is None:
                table[value] = {"first": seq, "last": seq, "count": 1}
            else:
                entry["last"] = seq
                entry["count"] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "sessions": self.sessions,
            "developers": self.developers,
            "projects": self.projects,
            "dates": self.dates,
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> SegmentIndex:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ManifestError(f"index is not JSON: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != INDEX_FORMAT:
            raise ManifestError(f"index is not a {INDEX_FORMAT} document")
        tables = []
        for name in ("sessions", "developers", "projects", "dates"):
            table = document.get(name)
            if not isinstance(table, dict):
                raise ManifestError(f"index field {name} must be an object")
            tables.append(table)
        first, last = document.get("firstSeq"), document.get("lastSeq")
        if not isinstance(first, int) or not isinstance(last, int):
            raise ManifestError("index firstSeq and lastSeq must be integers")
        return cls(first, last, *tables)


def _day(timestamp: Any) -> str | None:
    return timestamp[:10] if isinstance(timestamp, str) and len(timestamp) >= 10 else None
