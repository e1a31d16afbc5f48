"""OTLP/HTTP receiver for Claude Code's telemetry: ``POST /v1/logs`` and ``POST /v1/metrics``.

Claude Code exports OpenTelemetry logs (one record per event) and metrics when run with
``CLAUDE_CODE_ENABLE_TELEMETRY=1 OTEL_LOGS_EXPORTER=otlp OTEL_METRICS_EXPORTER=otlp
OTEL_EXPORTER_OTLP_PROTOCOL=http/json|http/protobuf OTEL_EXPORTER_OTLP_ENDPOINT=<gateway>``.
Both encodings are decoded into the same ``opentelemetry-proto`` messages (JSON through the
protobuf JSON mapping, so the two cannot drift apart) and flattened to :class:`TelemetryRecord`
and :class:`MetricPoint`.

What Claude Code 2.1.328 sends (observed with the real binary, both protocols; the exporter is
``OTel-OTLP-Exporter-JavaScript/0.208.0``, uncompressed unless
``OTEL_EXPORTER_OTLP_COMPRESSION=gzip``):

* Logs: resource attributes ``service.name=claude-code``, ``service.version``, ``os.type``,
  ``os.version``, ``host.arch``; scope ``com.anthropic.claude_code.events``. Each record's body is
  ``claude_code.<event>``; its attributes carry ``event.name``, ``session.id``, ``user.id``,
  ``event.timestamp`` (RFC 3339), ``event.sequence``, ``prompt.id`` and the event's own fields.
  ``api_request``: ``model``, ``input_tokens``, ``output_tokens``, ``cache_read_tokens``,
  ``cache_creation_tokens``, ``cache_creation_5m_tokens``, ``cache_creation_1h_tokens``,
  ``cost_usd`` (double), ``cost_usd_micros``, ``duration_ms``, ``ttft_ms``, ``request_id`` (the
  API's ``request-id`` response header), ``speed``, ``query_source``, ``effort`` -- numbers as
  real ``intValue``/``doubleValue`` (in JSON, ``intValue`` is a JSON *number*, not the string
  the OTLP spec prescribes; both are accepted). ``tool_decision`` and ``tool_result`` carry
  ``tool_use_id``, ``tool_name`` and the ``request_id`` of the model response that asked for the
  tool; ``tool_result``'s ``success`` (``"true"``), ``duration_ms`` and sizes, ``user_prompt``'s
  ``prompt_length`` and ``hook_execution_complete``'s counts and ``total_duration_ms`` are
  *strings* (``"153"``). Those are converted here for known numeric / boolean keys.
* Metrics: scope ``com.anthropic.claude_code``; monotonic *delta* sums (``asDouble``) such as
  ``claude_code.cost.usage`` (USD, per ``model``), ``claude_code.token.usage`` (per ``model``
  and ``type``: ``input``, ``output``, ``cacheRead``, ``cacheCreation``),
  ``claude_code.session.count``, ``claude_code.active_time.total``; ``session.id`` is a data
  point attribute.

Trace and span ids are not used and are ignored.
"""

from __future__ import annotations

import base64
import inspect
import json
import re
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from trailguard.errors import InvalidInputError

__all__ = [
    "JSON_CONTENT_TYPE",
    "MAX_BODY_BYTES",
    "PROTOBUF_CONTENT_TYPE",
    "ApiRequestUsage",
    "AttributeValue",
    "MetricPoint",
    "OTLPError",
    "TelemetryRecord",
    "api_request_usage",
    "create_otlp_router",
    "decode_body",
    "media_kind",
    "parse_logs",
    "parse_metrics",
]

AttributeValue = str | int | float | bool

JSON_CONTENT_TYPE = "application/json"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
_PROTOBUF_TYPES = frozenset({PROTOBUF_CONTENT_TYPE, "application/protobuf"})
MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest export accepted, after decompression (413 beyond)."""

EVENT_PREFIX = "claude_code."
"""Claude Code's log record bodies are ``claude_code.<event.name>``."""

# Keys whose string values are converted to numbers: an exact key or its last dotted segment, or
# a segment with one of these prefixes / suffixes. A value that is not a plain decimal number
# stays a string.
_NUMERIC_KEYS = frozenset(
    {
        "event.sequence",
        "attempt",
        "attempts",
        "total_attempts",
        "status_code",
        "cost_usd",
        "duration_ms",
        "total_duration_ms",
        "prompt_length",
        "response_length",
    }
)
_NUMERIC_PREFIXES = ("num_",)
_NUMERIC_SUFFIXES = (
    "_tokens",
    "_ms",
    "_bytes",
    "_chars",
    "_usd",
    "_micros",
    "_cents",
    "_count",
    "_length",
    "_size",
    "_pct",
)
_FLOAT_SUFFIXES = ("_usd",)
"""Always floats (``"0"`` becomes ``0.0``)."""
_BOOLEAN_KEYS = frozenset({"success", "safe_mode", "managed_only", "sandbox_enabled"})
"""Sent as ``"true"`` / ``"false"``; converted to bool."""
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_IGNORED_JSON_KEYS = frozenset({"traceId", "spanId", "trace_id", "span_id"})
"""Hex in OTLP/JSON but base64 in the protobuf JSON mapping; unused here, so dropped."""


class OTLPError(InvalidInputError):
    """An export that cannot be accepted; ``status_code`` is the HTTP answer (400, 413, 415)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class TelemetryRecord:
    """One OTLP log record, flattened.

    ``attributes`` holds the resource attributes overlaid with the record's own (the record's
    win); nested ``kvlistValue`` maps become dotted keys, arrays a compact JSON string, bytes
    base64. String values of known numeric keys (tokens, ``cost_usd``, ``duration_ms``, ...)
    become int / float, and ``"true"`` / ``"false"`` of known boolean keys (``success``) bool.
    """

    event_name: str
    """``event.name`` (``api_request``, ``tool_result``, ...); else the record's ``eventName``;
    else its body minus ``claude_code.``; else ``""``."""
    session_id: str | None
    attributes: dict[str, AttributeValue]
    timestamp_ns: int | None
    """``timeUnixNano``, else ``observedTimeUnixNano``; None when both are 0."""


@dataclass(frozen=True)
class ApiRequestUsage:
    """Usage of one model request, from an ``api_request`` record."""

    session_id: str | None
    request_id: str | None
    """The Anthropic API ``request-id`` response header (``req_...``), which the gateway's proxy
    sees too; ``tool_decision`` / ``tool_result`` records name it for the tool calls it asked."""
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    """All cache writes; the 5 m / 1 h split below may not add up to it (0 / 0 when the API
    response had no ``cache_creation`` breakdown)."""
    cost_usd: float | None
    """What Claude Code itself priced the request at."""
    duration_ms: float | None
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0


@dataclass(frozen=True)
class MetricPoint:
    """One data point of one metric, flattened like :class:`TelemetryRecord`."""

    name: str
    attributes: dict[str, AttributeValue]
    value: int | float
    """The number for sums and gauges; the sum of observations for histograms / summaries."""
    session_id: str | None
    unit: str = ""
    kind: Literal["sum", "gauge", "histogram", "exponential_histogram", "summary"] = "sum"
    temporality: Literal["delta", "cumulative"] | None = None
    """For sums and histograms; Claude Code sends delta sums unless told otherwise
    (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``)."""
    monotonic: bool | None = None
    count: int | None = None
    """Number of observations, for histograms and summaries."""
    timestamp_ns: int | None = None
    start_timestamp_ns: int | None = None


# -- content negotiation and decompression ---------------------------------------------------------


def media_kind(content_type: str | None) -> Literal["json", "protobuf"]:
    """``"json"`` or ``"protobuf"`` for a Content-Type header; :class:`OTLPError` (415) else."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSON_CONTENT_TYPE:
        return "json"
    if media in _PROTOBUF_TYPES:
        return "protobuf"
    shown = media or "none"
    raise OTLPError(
        f"unsupported content type {shown!r}: OTLP/HTTP takes {JSON_CONTENT_TYPE} or "
        f"{PROTOBUF_CONTENT_TYPE}",
        415,
    )


def _inflate(data: bytes, wbits: int, name: str, limit: int) -> bytes:
    out = bytearray()
    while data:
        decompressor = zlib.decompressobj(wbits)
        try:
            out += decompressor.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise OTLPError(f"body is not valid {name}: {exc}") from None
        if len(out) > limit:
            raise OTLPError(f"decompressed body exceeds {limit} bytes", 413)
        if not decompressor.eof:
            raise OTLPError(f"body is not valid {name}: truncated stream")
        data = decompressor.unused_data
        if wbits != 31:  # only gzip has concatenated members
            break
    return bytes(out)


def decode_body(body: bytes, content_encoding: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """Undo ``Content-Encoding`` (``gzip``, ``deflate``, ``identity``; several comma-separated
    ones in the order applied). Raises :class:`OTLPError`: 400 for a corrupt body, 413 past
    ``limit`` bytes, 415 for an unknown coding."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, 31, "gzip", limit)
        elif coding == "deflate":
            body = _inflate(body, 15, "deflate (zlib)", limit)
        elif coding != "identity":
            raise OTLPError(f"unsupported content encoding {coding!r}: use gzip or none", 415)
    if len(body) > limit:
        raise OTLPError(f"body exceeds {limit} bytes", 413)
    return body


# -- decoding --------------------------------------------------------------------------------------

_M = TypeVar("_M", bound=Message)


def _strip_ids(document: Any) -> None:
    """Drop trace / span ids everywhere (iteratively: documents may be deeply nested)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in _IGNORED_JSON_KEYS.intersection(item):
                del item[key]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _load(body: bytes, content_type: str | None, message: type[_M]) -> _M:
    kind = media_kind(content_type)
    what = message.DESCRIPTOR.name
    if kind == "protobuf":
        try:
            decoded: _M = message.FromString(body)
        except (DecodeError, RecursionError) as exc:
            raise OTLPError(f"malformed protobuf {what}: {exc}") from None
        return decoded
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OTLPError(f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OTLPError(f"an OTLP/JSON {what} must be a JSON object, not {type(document).__name__}")
    _strip_ids(document)
    parsed: _M = message()
    try:
        json_format.ParseDict(document, parsed, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise OTLPError(f"invalid OTLP/JSON {what}: {exc}") from None
    return parsed


def _plain(value: AnyValue) -> Any:
    """An AnyValue as plain JSON-able Python (for arrays)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _plain(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind) if kind else None


def _is_numeric_key(key: str) -> bool:
    name = key.rsplit(".", 1)[-1]
    return (
        key in _NUMERIC_KEYS
        or name in _NUMERIC_KEYS
        or name.startswith(_NUMERIC_PREFIXES)
        or name.endswith(_NUMERIC_SUFFIXES)
    )


def _coerce(key: str, value: AttributeValue) -> AttributeValue:
    """Known numeric keys' numeric strings to numbers, known boolean keys' strings to bool."""
    name = key.rsplit(".", 1)[-1]
    always_float = name.endswith(_FLOAT_SUFFIXES)
    if isinstance(value, str):
        if name in _BOOLEAN_KEYS and value in ("true", "false"):
            return value == "true"
        if not _is_numeric_key(key):
            return value
        text = value.strip()
        if _INTEGER.fullmatch(text) and not always_float:
            return int(text)
        if _DECIMAL.fullmatch(text):
            return float(text)
        return value
    if always_float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _put(out: dict[str, AttributeValue], key: str, value: AnyValue) -> None:
    kind = value.WhichOneof("value")
    flat: AttributeValue
    if kind is None:
        return
    if kind == "kvlist_value":
        for item in value.kvlist_value.values:
            _put(out, f"{key}.{item.key}", item.value)
        return
    if kind == "array_value":
        flat = json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)
    elif kind == "bytes_value":
        flat = base64.b64encode(value.bytes_value).decode("ascii")
    else:
        flat = getattr(value, kind)
    out[key] = _coerce(key, flat)


def _flatten(attributes: Iterable[KeyValue]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for item in attributes:
        _put(out, item.key, item.value)
    return out


def _session(attributes: dict[str, AttributeValue]) -> str | None:
    value = attributes.get("session.id")
    return None if value is None or value == "" else str(value)


def _event_name(attributes: dict[str, AttributeValue], record: LogRecord) -> str:
    name = attributes.get("event.name")
    if isinstance(name, str) and name:
        return name
    if record.event_name:
        return record.event_name
    body = record.body.string_value if record.body.WhichOneof("value") == "string_value" else ""
    return body.removeprefix(EVENT_PREFIX) if body.startswith(EVENT_PREFIX) else ""


def parse_logs(body: bytes, content_type: str) -> list[TelemetryRecord]:
    """The log records of an ``ExportLogsServiceRequest`` (OTLP/JSON or protobuf, already
    decompressed). Raises :class:`OTLPError` naming the problem (415 for an unsupported content
    type, 400 for a malformed body)."""
    request = _load(body, content_type, ExportLogsServiceRequest)
    records: list[TelemetryRecord] = []
    for resource_logs in request.resource_logs:
        resource = _flatten(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attributes = {**resource, **_flatten(record.attributes)}
                timestamp = record.time_unix_nano or record.observed_time_unix_nano
                records.append(
                    TelemetryRecord(
                        event_name=_event_name(attributes, record),
                        session_id=_session(attributes),
                        attributes=attributes,
                        timestamp_ns=timestamp or None,
                    )
                )
    return records


_TEMPORALITY: dict[int, Literal["delta", "cumulative"]] = {1: "delta", 2: "cumulative"}


def _points(metric: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(data point, MetricPoint fields other than name / attributes / session) per point."""
    kind = metric.WhichOneof("data")
    if kind in ("sum", "gauge"):
        data = getattr(metric, kind)
        extra: dict[str, Any] = {"kind": kind}
        if kind == "sum":
            extra["temporality"] = _TEMPORALITY.get(data.aggregation_temporality)
            extra["monotonic"] = data.is_monotonic
        for point in data.data_points:
            which = point.WhichOneof("value")
            if which is not None:
                yield point, {**extra, "value": getattr(point, which)}
    elif kind in ("histogram", "exponential_histogram", "summary"):
        data = getattr(metric, kind)
        extra = {"kind": kind}
        if kind != "summary":
            extra["temporality"] = _TEMPORALITY.get(data.aggregation_temporality)
        for point in data.data_points:
            yield point, {**extra, "value": float(point.sum), "count": int(point.count)}


def parse_metrics(body: bytes, content_type: str) -> list[MetricPoint]:
    """The data points of an ``ExportMetricsServiceRequest`` (OTLP/JSON or protobuf, already
    decompressed). Points without a value are skipped. Raises :class:`OTLPError`."""
    request = _load(body, content_type, ExportMetricsServiceRequest)
    points: list[MetricPoint] = []
    for resource_metrics in request.resource_metrics:
        resource = _flatten(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point, extra in _points(metric):
                    attributes = {**resource, **_flatten(point.attributes)}
                    points.append(
                        MetricPoint(
                            name=metric.name,
                            attributes=attributes,
                            session_id=_session(attributes),
                            unit=metric.unit,
                            timestamp_ns=point.time_unix_nano or None,
                            start_timestamp_ns=point.start_time_unix_nano or None,
                            **extra,
                        )
                    )
    return points


def _int(value: AttributeValue | None) -> int:
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int | float):
        return int(value)
    try:
        return int(float(value))
    except ValueError:
        return 0


def _float(value: AttributeValue | None) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _str(value: AttributeValue | None) -> str | None:
    return None if value is None or value == "" else str(value)


def api_request_usage(record: TelemetryRecord) -> ApiRequestUsage | None:
    """The usage an ``api_request`` record reports; None for any other record. Missing or
    unreadable token counts are 0, a missing cost or duration None."""
    if record.event_name != "api_request":
        return None
    a = record.attributes
    return ApiRequestUsage(
        session_id=record.session_id,
        request_id=_str(a.get("request_id")),
        model=_str(a.get("model")),
        input_tokens=_int(a.get("input_tokens")),
        output_tokens=_int(a.get("output_tokens")),
        cache_read_tokens=_int(a.get("cache_read_tokens")),
        cache_creation_tokens=_int(a.get("cache_creation_tokens")),
        cost_usd=_float(a.get("cost_usd")),
        duration_ms=_float(a.get("duration_ms")),
        cache_creation_5m_tokens=_int(a.get("cache_creation_5m_tokens")),
        cache_creation_1h_tokens=_int(a.get("cache_creation_1h_tokens")),
    )


TOOL_CALL_EVENTS: Final = frozenset({"tool_decision", "tool_result"})


def tool_call_of(record: TelemetryRecord) -> tuple[str, str] | None:
    """``(request_id, tool_use_id)`` of a ``tool_decision`` / ``tool_result`` record: the model
    request that asked for the tool call. None for other records or when either is missing."""
    if record.event_name not in TOOL_CALL_EVENTS:
        return None
    request_id = _str(record.attributes.get("request_id"))
    tool_use_id = _str(record.attributes.get("tool_use_id"))
    if request_id is None or tool_use_id is None:
        return None
    return request_id, tool_use_id


# -- the router ------------------------------------------------------------------------------------

_T = TypeVar("_T")

_GRPC_INVALID_ARGUMENT = 3
_GRPC_RESOURCE_EXHAUSTED = 8


def _status_protobuf(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` {code = 1; message = 2}, hand-encoded (no googleapis dependency)."""
    text = message.encode("utf-8")
    out = bytearray(b"\x08")  # field 1, varint
    out += _varint(code)
    out += b"\x12"  # field 2, length-delimited
    out += _varint(len(text))
    out += text
    return bytes(out)


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _error_response(error: OTLPError, content_type: str | None) -> Response:
    """The OTLP failure answer: a Status message in the request's encoding (JSON when that is
    unknown)."""
    code = _GRPC_RESOURCE_EXHAUSTED if error.status_code == 413 else _GRPC_INVALID_ARGUMENT
    try:
        kind = media_kind(content_type)
    except OTLPError:
        kind = "json"
    if kind == "protobuf":
        return Response(
            _status_protobuf(code, str(error)),
            status_code=error.status_code,
            media_type=PROTOBUF_CONTENT_TYPE,
        )
    return Response(
        orjson.dumps({"code": code, "message": str(error)}),
        status_code=error.status_code,
        media_type=JSON_CONTENT_TYPE,
    )


def _success_response(content_type: str | None, empty: Message) -> Response:
    if media_kind(content_type) == "protobuf":
        return Response(empty.SerializeToString(), media_type=PROTOBUF_CONTENT_TYPE)
    return Response(b"{}", media_type=JSON_CONTENT_TYPE)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise OTLPError(f"body of {declared} bytes exceeds {limit} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise OTLPError(f"body exceeds {limit} bytes", 413)
    return bytes(body)


async def _deliver(callback: Callable[[list[_T]], Any] | None, items: list[_T]) -> None:
    if callback is None or not items:
        return
    result = callback(items)
    if inspect.isawaitable(result):
        await result


def _openapi(description: str) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {
                    JSON_CONTENT_TYPE: {"schema": {"type": "object"}},
                    PROTOBUF_CONTENT_TYPE: binary,
                },
            }
        },
        "responses": {
            200: {
                "description": f"Accepted ({description}Response: {{}} or empty protobuf)",
                "content": {
                    JSON_CONTENT_TYPE: {"schema": {"type": "object"}},
                    PROTOBUF_CONTENT_TYPE: binary,
                },
            },
            400: {"description": "Malformed export (a google.rpc.Status in the request's type)"},
            413: {"description": "Export too large"},
            415: {"description": "Unsupported Content-Type or Content-Encoding"},
        },
        "response_class": Response,
    }


@dataclass
class OTLPEndpoint:
    """One OTLP/HTTP export route's work: decode the body, parse it, hand the items on, answer
    in the request's own content type."""

    parse: Callable[[bytes, str], list[Any]]
    empty: Message
    callback: Callable[[list[Any]], Any] | None = None
    limit: int = MAX_BODY_BYTES

    @classmethod
    def logs(cls, limit: int = MAX_BODY_BYTES) -> OTLPEndpoint:
        return cls(parse_logs, ExportLogsServiceResponse(), None, limit)

    @classmethod
    def metrics(cls, limit: int = MAX_BODY_BYTES) -> OTLPEndpoint:
        return cls(parse_metrics, ExportMetricsServiceResponse(), None, limit)

    async def __call__(self, request: Request) -> Response:
        return await self.respond(request, self.callback)

    async def respond(
        self, request: Request, callback: Callable[[list[Any]], Any] | None
    ) -> Response:
        """Answer ``request``; ``callback`` gets the parsed items (not called when empty)."""
        content_type = request.headers.get("content-type")
        try:
            media_kind(content_type)
            raw = await _read_body(request, self.limit)
            body = decode_body(raw, request.headers.get("content-encoding"), self.limit)
            items = self.parse(body, content_type or "")
        except OTLPError as error:
            return _error_response(error, content_type)
        await _deliver(callback, items)
        return _success_response(content_type, self.empty)


def openapi_of(description: str) -> dict[str, Any]:
    """The OpenAPI description of an OTLP/HTTP export route (for routers defined elsewhere)."""
    return _openapi(description)


def create_otlp_router(
    on_logs: Callable[[list[TelemetryRecord]], Awaitable[None] | None],
    on_metrics: Callable[[list[MetricPoint]], Awaitable[None] | None] | None = None,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    include_in_schema: bool = True,
) -> APIRouter:
    """``POST /v1/logs`` and ``POST /v1/metrics`` (mount at the root: Claude Code appends these
    paths to ``OTEL_EXPORTER_OTLP_ENDPOINT``).

    Each export is decompressed (gzip / deflate), decoded (``application/json`` or
    ``application/x-protobuf``) and handed to the callback as one list (not called when empty);
    an awaitable result is awaited, a plain function runs on the event loop, so keep it quick.
    Answers 200 with ``{}`` or an empty protobuf ``Export*ServiceResponse`` (in the request's
    type); 400 for a malformed body, 413 past ``max_body_bytes`` (decompressed), 415 for an
    unsupported Content-Type / Content-Encoding, each with a ``google.rpc.Status`` naming the
    problem. Metrics are decoded (so malformed ones get a 400) even without ``on_metrics``.
    An exception raised by a callback propagates (500). Authentication is the includer's
    business: ``app.include_router(router, dependencies=[...])``; Claude Code sends headers from
    ``OTEL_EXPORTER_OTLP_HEADERS``. ``include_in_schema=False`` keeps both operations out of the
    OpenAPI document.
    """
    router = APIRouter(tags=["telemetry"], include_in_schema=include_in_schema)
    logs = OTLPEndpoint(parse_logs, ExportLogsServiceResponse(), on_logs, max_body_bytes)
    metrics = OTLPEndpoint(
        parse_metrics, ExportMetricsServiceResponse(), on_metrics, max_body_bytes
    )

    @router.post("/v1/logs", summary="OTLP/HTTP logs export", **_openapi("ExportLogsService"))
    async def otlp_logs(request: Request) -> Response:
        """Claude Code's telemetry events (``api_request``, ``tool_result``, ...)."""
        return await logs(request)

    @router.post(
        "/v1/metrics", summary="OTLP/HTTP metrics export", **_openapi("ExportMetricsService")
    )
    async def otlp_metrics(request: Request) -> Response:
        """Claude Code's metrics (``claude_code.cost.usage``, ``claude_code.token.usage``, ...)."""
        return await metrics(request)

    return router
