"""The OTLP/HTTP receiver (trailguard.capture.otlp): Claude Code's telemetry logs and metrics.

The request bodies are built here from the attribute shapes Claude Code 2.1.328 really sends
(observed with the real binary, both protocols): ``api_request`` numbers as int / double values,
``tool_result`` / ``user_prompt`` / ``hook_execution_complete`` numbers and ``success`` as
strings. Each body is built independently as OTLP/JSON (``intValue`` as the string the OTLP spec
prescribes, and as the JSON number Claude Code's JavaScript exporter actually sends) and as
protobuf through the ``opentelemetry-proto`` classes; all must parse to the same records. The
last tests run the real CLI against the router served by uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import socket
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from trailguard.capture.otlp import (
    ApiRequestUsage,
    MetricPoint,
    OTLPError,
    TelemetryRecord,
    api_request_usage,
    create_otlp_router,
    decode_body,
    parse_logs,
    parse_metrics,
)

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
SESSION = "0c0ddd0f-115b-4bc6-94e8-1a0ec53ad5b8"
TOOL_USE = "toolu_42gkpVCm84lYznqbJZdH9RwO"
REQUEST_1 = "req_7GAIJn7m3HvfGSf13beVp7Xi"
REQUEST_2 = "req_QYcAX2MfYTRACgpb2yvvcrVz"
T0 = 1_795_678_246_639_000_000

# -- building the same export as OTLP/JSON and as protobuf -----------------------------------------

# An attribute value: (kind, value) with kind one of string / int / double / bool / bytes /
# array (a list of values) / kvlist (a list of (key, value) pairs).
Value = tuple[str, Any]
Attrs = Sequence[tuple[str, Value]]


def s(value: str) -> Value:
    return ("string", value)


def i(value: int) -> Value:
    return ("int", value)


def d(value: float) -> Value:
    return ("double", value)


def b(value: bool) -> Value:
    return ("bool", value)


def json_value(value: Value, *, int_as_string: bool) -> dict[str, Any]:
    kind, inner = value
    if kind == "int":
        return {"intValue": str(inner) if int_as_string else inner}
    if kind == "bytes":
        return {"bytesValue": base64.b64encode(inner).decode()}
    if kind == "array":
        values = [json_value(v, int_as_string=int_as_string) for v in inner]
        return {"arrayValue": {"values": values}}
    if kind == "kvlist":
        return {"kvlistValue": {"values": json_attrs(inner, int_as_string=int_as_string)}}
    return {f"{kind}Value": inner}


def json_attrs(attrs: Attrs, *, int_as_string: bool) -> list[dict[str, Any]]:
    return [
        {"key": key, "value": json_value(value, int_as_string=int_as_string)}
        for key, value in attrs
    ]


def pb_value(value: Value) -> AnyValue:
    kind, inner = value
    if kind == "array":
        return AnyValue(array_value=ArrayValue(values=[pb_value(v) for v in inner]))
    if kind == "kvlist":
        return AnyValue(kvlist_value=KeyValueList(values=pb_attrs(inner)))
    return AnyValue(**{f"{kind}_value": inner})


def pb_attrs(attrs: Attrs) -> list[KeyValue]:
    return [KeyValue(key=key, value=pb_value(value)) for key, value in attrs]


RESOURCE: Attrs = [
    ("host.arch", s("amd64")),
    ("os.type", s("linux")),
    ("service.name", s("claude-code")),
    ("service.version", s("2.1.328")),
]


def common(event: str, sequence: int) -> Attrs:
    return [
        ("user.id", s("2c8e93524d1ed3926f855caeb3e163199ffa2ea7e526af331aff20eb23404b38")),
        ("session.id", s(SESSION)),
        ("anthropic.provider", s("firstParty")),
        ("anthropic.custom_base_url", b(True)),
        ("terminal.type", s("non-interactive")),
        ("event.name", s(event)),
        ("event.timestamp", s("2026-11-26T07:30:47.367Z")),
        ("event.sequence", i(sequence)),
        ("prompt.id", s("e0205971-385b-4f12-8087-ebeaf5c57593")),
    ]


def api_request(sequence: int, request_id: str, tokens: tuple[int, int, int, int]) -> Attrs:
    inputs, outputs, cache_read, cache_creation = tokens
    return [
        *common("api_request", sequence),
        ("model", s("claude-opus-5-5")),
        ("input_tokens", i(inputs)),
        ("output_tokens", i(outputs)),
        ("cache_read_tokens", i(cache_read)),
        ("cache_creation_tokens", i(cache_creation)),
        ("cache_creation_5m_tokens", i(0)),
        ("cache_creation_1h_tokens", i(0)),
        ("cost_usd", d(0.00606)),
        ("cost_usd_micros", i(6060)),
        ("duration_ms", i(356)),
        ("ttft_ms", i(82)),
        ("request_id", s(request_id)),
        ("speed", s("normal")),
        ("query_source", s("sdk")),
        ("effort", s("medium")),
    ]


# (event, attributes) of a session as Claude Code 2.1.328 reports it (values as observed).
SESSION_RECORDS: list[tuple[str, Attrs]] = [
    (
        "managed_settings_resolved",
        [
            *common("managed_settings_resolved", 0),
            ("managed_settings.sources", ("array", [])),
            ("managed_settings.trigger", s("startup")),
        ],
    ),
    (
        "user_prompt",
        [
            *common("user_prompt", 1),
            ("prompt_length", s("2")),
            ("prompt", s("<REDACTED>")),
        ],
    ),
    (
        "tool_decision",
        [
            *common("tool_decision", 2),
            ("decision", s("accept")),
            ("source", s("config")),
            ("tool_name", s("Bash")),
            ("tool_use_id", s(TOOL_USE)),
            ("request_id", s(REQUEST_1)),
        ],
    ),
    ("api_request", api_request(3, REQUEST_1, (1000, 50, 300, 200))),
    (
        "hook_execution_complete",
        [
            *common("hook_execution_complete", 4),
            ("hook_event", s("PreToolUse")),
            ("hook_name", s("PreToolUse:Bash")),
            ("num_hooks", s("1")),
            ("num_success", s("1")),
            ("num_blocking", s("0")),
            ("total_duration_ms", s("17")),
            ("stdout_chars", s("120")),
            ("safe_mode", s("false")),
        ],
    ),
    (
        "tool_result",
        [
            *common("tool_result", 5),
            ("tool_name", s("Bash")),
            ("tool_use_id", s(TOOL_USE)),
            ("success", s("true")),
            ("duration_ms", s("153")),
            ("tool_input_size_bytes", s("40")),
            ("tool_result_size_bytes", s("2")),
            ("request_id", s(REQUEST_1)),
        ],
    ),
    ("api_request", api_request(6, REQUEST_2, (1200, 30, 500, 0))),
]


def logs_json(
    records: list[tuple[str, Attrs]] = SESSION_RECORDS, *, int_as_string: bool = True
) -> bytes:
    log_records = [
        {
            "timeUnixNano": str(T0 + n * 1_000_000),
            "observedTimeUnixNano": str(T0 + n * 1_000_000),
            "body": {"stringValue": f"claude_code.{event}"},
            "attributes": json_attrs(attrs, int_as_string=int_as_string),
            "droppedAttributesCount": 0,
        }
        for n, (event, attrs) in enumerate(records)
    ]
    document = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": json_attrs(RESOURCE, int_as_string=int_as_string),
                    "droppedAttributesCount": 0,
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "com.anthropic.claude_code.events", "version": "2.1.328"},
                        "logRecords": log_records,
                    }
                ],
            }
        ]
    }
    return json.dumps(document).encode()


def logs_protobuf(records: list[tuple[str, Attrs]] = SESSION_RECORDS) -> bytes:
    log_records = [
        LogRecord(
            time_unix_nano=T0 + n * 1_000_000,
            observed_time_unix_nano=T0 + n * 1_000_000,
            body=AnyValue(string_value=f"claude_code.{event}"),
            attributes=pb_attrs(attrs),
        )
        for n, (event, attrs) in enumerate(records)
    ]
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=pb_attrs(RESOURCE)),
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(
                            name="com.anthropic.claude_code.events", version="2.1.328"
                        ),
                        log_records=log_records,
                    )
                ],
            )
        ]
    )
    return request.SerializeToString()


def pb_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, encoded by hand."""
    length = bytearray()
    size = len(payload)
    while True:
        length.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            break
    return bytes([number << 3 | 2]) + bytes(length) + payload


def one_record_json(record: dict[str, Any]) -> bytes:
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}).encode()


def one_record_protobuf(record: LogRecord) -> bytes:
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])]
    )
    return request.SerializeToString()


# -- logs: JSON and protobuf agree -----------------------------------------------------------------


@pytest.fixture(scope="module")
def records() -> list[TelemetryRecord]:
    return parse_logs(logs_protobuf(), PROTOBUF)


@pytest.mark.parametrize("int_as_string", [True, False], ids=["intValue-string", "intValue-number"])
def test_json_and_protobuf_parse_to_the_same_records(records, int_as_string):
    from_json = parse_logs(logs_json(int_as_string=int_as_string), JSON)
    assert from_json == records
    assert [r.event_name for r in records] == [event for event, _ in SESSION_RECORDS]


def test_content_type_parameters_and_case_are_ignored(records):
    assert parse_logs(logs_json(), "Application/JSON; charset=utf-8") == records
    assert parse_logs(logs_protobuf(), "application/protobuf") == records


def test_session_id_timestamps_and_resource_attributes(records):
    assert {r.session_id for r in records} == {SESSION}
    assert [r.timestamp_ns for r in records] == [
        T0 + n * 1_000_000 for n in range(len(SESSION_RECORDS))
    ]
    first = records[0].attributes
    assert first["service.name"] == "claude-code"
    assert first["service.version"] == "2.1.328"
    assert first["anthropic.custom_base_url"] is True
    assert first["event.sequence"] == 0
    assert first["managed_settings.sources"] == "[]"


# -- logs: the real attribute shapes ---------------------------------------------------------------


def by_event(records: list[TelemetryRecord], name: str) -> list[TelemetryRecord]:
    return [r for r in records if r.event_name == name]


def test_string_numbers_of_known_numeric_keys_become_numbers(records):
    [result] = by_event(records, "tool_result")
    assert result.attributes["duration_ms"] == 153
    assert result.attributes["tool_input_size_bytes"] == 40
    assert result.attributes["tool_result_size_bytes"] == 2
    assert result.attributes["success"] is True
    assert result.attributes["tool_use_id"] == TOOL_USE
    assert result.attributes["request_id"] == REQUEST_1
    [hook] = by_event(records, "hook_execution_complete")
    assert hook.attributes["num_hooks"] == 1
    assert hook.attributes["num_blocking"] == 0
    assert hook.attributes["total_duration_ms"] == 17
    assert hook.attributes["stdout_chars"] == 120
    assert hook.attributes["safe_mode"] is False
    assert hook.attributes["hook_name"] == "PreToolUse:Bash"
    [prompt] = by_event(records, "user_prompt")
    assert prompt.attributes["prompt_length"] == 2


def test_other_strings_stay_strings():
    attrs: Attrs = [
        ("event.name", s("tool_result")),
        ("tool_use_id", s("12345")),  # numeric-looking, but not a numeric key
        ("prompt.id", s("42")),
        ("duration_ms", s("fast")),  # a numeric key with a non-number stays a string
        ("input_tokens", s("1_000")),  # Python would take it; a decimal number it is not
        ("success", s("yes")),
        ("cost_usd", s("0.5")),
        ("total_cost_usd", s("2")),  # *_usd is always a float
    ]
    [record] = parse_logs(logs_json([("tool_result", attrs)]), JSON)
    assert record.attributes["tool_use_id"] == "12345"
    assert record.attributes["prompt.id"] == "42"
    assert record.attributes["duration_ms"] == "fast"
    assert record.attributes["input_tokens"] == "1_000"
    assert record.attributes["success"] == "yes"
    assert record.attributes["cost_usd"] == 0.5
    assert record.attributes["total_cost_usd"] == 2.0
    assert isinstance(record.attributes["total_cost_usd"], float)


def test_api_request_usage_from_real_records(records):
    usages = [api_request_usage(r) for r in by_event(records, "api_request")]
    assert usages == [
        ApiRequestUsage(
            session_id=SESSION,
            request_id=REQUEST_1,
            model="claude-opus-5-5",
            input_tokens=1000,
            output_tokens=50,
            cache_read_tokens=300,
            cache_creation_tokens=200,
            cost_usd=0.00606,
            duration_ms=356.0,
        ),
        ApiRequestUsage(
            session_id=SESSION,
            request_id=REQUEST_2,
            model="claude-opus-5-5",
            input_tokens=1200,
            output_tokens=30,
            cache_read_tokens=500,
            cache_creation_tokens=0,
            cost_usd=0.00606,
            duration_ms=356.0,
        ),
    ]
    assert all(api_request_usage(r) is None for r in records if r.event_name != "api_request")


def test_api_request_usage_with_string_numbers_and_missing_fields():
    attrs: Attrs = [
        ("event.name", s("api_request")),
        ("session.id", s(SESSION)),
        ("model", s("claude-sonnet-5")),
        ("input_tokens", s("3900")),
        ("output_tokens", s("240")),
        ("cache_read_tokens", s("1500")),
        ("cache_creation_5m_tokens", s("10")),
        ("cache_creation_1h_tokens", s("20")),
        ("cost_usd", s("0.0207")),
        ("duration_ms", s("812.5")),
    ]
    [record] = parse_logs(logs_json([("api_request", attrs)]), JSON)
    assert api_request_usage(record) == ApiRequestUsage(
        session_id=SESSION,
        request_id=None,
        model="claude-sonnet-5",
        input_tokens=3900,
        output_tokens=240,
        cache_read_tokens=1500,
        cache_creation_tokens=0,
        cost_usd=0.0207,
        duration_ms=812.5,
        cache_creation_5m_tokens=10,
        cache_creation_1h_tokens=20,
    )
    bare = TelemetryRecord("api_request", None, {"input_tokens": "lots"}, None)
    assert api_request_usage(bare) == ApiRequestUsage(
        session_id=None,
        request_id=None,
        model=None,
        input_tokens=0,
        output_tokens=0,
        cache_read_tokens=0,
        cache_creation_tokens=0,
        cost_usd=None,
        duration_ms=None,
    )


def test_nested_values_are_flattened_the_same_from_json_and_protobuf():
    attrs: Attrs = [
        ("event.name", s("custom")),
        (
            "agent",
            ("kvlist", [("id", s("a1")), ("depth", i(2)), ("meta", ("kvlist", [("x", b(True))]))]),
        ),
        ("list", ("array", [s("a"), i(1), d(1.5), ("kvlist", [("k", s("v"))])])),
        ("blob", ("bytes", b"\x00\xff")),
        ("empty", ("kvlist", [])),
    ]
    [from_json] = parse_logs(logs_json([("custom", attrs)]), JSON)
    [from_protobuf] = parse_logs(logs_protobuf([("custom", attrs)]), PROTOBUF)
    assert from_json == from_protobuf
    flat = from_json.attributes
    assert flat["agent.id"] == "a1"
    assert flat["agent.depth"] == 2
    assert flat["agent.meta.x"] is True
    assert json.loads(str(flat["list"])) == ["a", 1, 1.5, {"k": "v"}]
    assert flat["blob"] == "AP8="
    assert "empty" not in flat


def test_event_name_fallbacks_and_timestamps():
    cases = [
        # event.name wins over the body
        (
            {
                "attributes": [{"key": "event.name", "value": {"stringValue": "a"}}],
                "body": {"stringValue": "claude_code.b"},
            },
            "a",
        ),
        ({"eventName": "c", "body": {"stringValue": "claude_code.d"}}, "c"),
        ({"body": {"stringValue": "claude_code.tool_result"}}, "tool_result"),
        ({"body": {"stringValue": "some other log line"}}, ""),
        ({}, ""),
    ]
    for record, expected in cases:
        [parsed] = parse_logs(one_record_json(record), JSON)
        assert parsed.event_name == expected, record
        assert parsed.session_id is None
    [observed] = parse_logs(one_record_json({"observedTimeUnixNano": "5"}), JSON)
    assert observed.timestamp_ns == 5
    [both] = parse_logs(one_record_json({"timeUnixNano": 7, "observedTimeUnixNano": "5"}), JSON)
    assert both.timestamp_ns == 7
    [none] = parse_logs(one_record_json({"timeUnixNano": "0"}), JSON)
    assert none.timestamp_ns is None


def test_record_attributes_override_resource_attributes_and_session_from_resource():
    document = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        {"key": "session.id", "value": {"stringValue": "from-resource"}},
                        {"key": "department", "value": {"stringValue": "eng"}},
                        {"key": "model", "value": {"stringValue": "resource-model"}},
                    ]
                },
                "scopeLogs": [
                    {
                        "logRecords": [
                            {"attributes": [{"key": "model", "value": {"stringValue": "m"}}]},
                            {
                                "attributes": [
                                    {"key": "session.id", "value": {"stringValue": "own"}}
                                ]
                            },
                        ]
                    }
                ],
            }
        ]
    }
    first, second = parse_logs(json.dumps(document).encode(), JSON)
    assert first.session_id == "from-resource"
    assert first.attributes["model"] == "m"
    assert first.attributes["department"] == "eng"
    assert second.session_id == "own"


def test_json_trace_ids_snake_case_unknown_fields_and_empty_exports():
    record = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "severityNumber": 9,
        "severityText": "INFO",
        "flags": 1,
        "someFutureField": {"x": 1},
        "attributes": [{"key": "event.name", "value": {"stringValue": "x"}}],
    }
    [parsed] = parse_logs(one_record_json(record), JSON)
    assert parsed.event_name == "x"
    bad_ids = {"traceId": "not hex", "spanId": "zz", "eventName": "y"}
    assert parse_logs(one_record_json(bad_ids), JSON)[0].event_name == "y"
    snake = {"resource_logs": [{"scope_logs": [{"log_records": [{"event_name": "z"}]}]}]}
    assert parse_logs(json.dumps(snake).encode(), JSON)[0].event_name == "z"
    assert parse_logs(b"{}", JSON) == []
    assert parse_logs(b'{"resourceLogs": []}', JSON) == []
    assert parse_logs(b"", PROTOBUF) == []


# -- malformed bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "malformed JSON"),
        (b"", "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        (b"[]", "must be a JSON object, not list"),
        (b'"resourceLogs"', "must be a JSON object, not str"),
        (b'{"resourceLogs": {}}', "resourceLogs"),
        (b'{"resourceLogs": [1]}', "resourceLogs"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"attributes": [{"key": "n",'
            b' "value": {"intValue": "12a"}}]}]}]}]}',
            "intValue",
        ),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}',
            "timeUnixNano",
        ),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"boolValue": "no"}}]}]}]}',
            "boolValue",
        ),
        (b'{"resourceLogs":' + b"[" * 5000 + b"]" * 5000 + b"}", "malformed JSON"),
    ],
)
def test_malformed_json_raises_otlp_error_naming_the_problem(body, problem):
    with pytest.raises(OTLPError, match=problem) as caught:
        parse_logs(body, JSON)
    assert caught.value.status_code == 400


def test_deeply_nested_any_value_is_refused_not_a_crash():
    value: dict[str, Any] = {"stringValue": "x"}
    for _ in range(300):
        value = {"arrayValue": {"values": [value]}}
    body = one_record_json({"attributes": [{"key": "deep", "value": value}]})
    with pytest.raises(OTLPError):
        parse_logs(body, JSON)
    # the protobuf classes refuse to build this, so it is encoded by hand
    nested = AnyValue(string_value="x").SerializeToString()
    for _ in range(300):
        nested = pb_field(5, pb_field(1, nested))  # AnyValue.array_value / ArrayValue.values
    key_value = pb_field(1, b"deep") + pb_field(2, nested)
    deep = pb_field(1, pb_field(2, pb_field(2, pb_field(6, key_value))))  # down to attributes
    with pytest.raises(OTLPError, match="malformed protobuf"):
        parse_logs(deep, PROTOBUF)


@pytest.mark.parametrize(
    "body",
    [
        b"\x0a\xff",  # resource_logs, a length running past the end
        b"\x0a\x05\x0a\x03\x0a",  # truncated nested message
        b'{"resourceLogs": []}',  # JSON sent as protobuf
        logs_protobuf()[:-3],  # cut short
        b"\x07",  # wire type 7 does not exist
    ],
    ids=["length-past-end", "truncated-nested", "json-as-protobuf", "cut-short", "bad-wire-type"],
)
def test_malformed_protobuf_raises_otlp_error(body):
    with pytest.raises(OTLPError, match="malformed protobuf ExportLogsServiceRequest") as caught:
        parse_logs(body, PROTOBUF)
    assert caught.value.status_code == 400


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/grpc", "application/xml"])
def test_unsupported_content_type_is_415(content_type):
    with pytest.raises(OTLPError, match="unsupported content type") as caught:
        parse_logs(b"{}", content_type)
    assert caught.value.status_code == 415
    with pytest.raises(OTLPError) as caught:
        parse_metrics(b"{}", content_type)
    assert caught.value.status_code == 415


# -- metrics ---------------------------------------------------------------------------------------

METRIC_ATTRS: Attrs = [("session.id", s(SESSION)), ("model", s("claude-opus-5-5"))]


def metrics_json(*, int_as_string: bool = True) -> bytes:
    def attrs(extra: Attrs = ()) -> list[dict[str, Any]]:
        return json_attrs([*METRIC_ATTRS, *extra], int_as_string=int_as_string)

    def point(value: dict[str, Any], extra: Attrs = ()) -> dict[str, Any]:
        return {
            "attributes": attrs(extra),
            "startTimeUnixNano": str(T0),
            "timeUnixNano": str(T0 + 1000),
            **value,
        }

    document = {
        "resourceMetrics": [
            {
                "resource": {"attributes": json_attrs(RESOURCE, int_as_string=int_as_string)},
                "scopeMetrics": [
                    {
                        "scope": {"name": "com.anthropic.claude_code", "version": "2.1.328"},
                        "metrics": [
                            {
                                "name": "claude_code.cost.usage",
                                "unit": "USD",
                                "sum": {
                                    "aggregationTemporality": 1,
                                    "isMonotonic": True,
                                    "dataPoints": [point({"asDouble": 0.01156})],
                                },
                            },
                            {
                                "name": "claude_code.token.usage",
                                "unit": "tokens",
                                "sum": {
                                    "aggregationTemporality": 1,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        point({"asDouble": 2200}, [("type", s("input"))]),
                                        point({"asDouble": 800}, [("type", s("cacheRead"))]),
                                    ],
                                },
                            },
                            {
                                "name": "claude_code.session.count",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        point({"asInt": "1" if int_as_string else 1}),
                                        point({}),  # no value: skipped
                                    ],
                                },
                            },
                            {
                                "name": "queue.depth",
                                "gauge": {"dataPoints": [point({"asDouble": 3.5})]},
                            },
                            {
                                "name": "hook.latency",
                                "unit": "ms",
                                "histogram": {
                                    "aggregationTemporality": 1,
                                    "dataPoints": [
                                        {
                                            **point({}),
                                            "count": "4" if int_as_string else 4,
                                            "sum": 42.0,
                                            "bucketCounts": ["1", "3"],
                                            "explicitBounds": [10.0],
                                        }
                                    ],
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }
    return json.dumps(document).encode()


def metrics_protobuf() -> bytes:
    def point(extra: Attrs = (), **value: Any) -> NumberDataPoint:
        return NumberDataPoint(
            attributes=pb_attrs([*METRIC_ATTRS, *extra]),
            start_time_unix_nano=T0,
            time_unix_nano=T0 + 1000,
            **value,
        )

    delta, cumulative = 1, 2
    metrics = [
        Metric(
            name="claude_code.cost.usage",
            unit="USD",
            sum=Sum(
                aggregation_temporality=delta,
                is_monotonic=True,
                data_points=[point(as_double=0.01156)],
            ),
        ),
        Metric(
            name="claude_code.token.usage",
            unit="tokens",
            sum=Sum(
                aggregation_temporality=delta,
                is_monotonic=True,
                data_points=[
                    point([("type", s("input"))], as_double=2200),
                    point([("type", s("cacheRead"))], as_double=800),
                ],
            ),
        ),
        Metric(
            name="claude_code.session.count",
            sum=Sum(
                aggregation_temporality=cumulative,
                is_monotonic=True,
                data_points=[point(as_int=1), point()],
            ),
        ),
        Metric(name="queue.depth", gauge=Gauge(data_points=[point(as_double=3.5)])),
        Metric(
            name="hook.latency",
            unit="ms",
            histogram=Histogram(
                aggregation_temporality=delta,
                data_points=[
                    HistogramDataPoint(
                        attributes=pb_attrs(METRIC_ATTRS),
                        start_time_unix_nano=T0,
                        time_unix_nano=T0 + 1000,
                        count=4,
                        sum=42.0,
                        bucket_counts=[1, 3],
                        explicit_bounds=[10.0],
                    )
                ],
            ),
        ),
    ]
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(attributes=pb_attrs(RESOURCE)),
                scope_metrics=[
                    ScopeMetrics(
                        scope=InstrumentationScope(name="com.anthropic.claude_code"),
                        metrics=metrics,
                    )
                ],
            )
        ]
    )
    return request.SerializeToString()


@pytest.mark.parametrize("int_as_string", [True, False], ids=["intValue-string", "intValue-number"])
def test_metrics_json_and_protobuf_parse_to_the_same_points(int_as_string):
    points = parse_metrics(metrics_protobuf(), PROTOBUF)
    assert parse_metrics(metrics_json(int_as_string=int_as_string), JSON) == points
    summary = [(p.name, p.value, p.kind, p.temporality, p.attributes.get("type")) for p in points]
    assert summary == [
        ("claude_code.cost.usage", 0.01156, "sum", "delta", None),
        ("claude_code.token.usage", 2200.0, "sum", "delta", "input"),
        ("claude_code.token.usage", 800.0, "sum", "delta", "cacheRead"),
        ("claude_code.session.count", 1, "sum", "cumulative", None),
        ("queue.depth", 3.5, "gauge", None, None),
        ("hook.latency", 42.0, "histogram", "delta", None),
    ]
    assert {p.session_id for p in points} == {SESSION}
    cost = points[0]
    assert cost == MetricPoint(
        name="claude_code.cost.usage",
        attributes={
            "host.arch": "amd64",
            "os.type": "linux",
            "service.name": "claude-code",
            "service.version": "2.1.328",
            "session.id": SESSION,
            "model": "claude-opus-5-5",
        },
        value=0.01156,
        session_id=SESSION,
        unit="USD",
        kind="sum",
        temporality="delta",
        monotonic=True,
        timestamp_ns=T0 + 1000,
        start_timestamp_ns=T0,
    )
    assert isinstance(points[3].value, int)
    assert points[5].count == 4


def test_malformed_metrics_raise_otlp_error():
    with pytest.raises(OTLPError, match="malformed JSON"):
        parse_metrics(b"{", JSON)
    with pytest.raises(OTLPError, match="asDouble"):
        parse_metrics(
            b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "gauge": '
            b'{"dataPoints": [{"asDouble": "lots"}]}}]}]}]}',
            JSON,
        )
    with pytest.raises(OTLPError, match="malformed protobuf ExportMetricsServiceRequest"):
        parse_metrics(metrics_protobuf()[:-5], PROTOBUF)


# -- Content-Encoding ------------------------------------------------------------------------------


def test_decode_body_gzip_deflate_identity():
    body = logs_protobuf()
    assert decode_body(gzip.compress(body), "gzip") == body
    assert decode_body(gzip.compress(body), "GZIP") == body
    assert decode_body(gzip.compress(body), "x-gzip") == body
    two_members = gzip.compress(body[:100]) + gzip.compress(body[100:])
    assert decode_body(two_members, "gzip") == body
    assert decode_body(zlib.compress(body), "deflate") == body
    assert decode_body(body, None) == body
    assert decode_body(body, "") == body
    assert decode_body(body, "identity") == body
    assert decode_body(gzip.compress(zlib.compress(body)), "deflate, gzip") == body


@pytest.mark.parametrize(
    ("body", "encoding", "status", "problem"),
    [
        (b"not gzip at all", "gzip", 400, "not valid gzip"),
        (gzip.compress(b"x" * 1000)[:-12], "gzip", 400, "not valid gzip"),  # truncated
        (gzip.compress(b"x" * 1000) + b"junk", "gzip", 400, "not valid gzip"),
        (b"not zlib", "deflate", 400, "not valid deflate"),
        (gzip.compress(b"\0" * 5_000_000), "gzip", 413, "exceeds 1000000 bytes"),  # a bomb
        (b"\0" * 1_000_001, None, 413, "exceeds 1000000 bytes"),
        (b"{}", "br", 415, "unsupported content encoding 'br'"),
        (b"{}", "gzip, zstd", 415, "unsupported content encoding 'zstd'"),
    ],
)
def test_decode_body_refusals(body, encoding, status, problem):
    with pytest.raises(OTLPError, match=problem) as caught:
        decode_body(body, encoding, limit=1_000_000)
    assert caught.value.status_code == status


# -- the router ------------------------------------------------------------------------------------


@dataclass
class Sink:
    logs: list[list[TelemetryRecord]] = field(default_factory=list)
    metrics: list[list[MetricPoint]] = field(default_factory=list)

    def on_logs(self, records: list[TelemetryRecord]) -> None:
        self.logs.append(records)

    async def on_metrics(self, points: list[MetricPoint]) -> None:
        await asyncio.sleep(0)
        self.metrics.append(points)


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def client(sink: Sink) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(create_otlp_router(sink.on_logs, sink.on_metrics, max_body_bytes=1 << 20))
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


def test_router_json_logs(client, sink, records):
    response = client.post("/v1/logs", content=logs_json(), headers={"Content-Type": JSON})
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    assert response.json() == {}
    assert sink.logs == [records]


def test_router_protobuf_logs(client, sink, records):
    response = client.post("/v1/logs", content=logs_protobuf(), headers={"Content-Type": PROTOBUF})
    assert response.status_code == 200
    assert response.headers["content-type"] == PROTOBUF
    assert ExportLogsServiceResponse.FromString(response.content) == ExportLogsServiceResponse()
    assert response.content == b""
    assert sink.logs == [records]


@pytest.mark.parametrize("content_type", [JSON, PROTOBUF])
def test_router_gzip(client, sink, records, content_type):
    body = logs_json() if content_type == JSON else logs_protobuf()
    response = client.post(
        "/v1/logs",
        content=gzip.compress(body),
        headers={"Content-Type": content_type, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert sink.logs == [records]


def test_router_metrics_async_callback(client, sink):
    response = client.post(
        "/v1/metrics", content=metrics_protobuf(), headers={"Content-Type": PROTOBUF}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == PROTOBUF
    assert (
        ExportMetricsServiceResponse.FromString(response.content) == ExportMetricsServiceResponse()
    )
    response = client.post("/v1/metrics", content=metrics_json(), headers={"Content-Type": JSON})
    assert response.status_code == 200
    assert response.json() == {}
    assert len(sink.metrics) == 2
    assert sink.metrics[0] == sink.metrics[1] == parse_metrics(metrics_protobuf(), PROTOBUF)
    assert sink.logs == []


def test_router_empty_export_does_not_call_back(client, sink):
    assert client.post("/v1/logs", content=b"{}", headers={"Content-Type": JSON}).status_code == 200
    assert (
        client.post("/v1/logs", content=b"", headers={"Content-Type": PROTOBUF}).status_code == 200
    )
    assert sink.logs == []


def test_router_malformed_json_is_400_with_a_status(client, sink):
    response = client.post("/v1/logs", content=b"{oops", headers={"Content-Type": JSON})
    assert response.status_code == 400
    assert response.headers["content-type"] == JSON
    status = response.json()
    assert status["code"] == 3  # INVALID_ARGUMENT
    assert "malformed JSON" in status["message"]
    assert sink.logs == []


def test_router_malformed_protobuf_is_400_with_a_protobuf_status(client, sink):
    response = client.post("/v1/logs", content=b"\x0a\xff", headers={"Content-Type": PROTOBUF})
    assert response.status_code == 400
    assert response.headers["content-type"] == PROTOBUF
    # google.rpc.Status: field 1 (code, varint) = 3, field 2 (message, bytes)
    assert response.content[:3] == b"\x08\x03\x12"
    message = response.content[5:] if response.content[4] & 0x80 else response.content[4:]
    assert b"malformed protobuf ExportLogsServiceRequest" in message
    assert sink.logs == []


def test_router_unsupported_content_type_and_encoding_are_415(client, sink):
    response = client.post("/v1/logs", content=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "unsupported content type 'text/plain'" in response.json()["message"]
    response = client.post("/v1/metrics", content=b"{}")  # no Content-Type at all
    assert response.status_code == 415
    response = client.post(
        "/v1/logs", content=b"{}", headers={"Content-Type": JSON, "Content-Encoding": "br"}
    )
    assert response.status_code == 415
    assert "unsupported content encoding 'br'" in response.json()["message"]
    response = client.post(
        "/v1/logs", content=b"junk", headers={"Content-Type": JSON, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 400
    assert sink.logs == []
    assert sink.metrics == []


def test_router_too_large_is_413(client, sink):
    big = b" " * ((1 << 20) + 1)
    response = client.post("/v1/logs", content=big, headers={"Content-Type": JSON})
    assert response.status_code == 413
    response = client.post(
        "/v1/logs",
        content=gzip.compress(b" " * (2 << 20)),
        headers={"Content-Type": JSON, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == 8  # RESOURCE_EXHAUSTED

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream itself is cut off
        for _ in range(3):
            yield b" " * (1 << 19)

    response = client.post("/v1/logs", content=chunks(), headers={"Content-Type": JSON})
    assert response.status_code == 413
    assert sink.logs == []


def test_router_without_metrics_callback_still_validates(records):
    received: list[list[TelemetryRecord]] = []

    async def on_logs(batch: list[TelemetryRecord]) -> None:
        received.append(batch)

    app = FastAPI()
    app.include_router(create_otlp_router(on_logs))
    with TestClient(app) as client:
        ok = client.post("/v1/metrics", content=metrics_json(), headers={"Content-Type": JSON})
        assert ok.status_code == 200
        bad = client.post("/v1/metrics", content=b"[]", headers={"Content-Type": JSON})
        assert bad.status_code == 400
        logs = client.post("/v1/logs", content=logs_json(), headers={"Content-Type": JSON})
        assert logs.status_code == 200
    assert received == [records]


def test_router_openapi_and_include_in_schema():
    app = FastAPI()
    app.include_router(create_otlp_router(lambda _: None))
    paths = app.openapi()["paths"]
    for path in ("/v1/logs", "/v1/metrics"):
        operation = paths[path]["post"]
        assert set(operation["requestBody"]["content"]) == {JSON, PROTOBUF}
        assert {"200", "400", "413", "415"} <= set(operation["responses"])
    hidden = FastAPI()
    hidden.include_router(create_otlp_router(lambda _: None, include_in_schema=False))
    assert "/v1/logs" not in hidden.openapi().get("paths", {})


def test_schemathesis_generated_requests_get_no_5xx_and_conform():
    """The router's own OpenAPI document, fuzzed: what the gateway's fuzz test will meet once
    the router is included there."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
    )

    app = FastAPI()
    app.include_router(create_otlp_router(lambda _: None, lambda _: None))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {"POST /v1/logs", "POST /v1/metrics"}
    statuses: dict[tuple[str, int], int] = {}
    for operation in operations:

        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy())
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                checks=[not_a_server_error, response_schema_conformance, content_type_conformance]
            )
            key = (case.operation.label, response.status_code)
            statuses[key] = statuses.get(key, 0) + 1

        fuzz()
    assert {status for _, status in statuses} <= {200, 400, 413, 415}


# -- the real Claude Code CLI ----------------------------------------------------------------------


@dataclass
class Received:
    records: list[TelemetryRecord] = field(default_factory=list)
    points: list[MetricPoint] = field(default_factory=list)
    posts: list[tuple[str, str, str]] = field(default_factory=list)
    """(path, content type, content encoding) of every POST."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_logs(self, records: list[TelemetryRecord]) -> None:
        with self.lock:
            self.records.extend(records)

    def on_metrics(self, points: list[MetricPoint]) -> None:
        with self.lock:
            self.points.extend(points)

    def snapshot(self) -> tuple[list[TelemetryRecord], list[MetricPoint]]:
        with self.lock:
            return list(self.records), list(self.points)


@contextlib.contextmanager
def serve_router(received: Received) -> Iterator[str]:
    """The router in a real uvicorn server on 127.0.0.1 (a thread), yielding its URL."""
    app = FastAPI()
    app.include_router(create_otlp_router(received.on_logs, received.on_metrics))

    @app.middleware("http")
    async def note(request: Request, call_next: Any) -> Any:
        with received.lock:
            received.posts.append(
                (
                    request.url.path,
                    request.headers.get("content-type", ""),
                    request.headers.get("content-encoding", ""),
                )
            )
        return await call_next(request)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(
    ("protocol", "compression"),
    [("http/json", "none"), ("http/protobuf", "none"), ("http/protobuf", "gzip")],
    ids=["http-json", "http-protobuf", "http-protobuf-gzip"],
)
def test_real_claude_code_telemetry(protocol, compression, claude_binary):
    from e2e.claude import run_claude, trust_project
    from e2e.model_server import ModelServer, ToolCall, Turn, Usage

    binary = claude_binary
    call = ToolCall("Bash", {"command": "echo otlp", "description": "print otlp"})
    script = [
        Turn(tool_calls=[call], usage=Usage(1000, 50, cache_creation_input_tokens=200,
                                            cache_read_input_tokens=300)),
        Turn(text="done", usage=Usage(1200, 30, cache_read_input_tokens=500)),
    ]  # fmt: skip
    expected_tokens = [(1000, 50, 300, 200), (1200, 30, 500, 0)]
    received = Received()
    with (
        tempfile.TemporaryDirectory() as scratch,
        serve_router(received) as url,
        ModelServer(script) as model,
    ):
        home, project = Path(scratch) / "home", Path(scratch) / "project"
        project.mkdir()
        trust_project(home, project)
        result = run_claude(
            binary,
            home=home,
            project=project,
            prompt="run the command",
            model_url=model.url,
            env_extra={
                "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
                "OTEL_LOGS_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_EXPORTER_OTLP_COMPRESSION": compression,
                "OTEL_EXPORTER_OTLP_ENDPOINT": url,
                "OTEL_LOGS_EXPORT_INTERVAL": "500",
                "OTEL_BLRP_SCHEDULE_DELAY": "500",
                "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            },
            args=["--permission-mode", "bypassPermissions"],
            timeout=180,
        )
        assert not result.is_error, result.describe()
        session = result.session_id
        assert session
        models = {request.body["model"] for request in model.main_requests}

        def usage_and_cost() -> tuple[list[ApiRequestUsage], list[MetricPoint]]:
            records, points = received.snapshot()
            usages = [api_request_usage(r) for r in records if r.session_id == session]
            costs = [p for p in points if p.name == "claude_code.cost.usage"]
            return [u for u in usages if u is not None], costs

        deadline = time.monotonic() + 15  # Claude Code flushes before exiting; allow a late batch
        while time.monotonic() < deadline:
            usages, costs = usage_and_cost()
            if len(usages) >= len(expected_tokens) and costs:
                break
            time.sleep(0.1)
    records, points = received.snapshot()
    content_type = JSON if protocol == "http/json" else PROTOBUF
    assert {path for path, _, _ in received.posts} == {"/v1/logs", "/v1/metrics"}
    assert {ct for _, ct, _ in received.posts} == {content_type}
    assert {enc for _, _, enc in received.posts} == ({"gzip"} if compression == "gzip" else {""})

    usages, costs = usage_and_cost()
    assert sorted(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_creation_tokens)
        for u in usages
    ) == sorted(expected_tokens), usages
    assert {u.session_id for u in usages} == {session}
    assert {u.model for u in usages} == models
    assert all(u.request_id and u.request_id.startswith("req_") for u in usages)
    assert len({u.request_id for u in usages}) == len(usages)
    assert result.total_cost_usd is not None
    assert sum(u.cost_usd or 0 for u in usages) == pytest.approx(result.total_cost_usd, rel=1e-6)
    assert all(u.duration_ms is not None and u.duration_ms >= 0 for u in usages)

    # tool_decision / tool_result name the scripted tool call and the request that asked for it
    first_request = next(u.request_id for u in usages if u.input_tokens == 1000)
    mine = [r for r in records if r.session_id == session]
    for name in ("tool_decision", "tool_result"):
        [record] = [r for r in mine if r.event_name == name]
        assert record.attributes["tool_use_id"] == call.id
        assert record.attributes["request_id"] == first_request
        assert record.attributes["tool_name"] == "Bash"
    [tool_result] = [r for r in mine if r.event_name == "tool_result"]
    assert tool_result.attributes["success"] is True
    assert isinstance(tool_result.attributes["duration_ms"], int)
    assert all(r.timestamp_ns for r in mine)
    assert "user_prompt" in {r.event_name for r in mine}

    # metrics: delta sums per session that add up to the same totals
    assert costs
    assert {p.session_id for p in costs} == {session}
    assert {p.temporality for p in costs} == {"delta"}
    assert sum(p.value for p in costs) == pytest.approx(result.total_cost_usd, rel=1e-6)
    tokens = [p for p in points if p.name == "claude_code.token.usage"]
    by_type: dict[str, float] = {}
    for point in tokens:
        kind = str(point.attributes["type"])
        by_type[kind] = by_type.get(kind, 0) + point.value
    assert by_type == {"input": 2200, "output": 80, "cacheRead": 800, "cacheCreation": 200}
