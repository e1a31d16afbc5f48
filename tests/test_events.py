"""The audit event model: parsing, validation messages, defaults, identifiers and immutability."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from trailguard import events, ids
from trailguard.errors import InvalidInputError
from trailguard.events import (
    EventType,
    EventValidationError,
    SessionStart,
    ToolInvocation,
    format_timestamp,
    parse_event,
    parse_timestamp,
)
from trailguard.ids import new_event_id

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SNAKE_CASE_KEY = re.compile(r"_")

# The smallest valid camelCase document for every event type, and the class it must become.
MINIMAL: dict[EventType, tuple[dict[str, Any], type]] = {
    EventType.SESSION_START: ({}, events.SessionStart),
    EventType.SESSION_END: ({"reason": "completed"}, events.SessionEnd),
    EventType.PROMPT: ({"prompt": "list the files"}, events.Prompt),
    EventType.TOOL_INVOCATION: ({"tool": "Bash"}, events.ToolInvocation),
    EventType.TOOL_RESULT: ({"tool": "Bash", "status": "success"}, events.ToolResult),
    EventType.INFRA_OPERATION: (
        {
            "operation": {
                "kind": "aws",
                "action": "s3:GetObject",
                "access": "read",
                "risk": "low",
            }
        },
        events.InfraOperation,
    ),
    EventType.POLICY_CHANGE: ({"policyVersion": "v2"}, events.PolicyChange),
    EventType.COST: ({}, events.Cost),
    EventType.BUDGET_THRESHOLD: (
        {"scope": "session", "limitUsd": 10.0, "spentUsd": 8.0, "percent": 80},
        events.BudgetThreshold,
    ),
    EventType.ALERT: (
        {"alertType": "secret_read", "severity": "high", "message": "read .env"},
        events.Alert,
    ),
    EventType.CHECKPOINT: (
        {
            "origin": "trailguard.local/test",
            "treeSize": 3,
            "rootHash": "AAAA",
            "note": "fake note\n",
        },
        events.Checkpoint,
    ),
    EventType.GATEWAY_START: (
        {
            "version": "0.1.0",
            "origin": "trailguard.local/test",
            "verifierKey": "trailguard.local/test+00000000+FAKEKEYFORTESTSONLY",
        },
        events.GatewayStart,
    ),
    EventType.GATEWAY_STOP: ({"reason": "shutdown"}, events.GatewayStop),
    EventType.AUDIT_ACCESS: ({"action": "query"}, events.AuditAccess),
    EventType.AGENT_EVENT: ({"name": "Stop"}, events.AgentEvent),
    EventType.TOKEN_CHANGE: (
        {
            "action": "created",
            "tokenId": "tok_0a1b2c",
            "role": "agent",
            "subjectDeveloperId": "dev_jordan",
        },
        events.TokenChange,
    ),
    EventType.DOWNSTREAM_RECORD: (
        {
            "system": "cloudtrail",
            "recordId": "3074546e-1bfa-4973-8502-b1bb4d0bda1a",
            "sessionClaim": "userAgent app/trailguard-sess_a8f3b21c",
        },
        events.DownstreamRecord,
    ),
}


def minimal(event_type: EventType, **fields: Any) -> dict[str, Any]:
    body, _ = MINIMAL[event_type]
    return {"eventType": event_type.value, **body, **fields}


def tool_invocation(**fields: Any) -> dict[str, Any]:
    return minimal(EventType.TOOL_INVOCATION, **fields)


def problems_of(data: dict[str, Any] | bytes | str) -> str:
    with pytest.raises(EventValidationError) as caught:
        parse_event(data)
    return str(caught.value)


# -- parsing every event type ---------------------------------------------------------------------


def test_every_event_type_has_a_minimal_example():
    assert set(MINIMAL) == set(EventType)


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.value)
def test_minimal_camel_case_dict_parses_into_the_class_of_its_type(event_type):
    _, cls = MINIMAL[event_type]
    event = parse_event(minimal(event_type))
    assert type(event) is cls
    assert event.event_type is event_type


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.value)
def test_minimal_event_parses_from_json_text_like_from_a_dict(event_type):
    document = minimal(event_type, eventId=new_event_id(), timestamp="2026-04-15T14:32:07.123Z")
    from_dict = parse_event(document)
    from_bytes = parse_event(json.dumps(document).encode())
    from_str = parse_event(json.dumps(document))
    assert from_dict == from_bytes == from_str


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.value)
def test_json_dict_is_camel_case_and_equals_the_aliased_model_dump(event_type):
    event = parse_event(minimal(event_type))
    document = event.to_json_dict()
    assert document == event.model_dump(mode="json", by_alias=True)
    assert document["eventType"] == event_type.value
    snake = [key for key in document if SNAKE_CASE_KEY.search(key)]
    assert snake == []
    assert {"eventId", "sessionId", "developerId", "projectId", "timestamp", "seq"} <= set(document)


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.value)
def test_json_dict_parses_back_into_an_equal_event(event_type):
    event = parse_event(minimal(event_type))
    assert parse_event(event.to_json_dict()) == event


def test_tool_invocation_json_uses_camel_case_names_for_its_own_fields():
    event = ToolInvocation(
        tool="Bash",
        tool_use_id="toolu_01",
        session_id="sess_a8f3b21c",
        input={"command": "ls"},
        policy_result="allowed",
        policy_rule="allow-read",
    )
    document = event.to_json_dict()
    assert document["toolUseId"] == "toolu_01"
    assert document["sessionId"] == "sess_a8f3b21c"
    assert document["policyResult"] == "allowed"
    assert document["policyRule"] == "allow-read"
    assert document["input"] == {"command": "ls"}
    assert "tool_use_id" not in document
    assert "policy_result" not in document


# -- validation errors name the field -------------------------------------------------------------


def test_missing_tool_is_named_in_the_error():
    document = tool_invocation()
    del document["tool"]
    message = problems_of(document)
    assert message.startswith("tool:")
    assert "required" in message.lower()


def test_tool_of_the_wrong_type_is_named_in_the_error():
    message = problems_of(tool_invocation(tool=5))
    assert message.startswith("tool:")
    assert "string" in message


def test_unknown_top_level_field_is_reported_as_unknown_field_with_its_name():
    message = problems_of(tool_invocation(surpriseField=1))
    assert "surpriseField" in message
    assert "unknown field" in message


def test_unknown_field_inside_a_nested_operation_is_reported():
    document = minimal(EventType.INFRA_OPERATION)
    document["operation"] = {**document["operation"], "colour": "red"}
    message = problems_of(document)
    assert "operation.colour" in message
    assert "unknown field" in message


def test_unknown_event_type_is_named_in_the_error():
    message = problems_of({"eventType": "tool_teleport", "tool": "Bash"})
    assert message.startswith("eventType:")
    assert "tool_teleport" in message


def test_missing_event_type_is_reported_as_required():
    message = problems_of({"tool": "Bash"})
    assert message == "eventType: field required"


def test_session_end_with_an_unknown_reason_is_rejected_naming_reason():
    message = problems_of(minimal(EventType.SESSION_END, reason="bored"))
    assert message.startswith("reason:")
    assert "completed" in message  # lists what is allowed


def test_every_problem_is_listed_in_the_exception():
    with pytest.raises(EventValidationError) as caught:
        parse_event({"eventType": "tool_invocation", "seq": -1, "eventId": "nope"})
    fields = {problem.split(":")[0] for problem in caught.value.problems}
    assert fields == {"tool", "seq", "eventId"}


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-04-15 14:32:07",  # no T, no zone, no millis
        "2026-04-15T14:32:07Z",  # no milliseconds
        "2026-04-15T14:32:07.123+00:00",  # offset instead of Z
        "2026-04-15T14:32:07.123456Z",  # microseconds
        "2026-02-30T00:00:00.000Z",  # looks right, is no real date
        "2026-04-15T24:00:00.000Z",  # hour out of range
        "2026-04-15T14:32:07.123Z\n",  # a line break after it
        "\u0662026-04-15T14:32:07.123Z",  # a digit, but not an ASCII one
    ],
)
def test_timestamp_that_is_not_rfc3339_utc_millis_is_rejected(timestamp):
    message = problems_of(tool_invocation(timestamp=timestamp))
    assert message.startswith("timestamp:")
    if "\n" in timestamp or not timestamp.isascii():  # the shape is wrong, not the date
        assert "must be RFC 3339 UTC with milliseconds" in message


def test_valid_timestamp_is_kept_exactly():
    event = parse_event(tool_invocation(timestamp="2024-02-29T23:59:59.999Z"))
    assert event.timestamp == "2024-02-29T23:59:59.999Z"


@pytest.mark.parametrize(
    "event_id",
    [
        "not-a-uuid",
        "0190b5c4-1c5e-7a3b-8c1d-9e2f3a4b5c6",  # one digit short
        "0190B5C4-1C5E-7A3B-8C1D-9E2F3A4B5C6D",  # upper case
        "0190b5c41c5e7a3b8c1d9e2f3a4b5c6d",  # no hyphens
        "0190b5c4-1c5e-7a3b-8c1d-9e2f3a4b5c6d\n",  # a line break after it: another id
        "",
    ],
)
def test_event_id_that_is_not_a_lowercase_hyphenated_uuid_is_rejected(event_id):
    message = problems_of(tool_invocation(eventId=event_id))
    assert message.startswith("eventId:")


@pytest.mark.parametrize("session_id", ["sess\nforged", "sess\x00", "sess\x1b[31m", "sess\x7f"])
def test_control_characters_in_session_id_are_rejected(session_id):
    message = problems_of(tool_invocation(sessionId=session_id))
    assert message.startswith("sessionId:")
    assert "control characters" in message


def test_session_id_of_256_characters_is_accepted():
    event = parse_event(tool_invocation(sessionId="s" * 256))
    assert event.session_id == "s" * 256


def test_session_id_longer_than_256_characters_is_rejected():
    message = problems_of(tool_invocation(sessionId="s" * 257))
    assert message.startswith("sessionId:")
    assert "256" in message


def test_empty_session_id_is_rejected():
    assert problems_of(tool_invocation(sessionId="")).startswith("sessionId:")


def test_negative_seq_is_rejected():
    message = problems_of(tool_invocation(seq=-1))
    assert message.startswith("seq:")


def test_zero_seq_is_accepted():
    assert parse_event(tool_invocation(seq=0)).seq == 0


def test_seq_given_as_a_string_in_json_text_is_rejected():
    text = json.dumps(tool_invocation(seq="5")).encode()
    message = problems_of(text)
    assert message.startswith("seq:")


def test_seq_given_as_an_integer_in_json_text_is_accepted():
    text = json.dumps(tool_invocation(seq=5)).encode()
    assert parse_event(text).seq == 5


def test_malformed_json_text_raises_an_event_validation_error():
    with pytest.raises(EventValidationError):
        parse_event(b'{"eventType": "tool_invocation", "tool": ')


def test_validation_error_is_invalid_input_listing_its_problems():
    with pytest.raises(InvalidInputError, match="tool") as caught:
        parse_event({"eventType": "tool_invocation"})
    assert isinstance(caught.value, EventValidationError)
    assert not isinstance(
        caught.value, ValueError
    )  # a bug's ValueError must never look like bad input
    assert caught.value.problems == [str(caught.value)]


# -- defaults and identifiers ---------------------------------------------------------------------


def test_default_event_id_is_a_uuid_version_7():
    event = SessionStart()
    parsed = uuid.UUID(event.event_id)
    assert str(parsed) == event.event_id
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert event.event_id[14] == "7"


def test_default_event_ids_differ_between_events():
    assert SessionStart().event_id != SessionStart().event_id


def test_default_timestamp_is_rfc3339_utc_with_milliseconds_and_is_now():
    before = datetime.now(UTC) - timedelta(seconds=1)
    event = SessionStart()
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert TIMESTAMP_RE.match(event.timestamp)
    moment = datetime.strptime(event.timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before <= moment <= after


def test_default_seq_is_unassigned():
    assert SessionStart().seq is None


def test_uuid7_timestamp_bits_hold_the_creation_time_in_milliseconds():
    before = int(datetime.now(UTC).timestamp() * 1000)
    value = uuid.UUID(new_event_id()).int
    after = int(datetime.now(UTC).timestamp() * 1000)
    millis = value >> 80
    # The generator may borrow a few milliseconds ahead when its counter runs out.
    assert before - 1 <= millis <= after + 50


def test_ten_thousand_ids_generated_in_sequence_sort_in_creation_order_and_are_unique():
    made = [new_event_id() for _ in range(10_000)]
    assert sorted(made) == made
    assert len(set(made)) == len(made)
    assert all(uuid.UUID(i).version == 7 for i in made)


def test_ids_stay_ordered_when_one_millisecond_runs_out_of_counter_values(monkeypatch):
    frozen_ms = 1_776_263_527_123  # 2026-04-15T14:32:07.123Z
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: frozen_ms * 1_000_000))
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)
    made = [new_event_id() for _ in range(5000)]  # more than the 12-bit counter holds
    assert sorted(made) == made
    assert len(set(made)) == len(made)
    millis = [uuid.UUID(i).int >> 80 for i in made]
    assert millis[0] == frozen_ms
    assert millis[-1] == frozen_ms + 1  # borrowed the next millisecond


def test_format_timestamp_converts_an_aware_non_utc_time_to_utc():
    tokyo = timezone(timedelta(hours=9))
    moment = datetime(2026, 4, 15, 23, 32, 7, 123456, tzinfo=tokyo)
    assert format_timestamp(moment) == "2026-04-15T14:32:07.123Z"


def test_format_timestamp_crosses_the_date_line_when_converting():
    new_york = timezone(timedelta(hours=-5))
    moment = datetime(2026, 12, 31, 22, 0, 0, 5000, tzinfo=new_york)
    assert format_timestamp(moment) == "2027-01-01T03:00:00.005Z"


def test_format_timestamp_truncates_to_milliseconds_with_zero_padding():
    moment = datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC)
    assert format_timestamp(moment) == "2026-01-02T03:04:05.000Z"


def test_format_timestamp_output_is_accepted_by_the_model():
    stamp = format_timestamp(datetime(2026, 4, 15, 14, 32, 7, 1000, tzinfo=UTC))
    assert parse_event(tool_invocation(timestamp=stamp)).timestamp == stamp


# -- immutability ---------------------------------------------------------------------------------


def test_assigning_an_attribute_of_an_event_raises():
    event = ToolInvocation(tool="Bash")
    with pytest.raises(ValidationError, match="frozen"):
        event.tool = "Write"  # type: ignore[misc]
    assert event.tool == "Bash"


def test_assigning_a_nested_operation_attribute_raises():
    event = parse_event(minimal(EventType.INFRA_OPERATION))
    with pytest.raises(ValidationError, match="frozen"):
        event.operation.risk = "critical"  # type: ignore[union-attr]
    assert event.operation.risk == "low"  # type: ignore[union-attr]


def test_assigning_seq_after_parsing_raises():
    event = parse_event(tool_invocation())
    with pytest.raises(ValidationError):
        event.seq = 3
    assert event.seq is None


def test_cache_token_fields_use_lowercase_duration_units_in_json():
    event = parse_event({"eventType": "cost", "cacheWrite5mTokens": 10, "cacheWrite1hTokens": 2})
    document = event.to_json_dict()
    assert document["cacheWrite5mTokens"] == 10
    assert document["cacheWrite1hTokens"] == 2


@pytest.mark.parametrize(
    "text",
    [
        "2026-04-15T14:32:07.1Z",
        "2026-04-15T14:32:07.123Z",
        "2026-04-15T14:32:07.123456Z",
        "2028-02-29T23:59:59.999Z",
    ],
)
def test_parse_timestamp_reads_what_strptime_read(text: str) -> None:
    expected = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert parse_timestamp(text) == expected
    assert parse_timestamp(text).tzinfo is not None


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T00:00:00.000Z",  # no such day
        "2026-04-15T24:00:00.000Z",
        "2026-04-15T14:32:07Z",  # no fraction
        "2026-04-15T14:32:07.1234567Z",
        "2026-04-15T14:32:07.123+00:00",  # the ledger's form is Z only
        "2026-04-15 14:32:07.123Z",
        "2026-4-15T14:32:07.123Z",
        "\u0662\u0660\u0662\u0666-04-15T14:32:07.123Z",  # Arabic-Indic digits
        "2026-04-15T14:32:07.123Z\n",
    ],
)
def test_parse_timestamp_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"timestamp|day|hour|range"):
        parse_timestamp(text)
