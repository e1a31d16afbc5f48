"""CloudTrail log files as AWS delivers them, read into typed records.

Accepted shapes (AWS CloudTrail User Guide, "CloudTrail record contents" and "log file
examples"): a log file ``{"Records": [...]}`` as a trail delivers it to S3
(``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<time>_<id>.json.gz``,
gzip or plain), the output of ``aws cloudtrail lookup-events`` (``{"Events": [{...,
"CloudTrailEvent": "<the record as a JSON string>"}]}``), and JSON lines of records or of
EventBridge "AWS API Call via CloudTrail" envelopes (the record under ``detail``).

A record belongs to a trailguard session when its ``userAgent`` carries
``app/trailguard-<session>``: trailguard sets ``AWS_SDK_UA_APP_ID=trailguard-<session>`` in the
session's environment, and the AWS SDKs and CLI put the app id in every request's User-Agent.
Every size is bounded before anything is parsed: a file (and a gzip member) may not inflate
beyond ``MAX_FILE_BYTES``, a record beyond ``MAX_RECORD_BYTES``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from trailguard.classify.aws import IAM_ACTION_EXCEPTIONS, operation_access
from trailguard.errors import InvalidInputError
from trailguard.events import Access, format_timestamp

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_RECORD_BYTES",
    "CloudTrailRecord",
    "LogFile",
    "RecordProblem",
    "iam_actions",
    "inflate",
    "parse_log_file",
    "session_ids_in_user_agent",
]

MAX_FILE_BYTES: Final = 64 * 1024 * 1024
"""Largest uncompressed log file read (CloudTrail delivers files of a few megabytes); larger
ones, and gzip bombs, are refused without inflating them further."""
MAX_RECORD_BYTES: Final = 512 * 1024
"""Largest single record (CloudTrail's events are at most 256 KB)."""
MAX_RECORDS_PER_FILE: Final = 200_000

_GZIP_MAGIC: Final = b"\x1f\x8b"

# Characters an AWS SDK keeps in an app id (botocore's user agent sanitiser); others become "-".
_USER_AGENT_APP = re.compile(r"(?:^|[\s\[(/])app/trailguard-([A-Za-z0-9!#$%&'*+.^_`|~-]{1,200})")
_MAX_USER_AGENT = 4096


class CloudTrailFileError(InvalidInputError):
    """A file that cannot be read as CloudTrail records at all (not JSON, too large...)."""


@dataclass(frozen=True)
class LogFile:
    """One delivered file, inflated: what a CloudTrail digest's ``hashValue`` covers."""

    name: str
    data: bytes
    sha256: str

    @classmethod
    def from_bytes(cls, name: str, raw: bytes, *, limit: int = MAX_FILE_BYTES) -> LogFile:
        data = inflate(raw, name, limit=limit)
        return cls(name, data, hashlib.sha256(data).hexdigest())


def inflate(raw: bytes, name: str, *, limit: int = MAX_FILE_BYTES) -> bytes:
    """``raw`` uncompressed when it is gzip (every member), else as it is; refuses to produce
    more than ``limit`` bytes (a gzip bomb stops here, not in memory)."""
    if not raw.startswith(_GZIP_MAGIC):
        if len(raw) > limit:
            raise CloudTrailFileError(f"{name}: {len(raw)} bytes is over the {limit}-byte limit")
        return raw
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            data = stream.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise CloudTrailFileError(f"{name}: not a readable gzip file ({exc})") from None
    if len(data) > limit:
        raise CloudTrailFileError(
            f"{name}: inflates to more than {limit} bytes (CloudTrail files are a few MB); refused"
        )
    return data


@dataclass(frozen=True)
class RecordProblem:
    position: str
    message: str

    def __str__(self) -> str:
        return f"{self.position}: {self.message}"


@dataclass(frozen=True)
class CloudTrailRecord:
    """One CloudTrail event, with the fields joining needs read and checked."""

    record: dict[str, Any]
    """The record as the file holds it (unredacted: redaction happens when it is imported)."""
    position: str
    """``<file>#Records[3]``: where it was read."""
    event_id: str
    event_time: str
    """``eventTime`` in the ledger's form (UTC, milliseconds)."""
    event_source: str
    event_name: str
    session_ids: tuple[str, ...]
    """Every trailguard session its User-Agent names (normally one)."""

    @property
    def user_agent(self) -> str | None:
        value = self.record.get("userAgent")
        return value[:_MAX_USER_AGENT] if isinstance(value, str) else None

    @property
    def region(self) -> str | None:
        return _text(self.record.get("awsRegion"))

    @property
    def source_ip(self) -> str | None:
        return _text(self.record.get("sourceIPAddress"))

    @property
    def error_code(self) -> str | None:
        return _text(self.record.get("errorCode"))

    @property
    def error_message(self) -> str | None:
        return _text(self.record.get("errorMessage"), 2048)

    @property
    def read_only(self) -> bool | None:
        value = self.record.get("readOnly")
        return value if isinstance(value, bool) else None

    @property
    def principal(self) -> str | None:
        """``userIdentity.arn``, else ``<type>:<principalId>`` (an AWS service, a root...)."""
        identity = self.record.get("userIdentity")
        if not isinstance(identity, Mapping):
            return None
        arn = _text(identity.get("arn"))
        if arn:
            return arn
        kind, principal = _text(identity.get("type")), _text(identity.get("principalId"))
        if kind or principal:
            return ":".join(part for part in (kind, principal) if part)
        return _text(identity.get("invokedBy"))

    @property
    def iam_actions(self) -> tuple[str, ...]:
        return iam_actions(self.event_source, self.event_name)

    @property
    def access(self) -> Access:
        """What the call did: from the operation's verb as the classifier judges it, and read
        when CloudTrail itself says ``readOnly``."""
        service, operation = _service_and_operation(self.event_source, self.event_name)
        judged = operation_access(service, operation)
        if self.read_only is True and judged != "read":
            return "read"
        return judged

    def resources(self) -> list[str]:
        """What the call acted on: ARNs CloudTrail lists in ``resources``, the S3 object or
        bucket in ``requestParameters``, and the names of identifiers in the request
        (``tableName``, ``instanceId``...), at most 50."""
        found: list[str] = []
        listed = self.record.get("resources")
        if isinstance(listed, list):
            for entry in listed[:50]:
                if isinstance(entry, Mapping):
                    arn = _text(entry.get("ARN") or entry.get("arn"))
                    if arn:
                        found.append(arn)
        parameters = self.record.get("requestParameters")
        if isinstance(parameters, Mapping):
            bucket = _text(parameters.get("bucketName"))
            key = _text(parameters.get("key"))
            if bucket and key:
                found.append(f"arn:aws:s3:::{bucket}/{key}")
            if bucket:
                found.append(f"arn:aws:s3:::{bucket}")
        return list(dict.fromkeys(found))[:50]

    def request_names(self) -> set[str]:
        """Every short string value in ``requestParameters`` (the names a CLI argument can
        carry: a table, a user, an instance id, a queue URL), at most 200."""
        names: set[str] = set()
        _collect_strings(self.record.get("requestParameters"), names, depth=0)
        return names


def _collect_strings(value: Any, into: set[str], *, depth: int) -> None:
    if len(into) >= 200 or depth > 5:
        return
    if isinstance(value, str):
        if 0 < len(value) <= 2048:
            into.add(value)
    elif isinstance(value, Mapping):
        for item in list(value.values())[:100]:
            _collect_strings(item, into, depth=depth + 1)
    elif isinstance(value, list):
        for item in value[:100]:
            _collect_strings(item, into, depth=depth + 1)


def _text(value: Any, limit: int = 1024) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


# -- IAM actions ----------------------------------------------------------------------------------

# eventSource prefixes that are not the IAM prefix (CloudWatch is monitoring.amazonaws.com)
_IAM_PREFIX_OF_SOURCE: Final[Mapping[str, str]] = {
    "monitoring": "cloudwatch",
    "email": "ses",
    "iotdata": "iot",
}
# ... and botocore service names (for access levels and the classifier's action exceptions)
_SERVICE_OF_SOURCE: Final[Mapping[str, str]] = {
    "monitoring": "cloudwatch",
    "email": "ses",
    "elasticloadbalancing": "elbv2",
}
# Lambda (CreateFunction20150331, UpdateFunctionCode20150331v2) and CloudFront name their
# CloudTrail events with an API version suffix.
_VERSION_SUFFIX = re.compile(r"(?:\d{8}(?:v\d+)?|\d{4}_\d{2}_\d{2})$")


def _service_and_operation(event_source: str, event_name: str) -> tuple[str, str]:
    prefix = event_source.removesuffix(".amazonaws.com").lower()
    operation = _VERSION_SUFFIX.sub("", event_name) or event_name
    return _SERVICE_OF_SOURCE.get(prefix, prefix), operation


def iam_actions(event_source: str, event_name: str) -> tuple[str, ...]:
    """The IAM actions a CloudTrail event's call needed: ``s3:PutObject`` for ``PutObject`` and
    for ``CreateMultipartUpload``/``UploadPart``, ``s3:ListBucket`` for ``ListObjectsV2``,
    ``lambda:InvokeFunction`` for ``Invoke`` (the classifier's exception table), otherwise
    ``<prefix>:<eventName>`` without a version suffix."""
    service, operation = _service_and_operation(event_source, event_name)
    listed = IAM_ACTION_EXCEPTIONS.get((service, operation))
    if listed is not None:
        return listed
    prefix = event_source.removesuffix(".amazonaws.com").lower()
    return (f"{_IAM_PREFIX_OF_SOURCE.get(prefix, prefix)}:{operation}",)


# -- user agents ----------------------------------------------------------------------------------


def session_ids_in_user_agent(user_agent: str | None) -> tuple[str, ...]:
    """The trailguard sessions a User-Agent names (``app/trailguard-<session>``), in order."""
    if not user_agent:
        return ()
    found = _USER_AGENT_APP.findall(user_agent[:_MAX_USER_AGENT])
    return tuple(dict.fromkeys(found))


# -- files ----------------------------------------------------------------------------------------


def _event_time(value: Any) -> str | None:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return format_timestamp(moment)
    except (ValueError, OverflowError):
        return None


def _record(raw: Any, position: str) -> CloudTrailRecord | RecordProblem:
    if not isinstance(raw, dict):
        return RecordProblem(position, "not a JSON object (a CloudTrail record is an object)")
    size = len(orjson.dumps(raw))
    if size > MAX_RECORD_BYTES:
        return RecordProblem(position, f"{size} bytes is over the {MAX_RECORD_BYTES}-byte limit")
    missing = [
        name
        for name in ("eventID", "eventTime", "eventSource", "eventName")
        if not isinstance(raw.get(name), str) or not raw[name]
    ]
    if missing:
        return RecordProblem(position, f"missing or not a string: {', '.join(missing)}")
    event_time = _event_time(raw["eventTime"])
    if event_time is None:
        return RecordProblem(position, f"eventTime {str(raw['eventTime'])[:40]!r} is not a time")
    if len(raw["eventID"]) > 256 or not raw["eventID"].isprintable():
        return RecordProblem(position, "eventID must be at most 256 printable characters")
    user_agent = raw.get("userAgent")
    if user_agent is not None and not isinstance(user_agent, str):
        return RecordProblem(position, "userAgent is not a string")
    return CloudTrailRecord(
        record=raw,
        position=position,
        event_id=raw["eventID"],
        event_time=event_time,
        event_source=raw["eventSource"][:256],
        event_name=raw["eventName"][:256],
        session_ids=session_ids_in_user_agent(user_agent),
    )


def _lookup_event(raw: Any, position: str) -> CloudTrailRecord | RecordProblem:
    """One entry of ``lookup-events`` output: the record is its ``CloudTrailEvent`` string."""
    if not isinstance(raw, dict) or not isinstance(raw.get("CloudTrailEvent"), str):
        return RecordProblem(position, "a lookup-events entry needs CloudTrailEvent (a string)")
    text: str = raw["CloudTrailEvent"]
    if len(text) > MAX_RECORD_BYTES:
        return RecordProblem(position, f"over the {MAX_RECORD_BYTES}-byte record limit")
    try:
        return _record(orjson.loads(text), position)
    except orjson.JSONDecodeError as exc:
        return RecordProblem(position, f"CloudTrailEvent is not JSON ({exc})")


def parse_log_file(log: LogFile) -> Iterator[CloudTrailRecord | RecordProblem]:
    """Every record of ``log`` (or a problem naming its position). Raises CloudTrailFileError
    when the file as a whole is not CloudTrail (not JSON, neither Records nor Events)."""
    stripped = log.data.lstrip()
    if not stripped:
        return
    try:
        document: Any = orjson.loads(log.data)
    except orjson.JSONDecodeError:
        if stripped.startswith(b"{") and b"\n" in stripped.strip():
            yield from _parse_json_lines(log)
            return
        raise CloudTrailFileError(
            f"{log.name}: not JSON (expected a CloudTrail log file with Records, lookup-events "
            "output with Events, or JSON lines of records)"
        ) from None
    if isinstance(document, dict) and isinstance(document.get("Records"), list):
        entries, parse, label = document["Records"], _record, "Records"
    elif isinstance(document, dict) and isinstance(document.get("Events"), list):
        entries, parse, label = document["Events"], _lookup_event, "Events"
    elif isinstance(document, dict) and "eventID" in document:
        entries, parse, label = [document], _record, "record"
    else:
        raise CloudTrailFileError(
            f"{log.name}: JSON but not CloudTrail: a log file has a Records list, "
            "lookup-events output an Events list"
        )
    if len(entries) > MAX_RECORDS_PER_FILE:
        raise CloudTrailFileError(
            f"{log.name}: {len(entries)} records is over the {MAX_RECORDS_PER_FILE} limit"
        )
    for index, entry in enumerate(entries):
        yield parse(entry, f"{log.name}#{label}[{index}]")


def _parse_json_lines(log: LogFile) -> Iterator[CloudTrailRecord | RecordProblem]:
    for number, line in enumerate(log.data.splitlines(), start=1):
        if not line.strip():
            continue
        position = f"{log.name}:{number}"
        if number > MAX_RECORDS_PER_FILE:
            yield RecordProblem(position, f"more than {MAX_RECORDS_PER_FILE} lines; rest skipped")
            return
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield RecordProblem(position, f"not JSON ({exc})")
            continue
        if isinstance(entry, dict) and isinstance(entry.get("detail"), dict):
            entry = entry["detail"]  # EventBridge's "AWS API Call via CloudTrail"
        yield _record(entry, position)
