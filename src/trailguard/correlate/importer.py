"""Downstream records into redacted ``downstream_record`` events, joined to their session and
tool call, with the alerts they raise.

What a record says is a claim, so the importer decides what it can and marks the rest:

* The session is the one the record names (CloudTrail: ``app/trailguard-<id>`` in the
  User-Agent the AWS caller sent). A session the ledger does not know is not invented: its
  records are counted and skipped. An importer limited to one developer (an agent token) cannot
  attach records to anyone else's session.
* ``authenticity`` is ``digest_verified`` only when CloudTrail's signed digest, checked against
  a pinned AWS public key, covers the file's bytes; otherwise ``unverified``.
* Event ids come from the redacted record's content (and its authenticity): importing a file
  twice records each record once, while a second, different record claiming the same CloudTrail
  ``eventID`` is recorded beside the first with a ``conflicting_record`` alert. It can never
  displace the first, nor be displaced by it.
* A CloudTrail record that no tool call explains raises ``unexplained_activity``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import orjson
from pydantic import JsonValue

from trailguard.capture.claude_code import cap_value
from trailguard.correlate.cloudtrail import (
    CloudTrailFileError,
    CloudTrailRecord,
    LogFile,
    RecordProblem,
    parse_log_file,
)
from trailguard.correlate.matching import (
    DEFAULT_CLOCK_SKEW,
    EXPLAINED,
    Match,
    Observed,
    SessionTimeline,
    parse_time,
)
from trailguard.events import (
    Alert,
    DownstreamRecord,
    Event,
    EventType,
    format_timestamp,
    utc_now,
)
from trailguard.ledger.canonical import canonical_json
from trailguard.redact import Redactor
from trailguard.store.base import EventFilter, Store

__all__ = [
    "DETAILS_CAP",
    "Correlator",
    "ImportOptions",
    "ImportReport",
]

DETAILS_CAP: Final = 32 * 1024
"""A record's details (request parameters, response elements...) are stored up to this many
bytes of canonical JSON, else as a preview with the full length and hash."""
FUTURE_ALLOWANCE: Final = timedelta(minutes=5)
_CLOUDTRAIL_PRECISION: Final = timedelta(seconds=1)

# CloudTrail fields the event carries in its own fields, not again in ``details``.
_PROMOTED: Final = frozenset(
    {"eventID", "eventTime", "eventSource", "eventName", "awsRegion", "sourceIPAddress",
     "userAgent", "errorCode", "errorMessage"}
)  # fmt: skip
_SEVERITY_UNEXPLAINED: Final[Mapping[tuple[str, str], Literal["low", "medium", "high"]]] = {
    ("time", "read"): "low",
    ("time", "write"): "medium",
    ("none", "read"): "medium",
}


def _uuid8(material: bytes) -> str:
    """A UUID version 8 (RFC 9562 section 5.8) from SHA-256 of ``material``."""
    digest = bytearray(hashlib.sha256(material).digest())
    digest[6] = (digest[6] & 0x0F) | 0x80
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest[:16])))


@dataclass(frozen=True)
class ImportOptions:
    imported_by: str
    """Who imports (``os:<user>`` for the CLI, the token's developer through the API)."""
    skew: timedelta = DEFAULT_CLOCK_SKEW
    since: str | None = None
    """Only records at or after this time (ledger form), and before ``until``."""
    until: str | None = None
    only_developer: str | None = None
    """When set, records may only join sessions of this developer (an agent token's import)."""


@dataclass
class ImportReport:
    files: int = 0
    records: int = 0
    """Records read (well-formed)."""
    attributed: int = 0
    """Records that named a session of this ledger and were turned into events."""
    unrelated: int = 0
    """Records that name no trailguard session (another tool's, another user's)."""
    outside_range: int = 0
    verified: int = 0
    unexplained: int = 0
    conflicts: int = 0
    appended: int = 0
    already_recorded: int = 0
    matches: Counter[str] = field(default_factory=Counter)
    unknown_sessions: Counter[str] = field(default_factory=Counter)
    refused_sessions: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "attributed": self.attributed,
            "appended": self.appended,
            "alreadyRecorded": self.already_recorded,
            "unrelated": self.unrelated,
            "outsideRange": self.outside_range,
            "verified": self.verified,
            "unexplained": self.unexplained,
            "conflicts": self.conflicts,
            "matches": dict(self.matches),
            "unknownSessions": dict(self.unknown_sessions),
            "refusedSessions": dict(self.refused_sessions),
            "problems": self.problems[:200],
        }


@dataclass
class _Session:
    session_id: str
    developer_id: str | None
    project_id: str | None
    started_at: datetime | None
    timeline: SessionTimeline
    records: dict[str, set[str]]
    """recordId → recordSha256 of the downstream records already joined to the session."""
    principals: set[str] = field(default_factory=set)
    """AWS principals of the session's CloudTrail records that a tool call explained: the
    identity the agent's AWS calls really use, against which a new record's is compared."""


@dataclass(frozen=True)
class AppLogFields:
    """Where an application's JSON-lines entries keep what joining needs (dotted paths)."""

    session: str
    time: str | None = None
    id: str | None = None
    name: str | None = None
    app: str | None = None
    """The application's name, recorded as ``service``."""


_TIME_FIELDS: Final = ("timestamp", "time", "ts", "@timestamp", "datetime")
_NAME_FIELDS: Final = ("event", "msg", "message")


def _lookup(entry: Mapping[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _entry_time(value: Any) -> datetime | None:
    """RFC 3339 text (a time without an offset is taken as UTC) or a Unix time in seconds or
    milliseconds."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, UTC)
        if isinstance(value, str) and 10 <= len(value) <= 40:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _capped(value: dict[str, Any]) -> dict[str, JsonValue]:
    capped = cap_value(value, DETAILS_CAP)
    if not capped.truncated:
        return value
    return {
        "trailguardTruncated": {
            "preview": capped.value,
            "length": capped.length,
            "sha256": capped.sha256,
        }
    }


def _format(moment: datetime) -> str:
    return format_timestamp(moment)


class Correlator:
    """Turns the records of one import into events; sessions are read from ``store`` once."""

    def __init__(
        self,
        store: Store,
        redactor: Redactor,
        options: ImportOptions,
        *,
        verified_files: Callable[[LogFile], bool] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.redactor = redactor
        self.options = options
        self.verified_files = verified_files
        self.report = ImportReport()
        self._now = now
        self._sessions: dict[str, _Session | None] = {}
        self._seen: set[str] = set()

    # -- sessions ---------------------------------------------------------------------------------

    def _session(self, session_id: str) -> _Session | None:
        if session_id in self._sessions:
            return self._sessions[session_id]
        documents = []
        developer = project = None
        started = None
        records: dict[str, set[str]] = {}
        principals: set[str] = set()

        for row in self.store.query(EventFilter(session_id=session_id)):
            document = orjson.loads(row.body)
            developer = developer or document.get("developerId")
            project = project or document.get("projectId")
            kind = document.get("eventType")
            if kind == EventType.SESSION_START and started is None:
                started = parse_time(document["timestamp"])
                developer = document.get("developerId") or developer
            elif kind == EventType.DOWNSTREAM_RECORD:
                records.setdefault(document["recordId"], set()).add(
                    document.get("recordSha256") or ""
                )
                if document.get("match") in EXPLAINED and document.get("principal"):
                    principals.add(document["principal"])
            if kind in (EventType.TOOL_INVOCATION, EventType.TOOL_RESULT, EventType.SESSION_END):
                documents.append(document)
        found = (
            _Session(
                session_id,
                developer,
                project,
                started,
                SessionTimeline.from_documents(documents),
                records,
                principals,
            )
            if developer is not None or documents or started is not None
            else None
        )
        self._sessions[session_id] = found
        return found

    def _owned(self, session: _Session) -> bool:
        wanted = self.options.only_developer
        return wanted is None or session.developer_id == wanted

    def _in_range(self, record_time: str) -> bool:
        since, until = self.options.since, self.options.until
        return (since is None or record_time >= since) and (until is None or record_time < until)

    def _match(self, session: _Session, observed: Observed) -> Match:
        skew = self.options.skew
        if observed.time > self._now() + FUTURE_ALLOWANCE:
            return Match("none", None, "the record claims a time in the future")
        if session.started_at is not None and observed.time < session.started_at - skew:
            return Match(
                "none",
                None,
                f"the record's time is before the session started ({_format(session.started_at)})",
            )
        ended = session.timeline.ended_at
        if ended is not None and observed.time > ended + skew:
            return Match(
                "none", None, f"the record's time is after the session ended ({_format(ended)})"
            )
        return session.timeline.match(observed, skew=skew)

    # -- CloudTrail -------------------------------------------------------------------------------

    def cloudtrail(self, log: LogFile) -> list[Event]:
        """Events for every record of ``log`` that names a session of this ledger."""
        self.report.files += 1
        verified = self.verified_files is not None and self.verified_files(log)
        events: list[Event] = []
        try:
            parsed = list(parse_log_file(log))
        except CloudTrailFileError as exc:
            self.report.problems.append(str(exc))
            return events
        for item in parsed:
            if isinstance(item, RecordProblem):
                self.report.problems.append(str(item))
                continue
            self.report.records += 1
            events.extend(self._cloudtrail_record(item, log, verified))
        return events

    def _claimed_session(self, session_ids: tuple[str, ...], position: str) -> _Session | None:
        if not session_ids:
            self.report.unrelated += 1
            return None
        if len(session_ids) > 1:
            self.report.problems.append(
                f"{position}: names {len(session_ids)} trailguard sessions "
                f"({', '.join(session_ids[:3])}); a record belongs to one, so it is not joined"
            )
            return None
        session = self._session(session_ids[0])
        if session is None:
            self.report.unknown_sessions[session_ids[0]] += 1
            return None
        if not self._owned(session):
            self.report.refused_sessions[session_ids[0]] += 1
            return None
        return session

    def _cloudtrail_record(
        self, item: CloudTrailRecord, log: LogFile, verified: bool
    ) -> Iterator[Event]:
        if not self._in_range(item.event_time):
            self.report.outside_range += 1
            return
        session = self._claimed_session(item.session_ids, item.position)
        if session is None:
            return
        redacted_raw, _ = self.redactor.redact_value(item.record)
        sha = "sha256:" + hashlib.sha256(canonical_json(redacted_raw)).hexdigest()
        record = CloudTrailRecord(
            record=redacted_raw,
            position=item.position,
            event_id=item.event_id,
            event_time=item.event_time,
            event_source=item.event_source,
            event_name=item.event_name,
            session_ids=item.session_ids,
        )
        authenticity: Literal["unverified", "digest_verified"] = (
            "digest_verified" if verified else "unverified"
        )
        event_id = _uuid8(
            b"trailguard-downstream\x00cloudtrail\x00%s\x00%s"
            % (authenticity.encode(), sha.encode())
        )
        if event_id in self._seen:
            return
        self._seen.add(event_id)
        resources = record.resources()
        observed = Observed(
            time=parse_time(record.event_time),
            precision=_CLOUDTRAIL_PRECISION
            if record.event_time.endswith(".000Z")
            else timedelta(0),
            actions=record.iam_actions,
            access=record.access,
            resources=tuple(resources),
            names=frozenset(record.request_names()),
        )
        match = self._match(session, observed)
        principal = record.principal
        if match.explained and principal:
            session.principals.add(principal)
        elif principal and session.principals and principal not in session.principals:
            # The caller chose the User-Agent; the identity AWS authenticated it did not. A call
            # under another identity than the session's own AWS calls is someone else's claim.
            known = ", ".join(sorted(session.principals)[:3])
            match = replace(
                match,
                reason=f"{match.reason}; made by {principal}, not by the identity of the "
                f"session's other AWS calls ({known})",
                foreign_principal=True,
            )
        self.report.attributed += 1
        self.report.verified += verified
        self.report.matches[match.level] += 1
        details = {k: v for k, v in record.record.items() if k not in _PROMOTED}
        downstream = DownstreamRecord(
            event_id=event_id,
            timestamp=utc_now(),
            session_id=session.session_id,
            developer_id=session.developer_id,
            project_id=session.project_id,
            source="correlate",
            system="cloudtrail",
            record_id=record.event_id,
            record_sha256=sha,
            record_time=record.event_time,
            session_claim=f"userAgent app/trailguard-{session.session_id}",
            authenticity=authenticity,
            imported_by=self.options.imported_by,
            imported_from=item.position[:1024],
            file_sha256="sha256:" + log.sha256,
            name=record.event_name,
            service=record.event_source,
            action=record.iam_actions[-1],
            access=record.access,
            resources=resources,
            principal=record.principal,
            source_ip=record.source_ip,
            region=record.region,
            user_agent=record.user_agent,
            error_code=record.error_code,
            error_message=record.error_message,
            tool_use_id=match.tool_use_id,
            match=match.level,
            match_reason=match.reason,
            match_candidates=match.candidates,
        )
        # The redaction stage, like every route's; ``details`` are added after it because they
        # are already the redactor's output (``redacted_raw``): walking them twice doubled the
        # cost of an import.
        downstream = self.redactor.redact_event(downstream).model_copy(
            update={"details": _capped(details)}
        )
        yield downstream
        yield from self._conflict(session, downstream)
        if not match.explained:
            self.report.unexplained += 1
            yield self.redactor.redact_event(self._unexplained(downstream, match))

    def _conflict(self, session: _Session, record: DownstreamRecord) -> Iterator[Event]:
        known = session.records.setdefault(record.record_id, set())
        sha = record.record_sha256 or ""
        others = known - {sha}
        known.add(sha)
        if not others:
            return
        self.report.conflicts += 1
        yield Alert(
            event_id=_uuid8(b"trailguard-downstream-alert\x00conflict\x00" + sha.encode()),
            session_id=record.session_id,
            developer_id=record.developer_id,
            project_id=record.project_id,
            source="correlate",
            alert_type="conflicting_record",
            severity="high",
            message=f"two different {record.system} records claim id {record.record_id}: at "
            "least one is not what the system wrote (both are kept; compare their "
            "authenticity and who imported them)",
            details={
                "recordId": record.record_id,
                "recordSha256": sha,
                "otherRecordSha256": list[JsonValue](sorted(others)[:10]),
                "importedBy": record.imported_by,
                "authenticity": record.authenticity,
                "downstreamEventId": record.event_id,
            },
        )

    def _unexplained(self, record: DownstreamRecord, match: Match) -> Alert:
        access = record.access or "write"
        severity: Literal["low", "medium", "high", "critical"] = _SEVERITY_UNEXPLAINED.get(
            (match.level, access), "high"
        )
        what = f"{record.action} on {', '.join(record.resources[:3]) or '(no resource)'}"
        message = (
            f"AWS {what} at {record.record_time} (CloudTrail {record.record_id}, "
            f"{record.authenticity}) is not explained by any tool call of the session: "
            f"{match.reason}"
        )
        if match.denied_call:
            severity = "critical"
            message += f"; the session's call {match.denied_call} asking for it was denied"
        return Alert(
            event_id=_uuid8(
                b"trailguard-downstream-alert\x00unexplained\x00" + record.event_id.encode()
            ),
            session_id=record.session_id,
            developer_id=record.developer_id,
            project_id=record.project_id,
            source="correlate",
            alert_type="unexplained_activity",
            severity=severity,
            message=message,
            details={
                "downstreamEventId": record.event_id,
                "recordId": record.record_id,
                "action": record.action,
                "resources": list[JsonValue](record.resources[:10]),
                "principal": record.principal,
                "sourceIp": record.source_ip,
                "recordTime": record.record_time,
                "match": match.level,
                "nearestToolUseId": match.tool_use_id,
                "deniedToolUseId": match.denied_call,
                "foreignPrincipal": match.foreign_principal,
                "authenticity": record.authenticity,
            },
        )

    # -- application logs -------------------------------------------------------------------------

    def application(self, log: LogFile, fields: AppLogFields) -> list[Event]:
        """Events for every JSON line of ``log`` whose session field names a session."""
        self.report.files += 1
        events: list[Event] = []
        seen_in_file: Counter[str] = Counter()
        for number, line in enumerate(log.data.splitlines(), start=1):
            if not line.strip():
                continue
            position = f"{log.name}:{number}"
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                self.report.problems.append(f"{position}: not JSON ({exc})")
                continue
            if not isinstance(entry, dict):
                self.report.problems.append(f"{position}: not a JSON object")
                continue
            self.report.records += 1
            events.extend(self._application_entry(entry, position, log, fields, seen_in_file))
        return events

    def _application_entry(
        self,
        entry: dict[str, Any],
        position: str,
        log: LogFile,
        fields: AppLogFields,
        seen_in_file: Counter[str],
    ) -> Iterator[Event]:
        session_value = _lookup(entry, fields.session)
        if session_value is None or session_value == "":
            self.report.unrelated += 1
            return
        if not isinstance(session_value, str) or len(session_value) > 256:
            self.report.problems.append(
                f"{position}: {fields.session} is not a session id (a string of at most 256)"
            )
            return
        time_value = (
            _lookup(entry, fields.time)
            if fields.time
            else next((entry[k] for k in _TIME_FIELDS if k in entry), None)
        )
        moment = _entry_time(time_value)
        if moment is None:
            self.report.problems.append(
                f"{position}: no readable time in "
                + (fields.time or "any of " + ", ".join(_TIME_FIELDS))
                + " (RFC 3339 or Unix seconds/milliseconds); use --time-field"
            )
            return
        record_time = _format(moment)
        if not self._in_range(record_time):
            self.report.outside_range += 1
            return
        session = self._claimed_session((session_value,), position)
        if session is None:
            return
        redacted, _ = self.redactor.redact_value(entry)
        sha = "sha256:" + hashlib.sha256(canonical_json(redacted)).hexdigest()
        occurrence = seen_in_file[sha]
        seen_in_file[sha] += 1
        event_id = _uuid8(
            b"trailguard-downstream\x00application\x00%s\x00%d" % (sha.encode(), occurrence)
        )
        if event_id in self._seen:
            return
        self._seen.add(event_id)
        given_id = _lookup(entry, fields.id) if fields.id else None
        name = _lookup(entry, fields.name) if fields.name else None
        if name is None and not fields.name:
            name = next((entry[k] for k in _NAME_FIELDS if isinstance(entry.get(k), str)), None)
        match = self._match(session, Observed(time=moment))
        self.report.attributed += 1
        self.report.matches[match.level] += 1
        downstream = DownstreamRecord(
            event_id=event_id,
            timestamp=utc_now(),
            session_id=session.session_id,
            developer_id=session.developer_id,
            project_id=session.project_id,
            source="correlate",
            system="application",
            record_id=str(given_id)[:256] if given_id not in (None, "") else sha,
            record_sha256=sha,
            record_time=record_time,
            session_claim=f"field {fields.session}",
            imported_by=self.options.imported_by,
            imported_from=position[:1024],
            file_sha256="sha256:" + log.sha256,
            name=str(name)[:512] if name is not None else None,
            service=fields.app,
            tool_use_id=match.tool_use_id,
            match=match.level,
            match_reason=match.reason,
            match_candidates=match.candidates,
        )
        downstream = self.redactor.redact_event(downstream).model_copy(
            update={"details": _capped(redacted)}
        )
        yield downstream
        if fields.id and given_id not in (None, ""):
            yield from self._conflict(session, downstream)


def count_receipts(report: ImportReport, receipts: Iterable[Any], events: list[Event]) -> None:
    """Fill ``appended`` / ``alreadyRecorded`` from the ledger's receipts for ``events``."""
    kinds = {event.event_id: event.event_type for event in events}
    for receipt in receipts:
        if kinds.get(receipt.event_id) != EventType.DOWNSTREAM_RECORD:
            continue
        if receipt.duplicate:
            report.already_recorded += 1
        else:
            report.appended += 1
