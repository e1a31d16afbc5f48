"""The audit event model: one typed event per thing that happened, shared by every pipeline stage.

Events serialise to the camelCase JSON form auditors read (``eventId``, ``sessionId``, ``tool``,
``policyResult``...); the ledger stores the RFC 8785 canonical bytes of exactly that form.
"""

from __future__ import annotations

import re
import types
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

from trailguard.errors import InvalidInputError
from trailguard.ids import new_event_id

__all__ = [
    "AgentEvent",
    "Alert",
    "AuditAccess",
    "BudgetThreshold",
    "Checkpoint",
    "Cost",
    "DownstreamRecord",
    "Event",
    "EventType",
    "EventValidationError",
    "GatewayStart",
    "GatewayStop",
    "InfraOperation",
    "Operation",
    "PolicyChange",
    "Prompt",
    "SessionEnd",
    "SessionStart",
    "TokenChange",
    "ToolInvocation",
    "ToolResult",
    "describe_validation_error",
    "format_timestamp",
    "parse_event",
    "utc_now",
]


class EventType(StrEnum):
    SESSION_START = "session_start"
    SESSION_END = "session_end"
    PROMPT = "prompt"
    TOOL_INVOCATION = "tool_invocation"
    TOOL_RESULT = "tool_result"
    INFRA_OPERATION = "infra_operation"
    POLICY_CHANGE = "policy_change"
    COST = "cost"
    BUDGET_THRESHOLD = "budget_threshold"
    ALERT = "alert"
    CHECKPOINT = "checkpoint"
    GATEWAY_START = "gateway_start"
    GATEWAY_STOP = "gateway_stop"
    AUDIT_ACCESS = "audit_access"
    AGENT_EVENT = "agent_event"
    TOKEN_CHANGE = "token_change"  # noqa: S105 - an event type, not a secret
    DOWNSTREAM_RECORD = "downstream_record"


# Matched with fullmatch: ``$`` would also match before a final line break, and ``\d`` any
# Unicode digit, so "<uuid>\n" would pass as an id distinct from "<uuid>".
_LEDGER_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

MAX_ID_LENGTH = 256


_TIMESTAMP_SHAPE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{1,6}Z", re.ASCII
)


def parse_timestamp(value: str) -> datetime:
    """A timestamp of the ledger's form (``2026-04-15T14:32:07.123Z``, 1 to 6 fractional
    digits) as an aware UTC datetime; ValueError for anything else or a date that does not
    exist. ``fromisoformat`` behind a shape check: ``strptime`` was 40 times slower, and this
    runs several times per event."""
    if not _TIMESTAMP_SHAPE.fullmatch(value):
        raise ValueError(f"not a timestamp like 2026-04-15T14:32:07.123Z: {value[:64]!r}")
    return datetime.fromisoformat(value)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with exactly millisecond precision: ``2026-04-15T14:32:07.123Z``."""
    moment = moment.astimezone(UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


def utc_now() -> str:
    return format_timestamp(datetime.now(UTC))


Identifier: TypeAlias = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The auditor-facing JSON form (camelCase): what the ledger canonicalises and stores.

        ``model_dump(mode="json", by_alias=True)`` without its Python-level wrapper (argument
        checks, warnings): the ledger calls this once per event, and the wrapper was a quarter
        of the time. A test checks both give the same document."""
        document: dict[str, Any] = self.__pydantic_serializer__.to_python(
            self, mode="json", by_alias=True
        )
        return document

    @classmethod
    def free_form_fields(cls) -> tuple[str, ...]:
        """JSON names of the fields that may hold arbitrary JSON (tool input, output, extra...)
        or floats. Every other field holds strings, integers, booleans or lists of them, which
        the canonicaliser need not inspect."""
        cached: tuple[str, ...] | None = cls.__dict__.get("_free_form_cache")
        if cached is None:
            cached = tuple(
                info.alias or name
                for name, info in cls.model_fields.items()
                if not _is_plain_annotation(info.annotation)
            )
            cls._free_form_cache = cached  # type: ignore[attr-defined]
        return cached


def _is_plain_annotation(annotation: Any) -> bool:
    """Whether every value of this type is a string, int, bool, None, or a list or model of
    those: the JSON that sorted-key orjson and RFC 8785 encode identically."""
    if annotation in (str, int, bool, type(None)):
        return True
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return True
    if isinstance(annotation, type) and issubclass(annotation, _Model):
        return all(_is_plain_annotation(f.annotation) for f in annotation.model_fields.values())
    origin = get_origin(annotation)
    if origin is Literal:
        return all(isinstance(arg, str | Enum) for arg in get_args(annotation))
    if origin is Annotated:
        return _is_plain_annotation(get_args(annotation)[0])
    if origin in (Union, types.UnionType, list):
        return all(_is_plain_annotation(arg) for arg in get_args(annotation))
    return False


Access = Literal["read", "write", "delete", "admin"]
"""What a tool call does to a resource, weakest first (ACCESS_LEVELS is the order)."""
Risk = Literal["low", "medium", "high", "critical"]
"""How bad it would be if it went wrong, lowest first (RISK_LEVELS is the order)."""
ACCESS_LEVELS: tuple[Access, ...] = ("read", "write", "delete", "admin")
RISK_LEVELS: tuple[Risk, ...] = ("low", "medium", "high", "critical")


class Operation(_Model):
    """What one tool call does to an outside system, in IAM terms (filled in by classify/)."""

    kind: Identifier
    action: Identifier
    resource: str | None = None
    access: Access
    risk: Risk
    flags: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)
    """Facts the policy can match on: profile, region, branch, namespace, host, tables..."""
    raw: str | None = None


class _EventBase(_Model):
    """Fields every event carries. ``seq`` is ``None`` until the ledger assigns a position."""

    event_type: EventType
    event_id: str = Field(default_factory=new_event_id)
    seq: int | None = Field(default=None, ge=0)
    timestamp: str = Field(default_factory=utc_now)
    session_id: Identifier | None = None
    developer_id: Identifier | None = None
    project_id: Identifier | None = None
    source: Identifier | None = None
    """Where the event came from: ``hook``, ``ingest``, ``gateway``, ``proxy``, ``otlp``..."""
    extra: dict[str, JsonValue] | None = None
    """Fields the agent sent that trailguard does not model yet: kept, never dropped."""

    @field_validator("event_id")
    @classmethod
    def _event_id_is_a_uuid(cls, value: str) -> str:
        if not _UUID_RE.fullmatch(value):
            raise ValueError(f"must be a lowercase hyphenated UUID, got {value[:64]!r}")
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp_is_rfc3339_utc_millis(cls, value: str) -> str:
        if not _LEDGER_TIMESTAMP.fullmatch(value):
            raise ValueError(
                f"must be RFC 3339 UTC with milliseconds like 2026-04-15T14:32:07.123Z, "
                f"got {value[:64]!r}"
            )
        try:
            datetime.fromisoformat(value)  # the shape is checked: only the date can be wrong
        except ValueError as exc:
            raise ValueError(f"is not a real date and time: {value!r}") from exc
        return value

    @field_validator("session_id", "developer_id", "project_id", "source")
    @classmethod
    def _identifier_has_no_control_characters(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL_RE.search(value):
            raise ValueError("must not contain control characters")
        return value


PolicyResult: TypeAlias = Literal["allowed", "denied", "ask"]


class _HookEventBase(_EventBase):
    """Events made from an agent's hook: ``timestamp`` is always the gateway's own receipt
    time; ``observedAt`` is when the hook client says it saw the event (a claim, shown as such;
    for events replayed from its spool, a claim about the past)."""

    observed_at: str | None = None

    @field_validator("observed_at")
    @classmethod
    def _observed_at_is_rfc3339_utc_millis(cls, value: str | None) -> str | None:
        return None if value is None else cls._timestamp_is_rfc3339_utc_millis(value)


class SessionStart(_HookEventBase):
    event_type: Literal[EventType.SESSION_START] = EventType.SESSION_START
    agent: str | None = None
    agent_version: str | None = None
    model: str | None = None
    permission_mode: str | None = None
    permissions: dict[str, JsonValue] | None = None
    claimed_identity: dict[str, JsonValue] | None = None
    """What the machine says about who runs it (OS user, git email): recorded, never trusted."""
    git_remote: str | None = None
    git_branch: str | None = None
    cwd: str | None = None
    start_source: str | None = None
    hook_config: dict[str, JsonValue] | None = None
    """What the hook client found of the effective hook configuration at start (settings files,
    whether trailguard's hooks are in each, ``disableAllHooks``, a hash): a claim that lets a
    later session with weaker hooks be seen."""


SessionEndReason: TypeAlias = Literal["completed", "timed_out", "killed", "budget_exhausted"]


class SessionEnd(_HookEventBase):
    event_type: Literal[EventType.SESSION_END] = EventType.SESSION_END
    reason: SessionEndReason
    raw_reason: str | None = None


class Prompt(_HookEventBase):
    event_type: Literal[EventType.PROMPT] = EventType.PROMPT
    prompt: str
    prompt_id: str | None = None


class ToolInvocation(_HookEventBase):
    event_type: Literal[EventType.TOOL_INVOCATION] = EventType.TOOL_INVOCATION
    tool: Identifier
    tool_use_id: Identifier | None = None
    agent_id: Identifier | None = None
    agent_type: Identifier | None = None
    """For a subagent's call: its type (``general-purpose``, ...); ``agentId`` names it."""
    input: JsonValue = None
    input_truncated: bool | None = None
    """True when ``input`` holds only the start of a larger input (the decision saw all of it);
    ``inputLength`` and ``inputSha256`` then describe the whole."""
    input_length: int | None = Field(default=None, ge=0)
    input_sha256: str | None = None
    operations: list[Operation] = Field(default_factory=list)
    policy_result: PolicyResult | None = None
    """``None`` only for history imported from elsewhere, where trailguard decided nothing."""
    policy_rule: str | None = None
    policy_reason: str | None = None
    policy_version: str | None = None


class ToolResult(_HookEventBase):
    event_type: Literal[EventType.TOOL_RESULT] = EventType.TOOL_RESULT
    tool: Identifier
    tool_use_id: Identifier | None = None
    agent_id: Identifier | None = None
    agent_type: Identifier | None = None
    status: Literal["success", "error", "denied"]
    output: JsonValue = None
    error: str | None = None
    duration_ms: int | None = Field(default=None, ge=0)
    output_truncated: bool = False
    output_length: int | None = Field(default=None, ge=0)
    output_sha256: str | None = None


class InfraOperation(_EventBase):
    event_type: Literal[EventType.INFRA_OPERATION] = EventType.INFRA_OPERATION
    tool_use_id: Identifier | None = None
    operation: Operation


class PolicyChange(_EventBase):
    event_type: Literal[EventType.POLICY_CHANGE] = EventType.POLICY_CHANGE
    policy_version: str
    previous_version: str | None = None
    description: str | None = None


class Cost(_EventBase):
    event_type: Literal[EventType.COST] = EventType.COST
    model: str | None = None
    request_id: str | None = None
    tool_use_ids: list[str] = Field(default_factory=list)
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_write_5m_tokens: int = Field(default=0, ge=0, alias="cacheWrite5mTokens")
    cache_write_1h_tokens: int = Field(default=0, ge=0, alias="cacheWrite1hTokens")
    cache_read_tokens: int = Field(default=0, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    """``None`` means unknown (e.g. a model missing from the price table), never zero."""


class BudgetThreshold(_EventBase):
    event_type: Literal[EventType.BUDGET_THRESHOLD] = EventType.BUDGET_THRESHOLD
    scope: Literal["session", "developer_day", "project_day"]
    limit_usd: float = Field(ge=0)
    spent_usd: float = Field(ge=0)
    percent: int = Field(ge=0)


class Alert(_EventBase):
    event_type: Literal[EventType.ALERT] = EventType.ALERT
    alert_type: Identifier
    severity: Literal["info", "low", "medium", "high", "critical"]
    message: str
    details: dict[str, JsonValue] | None = None


class Checkpoint(_EventBase):
    """A signed tree head, recorded in the ledger it signs (it covers every earlier event)."""

    event_type: Literal[EventType.CHECKPOINT] = EventType.CHECKPOINT
    origin: str
    tree_size: int = Field(ge=0)
    root_hash: str
    note: str
    """The complete C2SP signed note, exactly as signed."""


class GatewayStart(_EventBase):
    event_type: Literal[EventType.GATEWAY_START] = EventType.GATEWAY_START
    version: str
    hostname: str | None = None
    pid: int | None = None
    origin: str
    verifier_key: str
    """The signed-note verifier key (name+keyid+base64) that signs this run's checkpoints."""
    previous_tree_size: int | None = None
    previous_stop_clean: bool | None = None
    """False when the previous run ended without a ``gateway_stop`` (crash, kill, power loss)."""


class GatewayStop(_EventBase):
    event_type: Literal[EventType.GATEWAY_STOP] = EventType.GATEWAY_STOP
    reason: str


class AuditAccess(_EventBase):
    """A person read (or was refused) part of the record: through the API (``developerId`` is
    the token's), the console, or the CLI (``actor`` is ``os:<user>``)."""

    event_type: Literal[EventType.AUDIT_ACCESS] = EventType.AUDIT_ACCESS
    action: str
    actor: str | None = None
    outcome: Literal["allowed", "refused"] | None = None
    query: dict[str, JsonValue] | None = None
    result_count: int | None = None


class AgentEvent(_HookEventBase):
    """An agent notification trailguard keeps but has no dedicated type for (Stop, Notification,
    PreCompact, SubagentStart...), including event names a newer agent version invents."""

    event_type: Literal[EventType.AGENT_EVENT] = EventType.AGENT_EVENT
    name: Identifier
    agent_id: Identifier | None = None
    agent_type: Identifier | None = None
    payload: dict[str, JsonValue] | None = None


class TokenChange(_EventBase):
    """A gateway token was created or revoked: tokens decide who every request is from, so
    each change is part of the record. The token itself is never stored, only its id."""

    event_type: Literal[EventType.TOKEN_CHANGE] = EventType.TOKEN_CHANGE
    action: Literal["created", "revoked"]
    token_id: Identifier
    role: Literal["agent", "auditor", "admin"]
    subject_developer_id: Identifier
    """Whom the token stands for (``developerId`` is whoever made the change)."""
    projects: list[str] = Field(default_factory=list)
    """Projects the token is bound to; empty means not bound."""
    changed_by: str | None = None
    """Who made the change, as the gateway knows them (``os:<user>`` for the local CLI)."""


MatchLevel: TypeAlias = Literal["exact", "action", "related", "time", "none"]


class DownstreamRecord(_EventBase):
    """A record another system wrote about what a session did (a CloudTrail event, an
    application's log entry), imported and joined to the session it names and, where it can
    be, to the tool call that caused it (``toolUseId``, ``match``).

    Everything taken from the record is a claim: of the system that wrote it when
    ``authenticity`` is ``digest_verified`` (CloudTrail's signed digest covers the file), else of
    whoever handed over the file. ``sessionClaim`` says how the record named the session (the
    AWS caller chose its User-Agent). ``timestamp`` is the import time; ``recordTime`` the
    record's own."""

    event_type: Literal[EventType.DOWNSTREAM_RECORD] = EventType.DOWNSTREAM_RECORD
    system: Literal["cloudtrail", "application"]
    record_id: Identifier
    """CloudTrail's ``eventID``; for an application log, the entry's id field or content hash."""
    record_sha256: str | None = None
    """``sha256:<hex>`` of the record's canonical JSON after redaction: which record this is,
    whatever ``details`` kept of it."""
    record_time: str | None = None
    session_claim: str
    """Where the session id came from: ``userAgent app/trailguard-<id>``, ``field <name>``."""
    authenticity: Literal["unverified", "digest_verified"] = "unverified"
    imported_by: str | None = None
    imported_from: str | None = None
    """The file (path, ``s3://`` URI) and position the record was read from."""
    file_sha256: str | None = None
    """SHA-256 of the file's uncompressed bytes (what a CloudTrail digest covers)."""
    name: str | None = None
    """CloudTrail ``eventName``; an application entry's message or event name."""
    service: str | None = None
    """CloudTrail ``eventSource`` (``s3.amazonaws.com``); an application's name."""
    action: str | None = None
    """The IAM action the call needed, e.g. ``s3:PutObject``."""
    access: Access | None = None
    resources: list[str] = Field(default_factory=list)
    principal: str | None = None
    """CloudTrail ``userIdentity.arn`` (else its type and principal id)."""
    source_ip: str | None = None
    region: str | None = None
    user_agent: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    details: dict[str, JsonValue] | None = None
    """The rest of the record (request parameters, response elements...), redacted and capped."""
    tool_use_id: Identifier | None = None
    match: MatchLevel = "none"
    """How the record was joined to ``toolUseId``: ``exact`` (action and resource agree),
    ``action`` (action agrees, no resource to compare), ``related`` (a read or credential call
    on what the call declared), ``time`` (only the call's time window holds it), ``none``."""
    match_reason: str | None = None
    match_candidates: int = Field(default=0, ge=0)

    @field_validator("record_time")
    @classmethod
    def _record_time_is_rfc3339_utc_millis(cls, value: str | None) -> str | None:
        return None if value is None else cls._timestamp_is_rfc3339_utc_millis(value)


Event: TypeAlias = Annotated[
    SessionStart
    | SessionEnd
    | Prompt
    | ToolInvocation
    | ToolResult
    | InfraOperation
    | PolicyChange
    | Cost
    | BudgetThreshold
    | Alert
    | Checkpoint
    | GatewayStart
    | GatewayStop
    | AuditAccess
    | AgentEvent
    | TokenChange
    | DownstreamRecord,
    Field(discriminator="event_type"),
]

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class EventValidationError(InvalidInputError):
    """An event that does not fit the model; ``problems`` name each field that is wrong."""

    MAX_PROBLEMS: ClassVar[int] = 10

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems[: self.MAX_PROBLEMS]))


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"] if part not in _UNION_TAGS)
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown field (not part of this event type)"
    elif error["type"] == "union_tag_invalid":
        location = "eventType"
        message = (
            f"unknown event type {error['input'].get('eventType')!r}"
            if isinstance(error["input"], dict)
            else message
        )
    elif error["type"] == "union_tag_not_found":
        location = "eventType"
        message = "field required"
    return f"{location or '(event)'}: {message}"


_UNION_TAGS = frozenset(t.value for t in EventType)


def describe_validation_error(exc: ValidationError) -> EventValidationError:
    """Pydantic's error as an EventValidationError whose problems name each field."""
    return EventValidationError([_describe(err) for err in exc.errors()])


def parse_event(data: dict[str, Any] | bytes | str) -> Event:
    """Validate camelCase JSON (or its parsed dict) into a typed event, strictly: ``"5"`` is
    not a number and ``1`` is not ``true``.

    Raises EventValidationError whose message names every offending field.
    """
    try:
        if isinstance(data, dict):
            return _EVENT_ADAPTER.validate_python(data, strict=True)
        return _EVENT_ADAPTER.validate_json(data, strict=True)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None
