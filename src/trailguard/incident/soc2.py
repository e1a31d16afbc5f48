"""The SOC 2 evidence pack for a period: completeness, policy decisions, integrity, retention,
access to the record and identity changes, each section naming the Trust Services Criteria it
supports, as CSV and JSON files plus one HTML summary (and SHA256SUMS of them all).

Every figure is counted from the signed events of the period, the way `trailguard query`
counts them, so an auditor can reproduce each one with a query.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined

from trailguard import __version__
from trailguard.errors import InvalidInputError
from trailguard.events import EventType, format_timestamp
from trailguard.ledger.note import Verifier
from trailguard.ledger.verify import StoreOpener, verify_ledger
from trailguard.retrieval import QueryError, parse_time, summarize_session
from trailguard.store.base import EventFilter, Store

PACK_FORMAT = "trailguard-soc2-pack/v1"

CRITERIA = {
    "completeness": ["CC7.2", "CC4.1"],
    "policyDecisions": ["CC6.1", "CC6.8", "CC8.1"],
    "integrity": ["CC7.2", "PI1.5"],
    "retention": ["CC7.2", "C1.1", "C1.2"],
    "access": ["CC6.1", "CC7.2"],
    "identityChanges": ["CC6.2", "CC6.3"],
}
"""The Trust Services Criteria (AICPA TSC 2017, revised 2022) each section supports evidence
for. The mapping is trailguard's suggestion; the auditor decides what it evidences."""

CRITERIA_TEXT = {
    "CC4.1": "ongoing evaluations of whether controls are present and functioning",
    "CC6.1": "logical access security over protected information assets",
    "CC6.2": "registration and authorisation of users before credentials are issued",
    "CC6.3": "access granted, changed and removed by role",
    "CC6.8": "prevention or detection of unauthorised or malicious software and actions",
    "CC7.2": "monitoring of system components for anomalies",
    "CC8.1": "changes authorised, documented and tracked",
    "C1.1": "confidential information retained to meet objectives",
    "C1.2": "confidential information disposed of to meet objectives",
    "PI1.5": "stored data kept complete, accurate and timely",
}


class PeriodError(InvalidInputError):
    """A --period that is not START..END."""


def parse_period(text: str) -> tuple[str, str]:
    """``START..END`` as [start, end) in the ledger's UTC form. A date as END means the whole
    day (2026-01-01..2026-12-31 is the calendar year); a time as END is exclusive."""
    start_text, separator, end_text = text.partition("..")
    if not separator or not start_text or not end_text:
        raise PeriodError(f"--period must be START..END, e.g. 2026-01-01..2026-12-31, got {text!r}")
    try:
        start = parse_time(start_text, name="--period start")
        if len(end_text) == 10:
            day = date.fromisoformat(end_text) + timedelta(days=1)
            end = format_timestamp(datetime.combine(day, datetime.min.time(), UTC))
        else:
            end = parse_time(end_text, name="--period end")
    except (QueryError, ValueError) as exc:
        raise PeriodError(str(exc)) from None
    if start >= end:
        raise PeriodError(f"--period: {start_text} is not before {end_text}")
    return start, end


@dataclass
class Pack:
    start: str
    end: str
    generated_at: str
    generated_by: str
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, tuple[list[str], list[list[Any]]]] = field(default_factory=dict)
    """file name -> (header, rows) of each CSV."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PACK_FORMAT,
            "period": {"start": self.start, "end": self.end},
            "generatedAt": self.generated_at,
            "generatedBy": self.generated_by,
            "trailguardVersion": __version__,
            "criteria": CRITERIA_TEXT,
            "sections": {
                name: {"criteria": CRITERIA[name]} | body for name, body in self.sections.items()
            },
        }


def build_pack(
    store: Store,
    open_store: StoreOpener,
    verifier: Verifier,
    *,
    start: str,
    end: str,
    generated_by: str,
    key_pinned: bool,
    trusted_checkpoint: str | None = None,
    ledger_bytes: int | None = None,
    workers: int | None = None,
    writer_running: bool = False,
    queued_reads: int | None = None,
    archive: Any = None,
) -> Pack:
    """Build the pack. ``archive`` (an opened ``trailguard.archive`` archive) adds its
    verification to the integrity section and its lock mode and retention to retention."""
    pack = Pack(start, end, format_timestamp(datetime.now(UTC)), generated_by)
    period = EventFilter(since=start, until=end)
    by_session: dict[str, list[dict[str, Any]]] = {}
    denials: Counter[tuple[str, str]] = Counter()
    versions: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    policy_changes: list[dict[str, Any]] = []
    access: list[dict[str, Any]] = []
    identity: list[dict[str, Any]] = []
    for row in store.query(period):
        document = orjson.loads(row.body)
        kind = document["eventType"]
        counts[kind] += 1
        if document.get("sessionId"):
            by_session.setdefault(document["sessionId"], []).append(document)
        if kind == EventType.TOOL_INVOCATION:
            versions[document.get("policyVersion") or "(none)"] += 1
            if document.get("policyResult") in ("denied", "ask"):
                denials[document["policyResult"], document.get("policyRule") or "(none)"] += 1
        elif kind == EventType.POLICY_CHANGE:
            policy_changes.append(document)
        elif kind == EventType.AUDIT_ACCESS:
            access.append(document)
        elif kind == EventType.TOKEN_CHANGE:
            identity.append(document)

    _completeness(pack, by_session, counts)
    pack.sections["policyDecisions"] = {
        "toolCallsDecided": counts[EventType.TOOL_INVOCATION],
        "denied": sum(n for (result, _), n in denials.items() if result == "denied"),
        "asked": sum(n for (result, _), n in denials.items() if result == "ask"),
        "byRule": [
            {"decision": result, "rule": rule, "toolCalls": n}
            for (result, rule), n in sorted(denials.items(), key=lambda item: -item[1])
        ],
        "policyVersions": [{"policyVersion": v, "toolCalls": n} for v, n in versions.items()],
        "policyChanges": len(policy_changes),
        "files": ["denials-by-rule.csv", "policy-versions.csv", "policy-changes.csv"],
    }
    pack.tables["denials-by-rule.csv"] = (
        ["decision", "rule", "toolCalls"],
        [[r, rule, n] for (r, rule), n in sorted(denials.items(), key=lambda item: -item[1])],
    )
    pack.tables["policy-versions.csv"] = (
        ["policyVersion", "toolCalls"],
        [[v, n] for v, n in versions.items()],
    )
    pack.tables["policy-changes.csv"] = (
        ["timestamp", "seq", "policyVersion", "previousVersion", "description"],
        [[d["timestamp"], d["seq"], d.get("policyVersion"), d.get("previousVersion"),
          d.get("description")] for d in policy_changes],
    )  # fmt: skip
    _integrity(
        pack, store, open_store, verifier, key_pinned, trusted_checkpoint, counts, workers,
        writer_running,
    )  # fmt: skip
    _retention(pack, store, ledger_bytes)
    if archive is not None:
        _archive(pack, archive, verifier, trusted_checkpoint)
    pack.sections["access"] = {
        "reads": len(access),
        "refused": sum(d.get("outcome") == "refused" for d in access),
        "byAction": dict(Counter(str(d.get("action")) for d in access)),
        "queuedNotYetInLedger": queued_reads,
        "files": ["access.csv"],
    }
    pack.tables["access.csv"] = (
        ["timestamp", "seq", "who", "action", "outcome", "resultCount", "query"],
        [[d["timestamp"], d["seq"], d.get("developerId") or d.get("actor"), d.get("action"),
          d.get("outcome") or "allowed", d.get("resultCount"),
          json.dumps(d.get("query") or {}, sort_keys=True)] for d in access],
    )  # fmt: skip
    pack.sections["identityChanges"] = {
        "created": sum(d.get("action") == "created" for d in identity),
        "revoked": sum(d.get("action") == "revoked" for d in identity),
        "files": ["identity-changes.csv"],
    }
    pack.tables["identity-changes.csv"] = (
        ["timestamp", "seq", "action", "tokenId", "role", "subject", "projects", "changedBy"],
        [[d["timestamp"], d["seq"], d.get("action"), d.get("tokenId"), d.get("role"),
          d.get("subjectDeveloperId"), " ".join(d.get("projects") or []), d.get("changedBy")]
         for d in identity],
    )  # fmt: skip
    return pack


def _completeness(
    pack: Pack, by_session: dict[str, list[dict[str, Any]]], counts: Counter[str]
) -> None:
    rows = []
    gaps = []
    for session_id, documents in by_session.items():
        summary = summarize_session(session_id, documents)
        assert summary is not None
        results = sum(d["eventType"] == EventType.TOOL_RESULT for d in documents)
        rows.append(
            [session_id, summary.developer_id, summary.project_id, summary.started_at,
             summary.ended_at, summary.end_reason, summary.tool_calls, results,
             summary.denials, len(summary.gaps), "yes" if summary.complete else "no"]
        )  # fmt: skip
        gaps += [[session_id, gap] for gap in summary.gaps]
    pack.sections["completeness"] = {
        "events": sum(counts.values()),
        "sessions": len(by_session),
        "sessionsStarted": counts[EventType.SESSION_START],
        "sessionsEnded": counts[EventType.SESSION_END],
        "toolCalls": counts[EventType.TOOL_INVOCATION],
        "toolResults": counts[EventType.TOOL_RESULT],
        "gaps": len(gaps),
        "completeSessions": sum(row[-1] == "yes" for row in rows),
        "eventsByType": dict(sorted(counts.items())),
        "definition": "every tool call (toolUseId) has an invocation and a result, error or "
        "denial, counted within the period over the events the hot store holds (events pruned "
        "to the archive are counted by the integrity section's archive verification, not "
        "here); a call whose result falls outside the period is a gap",
        "files": ["completeness-sessions.csv", "completeness-gaps.csv"],
    }
    pack.tables["completeness-sessions.csv"] = (
        ["sessionId", "developerId", "projectId", "startedAt", "endedAt", "endReason",
         "toolCalls", "toolResults", "denials", "gaps", "complete"],
        rows,
    )  # fmt: skip
    pack.tables["completeness-gaps.csv"] = (["sessionId", "gap"], gaps)


def _integrity(
    pack: Pack,
    store: Store,
    open_store: StoreOpener,
    verifier: Verifier,
    key_pinned: bool,
    trusted_checkpoint: str | None,
    counts: Counter[str],
    workers: int | None,
    writer_running: bool,
) -> None:
    report = verify_ledger(
        store, open_store, verifier, trusted_checkpoint=trusted_checkpoint, workers=workers,
        writer_running=writer_running,
    )  # fmt: skip
    pack.sections["integrity"] = {
        "verify": {
            "intact": report.intact,
            "events": report.events,
            "checkpoints": report.checkpoints,
            "latestCheckpointSize": report.latest_checkpoint_size,
            "failures": [str(f) for f in report.failures],
            "warnings": [str(f) for f in report.warnings],
            "keyPinned": key_pinned,
            "trustedCheckpoint": trusted_checkpoint is not None,
        },
        "checkpointsInPeriod": counts[EventType.CHECKPOINT],
        "verifierKey": verifier.to_string(),
        "offHostCheckpoints": "trailguard does not record where its checkpoints were copied; "
        "attach the SIEM's or archive's record of them, and verify with one of them as "
        "--trusted-checkpoint (given for this pack: "
        + ("yes" if trusted_checkpoint else "no")
        + ")",
        "archive": "not configured: this trailguard has no archive",
    }


def _retention(pack: Pack, store: Store, ledger_bytes: int | None) -> None:
    size = store.tree_size()
    first_seq = next(iter(store.seqs()), size)  # after a prune the hot store starts later
    first = next(iter(store.rows(first_seq, first_seq + 1)), None)
    last = next(iter(store.rows(size - 1, size)), None) if size else None
    pack.sections["retention"] = {
        "oldestHotEvent": first.timestamp if first else None,
        "newestHotEvent": last.timestamp if last else None,
        "hotEvents": size - first_seq,
        "firstHotSeq": first_seq,
        "ledgerBytes": ledger_bytes,
        "archive": {"configured": False, "retention": None, "lockMode": None},
        "note": "the hot store keeps every event since the ledger began; nothing is pruned "
        "without an archive",
    }


def _archive(pack: Pack, archive: Any, verifier: Verifier, trusted: str | None) -> None:
    from trailguard.archive.verify import verify_archive

    report = verify_archive(archive, verifier, trusted_checkpoint=trusted, check_parquet=False)
    pack.sections["integrity"]["archive"] = {
        "url": archive.url,
        "intact": report.intact,
        "segments": report.segments,
        "events": report.events,
        "treeSize": report.tree_size,
        "checkpointObjects": report.checkpoint_objects,
        "failures": [str(f) for f in report.failures],
        "warnings": [str(f) for f in report.warnings],
    }
    pack.sections["integrity"]["offHostCheckpoints"] = (
        f"{report.checkpoint_objects} checkpoint(s) in the archive {archive.url}, latest of "
        f"size {report.latest_checkpoint.tree_size if report.latest_checkpoint else None}"
    )
    lock = archive.bucket_lock() if archive.write_once else None
    pack.sections["retention"]["archive"] = {
        "configured": True,
        "url": archive.url,
        "writeOnce": bool(archive.write_once),
        "lockEnabled": lock.enabled if lock else False,
        "lockMode": lock.default_mode if lock else None,
        "retention": (
            f"{lock.default_years} year(s)" if lock and lock.default_years
            else f"{lock.default_days} day(s)" if lock and lock.default_days else None
        ),
        "lockedObjects": report.locked_objects,
        "objects": report.objects,
        "legalHolds": report.legal_holds,
    }  # fmt: skip
    pack.sections["retention"]["note"] = (
        "events leave the hot store only once the archive holds them verified (archive prune)"
    )


def _csv(header: list[str], rows: list[list[Any]], cell: Callable[[object], str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return buffer.getvalue().encode()


def render_summary(pack: Pack) -> str:
    environment = Environment(
        loader=PackageLoader("trailguard.incident", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )
    return environment.get_template("soc2.html.j2").render(
        pack=pack, document=pack.to_json(), criteria=CRITERIA, criteria_text=CRITERIA_TEXT
    )


def write_pack(pack: Pack, directory: Path, cell: Callable[[object], str]) -> dict[str, str]:
    """Write every file of the pack into ``directory`` (created), then SHA256SUMS; returns
    {file: sha256}. ``cell`` makes CSV values safe for spreadsheets."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {
        name: _csv(header, rows, cell) for name, (header, rows) in pack.tables.items()
    }
    files["pack.json"] = orjson.dumps(pack.to_json(), option=orjson.OPT_INDENT_2)
    files["summary.html"] = render_summary(pack).encode()
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
    files["SHA256SUMS"] = "".join(f"{d}  {n}\n" for n, d in sums.items()).encode()
    for name, data in files.items():
        temporary = directory / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, directory / name)
    return sums
