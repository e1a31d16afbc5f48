"""One import, from raw file bytes to events: shared by ``trailguard correlate`` (writing to a
ledger it opened) and ``POST /v1/correlate/...`` (the gateway writing to its own).

The caller appends the events and counts the receipts (``importer.count_receipts``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from trailguard.correlate.cloudtrail import CloudTrailFileError, LogFile
from trailguard.correlate.digest import DigestSet
from trailguard.correlate.importer import AppLogFields, Correlator
from trailguard.events import Event

Kind = Literal["cloudtrail", "jsonl"]


@dataclass(frozen=True)
class RawFile:
    """A file as read: its name (path, ``s3://`` URI) and raw, possibly gzip'd, bytes."""

    name: str
    raw: bytes
    digest: bool = False
    signature: str | None = None
    """For a CloudTrail digest read from S3: its ``x-amz-meta-signature``."""


def correlate_files(
    correlator: Correlator,
    files: Iterable[RawFile],
    kind: Kind,
    *,
    fields: AppLogFields | None = None,
    digests: DigestSet | None = None,
) -> list[Event]:
    """Events for every record of ``files``; unreadable files become problems of the report.
    CloudTrail digests among them are checked first (``digests``), so that the log files they
    cover are recorded as ``digest_verified``."""
    logs: list[LogFile] = []
    for file in files:
        try:
            if file.digest:
                if digests is not None:
                    digests.add(file.name, file.raw, file.signature)
                continue
            logs.append(LogFile.from_bytes(file.name, file.raw))
        except CloudTrailFileError as exc:
            correlator.report.files += 1
            correlator.report.problems.append(str(exc))
    if digests is not None:
        digests.resolve()
        correlator.verified_files = digests.covers
        correlator.report.problems.extend(digests.new_problems())
    events: list[Event] = []
    for log in logs:
        if kind == "cloudtrail":
            events.extend(correlator.cloudtrail(log))
        else:
            assert fields is not None, "a JSON-lines import names its session field"
            events.extend(correlator.application(log, fields))
    return events
