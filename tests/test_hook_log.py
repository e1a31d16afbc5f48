"""Claude Code hook payloads as audit events, and importing saved JSONL hook logs."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import rfc8785

from trailguard.capture.claude_code import Attribution, HookPayloadError, event_from_hook
from trailguard.capture.hook_log import content_event_id, import_hook_log
from trailguard.events import EventType
from trailguard.ledger.keys import load_verifier
from trailguard.ledger.verify import verify_ledger
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.base import EventFilter, LedgerRow
from trailguard.store.sqlite import SQLiteStore

SESSION = "ae1e1885-0000-4000-8000-00000000f4ke"
OTHER_SESSION = "b2c3d4e5-0000-4000-8000-00000000f4ke"

# Payload shapes as Claude Code 2.1.328 sends them (see /work/shared/CLAUDE_CODE.md); the values
# are made up.
SESSION_START = {
    "session_id": SESSION,
    "transcript_path": f"/home/dev/.claude/projects/-home-dev-app/{SESSION}.jsonl",
    "cwd": "/home/dev/app",
    "hook_event_name": "SessionStart",
    "source": "startup",
}
USER_PROMPT_SUBMIT = {
    "session_id": SESSION,
    "transcript_path": f"/home/dev/.claude/projects/-home-dev-app/{SESSION}.jsonl",
    "cwd": "/home/dev/app",
    "prompt_id": "d73b0000-fake-prompt-id",
    "permission_mode": "acceptEdits",
    "hook_event_name": "UserPromptSubmit",
    "prompt": "say hello and write notes",
}
PRE_TOOL_USE = {
    "session_id": SESSION,
    "cwd": "/home/dev/app",
    "permission_mode": "acceptEdits",
    "effort": {"level": "medium"},
    "hook_event_name": "PreToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "echo hello", "description": "say hello"},
    "tool_use_id": "toolu_8ec8fake0001",
}
POST_TOOL_USE_BASH = {
    "session_id": SESSION,
    "hook_event_name": "PostToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "echo hello", "description": "say hello"},
    "tool_response": {
        "stdout": "hello",
        "stderr": "",
        "interrupted": False,
        "isImage": False,
        "noOutputExpected": False,
    },
    "tool_use_id": "toolu_8ec8fake0001",
    "duration_ms": 16,
}
POST_TOOL_USE_WRITE = {
    "session_id": SESSION,
    "hook_event_name": "PostToolUse",
    "tool_name": "Write",
    "tool_input": {"file_path": "/home/dev/app/notes.txt", "content": "hello notes"},
    "tool_response": {
        "type": "create",
        "filePath": "/home/dev/app/notes.txt",
        "content": "hello notes",
        "structuredPatch": [],
        "originalFile": None,
        "userModified": False,
    },
    "tool_use_id": "toolu_8ec8fake0002",
    "duration_ms": 16,
}
POST_TOOL_USE_FAILURE = {
    "session_id": SESSION,
    "hook_event_name": "PostToolUseFailure",
    "tool_name": "Bash",
    "tool_input": {"command": "false"},
    "tool_use_id": "toolu_8ec8fake0003",
    "error": "Exit code 1",
    "is_interrupt": False,
}
PERMISSION_DENIED = {
    "session_id": SESSION,
    "hook_event_name": "PermissionDenied",
    "tool_name": "Bash",
    "tool_input": {"command": "rm -rf build"},
    "tool_use_id": "toolu_8ec8fake0004",
    "reason": "Bash is not allowed in this folder",
}
STOP = {
    "session_id": SESSION,
    "hook_event_name": "Stop",
    "stop_hook_active": False,
    "last_assistant_message": "All done.",
}
NOTIFICATION = {
    "session_id": SESSION,
    "hook_event_name": "Notification",
    "message": "Claude needs your permission to use Bash",
    "notification_type": "permission_prompt",
}
FUTURE_HOOK_EVENT = {
    "session_id": SESSION,
    "hook_event_name": "FutureHookEvent",
    "agent_id": "agent_fake_01",
    "shiny_new_field": {"nested": [1, 2, 3]},
}
SESSION_END = {"session_id": SESSION, "hook_event_name": "SessionEnd", "reason": "other"}

ALL_PAYLOADS = {
    "SessionStart": SESSION_START,
    "UserPromptSubmit": USER_PROMPT_SUBMIT,
    "PreToolUse": PRE_TOOL_USE,
    "PostToolUse-Bash": POST_TOOL_USE_BASH,
    "PostToolUse-Write": POST_TOOL_USE_WRITE,
    "PostToolUseFailure": POST_TOOL_USE_FAILURE,
    "PermissionDenied": PERMISSION_DENIED,
    "Stop": STOP,
    "Notification": NOTIFICATION,
    "FutureHookEvent": FUTURE_HOOK_EVENT,
    "SessionEnd": SESSION_END,
}

# Where a payload key may land in the event when it is mapped rather than kept in extra/payload.
MAPPED_FIELDS: dict[str, tuple[str, ...]] = {
    "cwd": ("cwd",),
    "source": ("startSource",),
    "model": ("model",),
    "permission_mode": ("permissionMode",),
    "prompt": ("prompt",),
    "prompt_id": ("promptId",),
    "tool_name": ("tool",),
    "tool_use_id": ("toolUseId",),
    "tool_input": ("input",),
    "tool_response": ("output",),
    "agent_id": ("agentId",),
    "duration_ms": ("durationMs",),
    "error": ("error",),
    "reason": ("rawReason", "error"),
}


def to_event(payload: dict[str, Any], **kwargs: Any):
    return event_from_hook(payload, Attribution(), **kwargs)


def as_json(payload: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return to_event(payload, **kwargs).to_json_dict()


def canonical_sha256(value: Any) -> str:
    return "sha256:" + hashlib.sha256(rfc8785.dumps(value)).hexdigest()


# -- each payload shape maps to the right event -------------------------------------------------


def test_session_start_becomes_session_start_with_cwd_and_source():
    document = as_json(SESSION_START)
    assert document["eventType"] == "session_start"
    assert document["sessionId"] == SESSION
    assert document["agent"] == "claude-code"
    assert document["cwd"] == "/home/dev/app"
    assert document["startSource"] == "startup"
    assert document["source"] == "hook"
    assert document["extra"] == {"transcript_path": SESSION_START["transcript_path"]}


def test_user_prompt_submit_becomes_prompt_keeping_the_prompt_text():
    document = as_json(USER_PROMPT_SUBMIT)
    assert document["eventType"] == "prompt"
    assert document["prompt"] == "say hello and write notes"
    assert document["promptId"] == "d73b0000-fake-prompt-id"
    assert document["extra"]["permission_mode"] == "acceptEdits"


def test_pre_tool_use_becomes_tool_invocation_with_tool_id_and_input_and_no_policy():
    document = as_json(PRE_TOOL_USE)
    assert document["eventType"] == "tool_invocation"
    assert document["tool"] == "Bash"
    assert document["toolUseId"] == "toolu_8ec8fake0001"
    assert document["input"] == {"command": "echo hello", "description": "say hello"}
    assert document["policyResult"] is None
    assert document["operations"] == []


def test_post_tool_use_becomes_successful_tool_result_with_output_and_duration():
    document = as_json(POST_TOOL_USE_BASH)
    assert document["eventType"] == "tool_result"
    assert document["status"] == "success"
    assert document["tool"] == "Bash"
    assert document["toolUseId"] == "toolu_8ec8fake0001"
    assert document["output"] == POST_TOOL_USE_BASH["tool_response"]
    assert document["durationMs"] == 16
    assert document["error"] is None
    assert document["outputTruncated"] is False


def test_post_tool_use_of_write_keeps_the_structured_response():
    document = as_json(POST_TOOL_USE_WRITE)
    assert document["status"] == "success"
    assert document["tool"] == "Write"
    assert document["output"]["filePath"] == "/home/dev/app/notes.txt"
    assert document["output"]["originalFile"] is None


def test_post_tool_use_failure_becomes_tool_result_with_error_status_and_text():
    document = as_json(POST_TOOL_USE_FAILURE)
    assert document["eventType"] == "tool_result"
    assert document["status"] == "error"
    assert document["error"] == "Exit code 1"
    assert document["extra"]["is_interrupt"] is False


def test_permission_denied_becomes_tool_result_with_denied_status_and_reason():
    document = as_json(PERMISSION_DENIED)
    assert document["eventType"] == "tool_result"
    assert document["status"] == "denied"
    assert document["tool"] == "Bash"
    assert document["error"] == "Bash is not allowed in this folder"


@pytest.mark.parametrize(
    "payload", [STOP, NOTIFICATION, FUTURE_HOOK_EVENT], ids=lambda p: p["hook_event_name"]
)
def test_other_hooks_become_agent_events_with_their_name_and_payload(payload):
    document = as_json(payload)
    assert document["eventType"] == "agent_event"
    assert document["name"] == payload["hook_event_name"]
    expected = {
        key: value
        for key, value in payload.items()
        if key not in {"session_id", "hook_event_name", "agent_id"}
    }
    assert document["payload"] == expected


def test_agent_id_of_an_unknown_hook_is_mapped():
    assert as_json(FUTURE_HOOK_EVENT)["agentId"] == "agent_fake_01"


def test_session_end_is_completed_with_the_raw_reason_kept():
    document = as_json(SESSION_END)
    assert document["eventType"] == "session_end"
    assert document["reason"] == "completed"
    assert document["rawReason"] == "other"
    assert document["extra"] is None


def test_attribution_decides_developer_project_and_source():
    event = event_from_hook(
        PRE_TOOL_USE,
        Attribution(developer_id="dev_jordan", project_id="proj_backend", source="gateway"),
    )
    assert event.developer_id == "dev_jordan"
    assert event.project_id == "proj_backend"
    assert event.source == "gateway"


def test_payload_cannot_claim_a_developer_id():
    payload = {**PRE_TOOL_USE, "developer_id": "dev_someone_else"}
    event = event_from_hook(payload, Attribution(developer_id="dev_jordan"))
    assert event.developer_id == "dev_jordan"
    assert event.extra is not None
    assert event.extra["developer_id"] == "dev_someone_else"


# -- nothing the agent sent is dropped ----------------------------------------------------------


def test_unknown_effort_and_permission_mode_on_pre_tool_use_are_kept_in_extra():
    document = as_json(PRE_TOOL_USE)
    assert document["extra"] == {
        "cwd": "/home/dev/app",
        "permission_mode": "acceptEdits",
        "effort": {"level": "medium"},
    }


@pytest.mark.parametrize("payload", ALL_PAYLOADS.values(), ids=list(ALL_PAYLOADS))
def test_every_payload_key_is_mapped_or_kept(payload):
    document = as_json(payload)
    kept = document.get("extra") or document.get("payload") or {}
    for key, value in payload.items():
        if key in {"session_id", "hook_event_name"}:
            continue
        if key in kept:
            assert kept[key] == value, key
            continue
        landed = [field for field in MAPPED_FIELDS.get(key, ()) if document.get(field) == value]
        assert landed, f"payload key {key!r} was dropped"


@pytest.mark.parametrize("payload", ALL_PAYLOADS.values(), ids=list(ALL_PAYLOADS))
def test_mapping_does_not_change_the_payload(payload):
    before = copy.deepcopy(payload)
    to_event(payload)
    assert payload == before


def test_duration_that_is_not_a_non_negative_integer_is_kept_in_extra():
    payload = {**POST_TOOL_USE_BASH, "duration_ms": "16ms"}
    document = as_json(payload)
    assert document["durationMs"] is None
    assert document["extra"]["duration_ms"] == "16ms"


# -- large outputs ------------------------------------------------------------------------------


def test_output_over_the_cap_is_truncated_with_full_length_and_hash():
    response = {"stdout": "x" * 10 * 1024, "stderr": "", "interrupted": False}
    payload = {**POST_TOOL_USE_BASH, "tool_response": response}
    full = rfc8785.dumps(response)
    document = as_json(payload, output_cap=1024)
    assert document["outputTruncated"] is True
    assert document["outputLength"] == len(full)
    assert document["outputSha256"] == canonical_sha256(response)
    stored = document["output"]
    assert isinstance(stored, str)
    assert len(stored.encode()) <= 1024
    assert full.startswith(stored.encode())
    assert len(stored) > 900  # a useful preview, not an empty string


def test_truncation_never_splits_a_multibyte_character():
    response = {"stdout": "é" * 4000}
    payload = {**POST_TOOL_USE_BASH, "tool_response": response}
    document = as_json(payload, output_cap=1001)
    stored = document["output"]
    assert document["outputTruncated"] is True
    assert rfc8785.dumps(response).startswith(stored.encode())
    assert "\ufffd" not in stored


def test_output_within_the_cap_is_kept_whole_with_its_length_and_hash():
    response = POST_TOOL_USE_BASH["tool_response"]
    document = as_json(POST_TOOL_USE_BASH, output_cap=1024)
    assert document["outputTruncated"] is False
    assert document["output"] == response
    assert document["outputLength"] == len(rfc8785.dumps(response))
    assert document["outputSha256"] == canonical_sha256(response)


def test_output_exactly_at_the_cap_is_not_truncated():
    response = {"stdout": "y" * 100}
    size = len(rfc8785.dumps(response))
    payload = {**POST_TOOL_USE_BASH, "tool_response": response}
    assert as_json(payload, output_cap=size)["outputTruncated"] is False
    assert as_json(payload, output_cap=size - 1)["outputTruncated"] is True


# -- payloads that cannot be recorded -----------------------------------------------------------


def test_missing_session_id_is_named_in_the_error():
    payload = {key: value for key, value in PRE_TOOL_USE.items() if key != "session_id"}
    with pytest.raises(HookPayloadError, match="session_id"):
        to_event(payload)


def test_empty_session_id_is_named_in_the_error():
    with pytest.raises(HookPayloadError, match="session_id"):
        to_event({**PRE_TOOL_USE, "session_id": ""})


def test_missing_hook_event_name_is_named_in_the_error():
    payload = {key: value for key, value in PRE_TOOL_USE.items() if key != "hook_event_name"}
    with pytest.raises(HookPayloadError, match="hook_event_name"):
        to_event(payload)


def test_non_string_tool_name_is_named_in_the_error():
    with pytest.raises(HookPayloadError, match="tool_name") as caught:
        to_event({**PRE_TOOL_USE, "tool_name": 42})
    assert "string" in str(caught.value)


def test_missing_tool_name_on_a_tool_result_is_named_in_the_error():
    payload = {key: value for key, value in POST_TOOL_USE_BASH.items() if key != "tool_name"}
    with pytest.raises(HookPayloadError, match="tool_name"):
        to_event(payload)


def test_identifier_with_control_characters_is_refused_at_the_edge():
    with pytest.raises(HookPayloadError, match="session_id: must not contain control"):
        to_event({**STOP, "session_id": "sess\nforged"})


def test_integer_beyond_what_json_carries_exactly_is_refused_naming_its_path():
    with pytest.raises(HookPayloadError, match=r"tool_input\.count: integer"):
        to_event({**PRE_TOOL_USE, "tool_input": {"count": 2**60}})


def test_payload_that_is_not_an_object_is_rejected():
    with pytest.raises(HookPayloadError, match="object"):
        event_from_hook(["not", "an", "object"], Attribution())  # type: ignore[arg-type]


# -- importing JSONL hook logs ------------------------------------------------------------------


def jsonl(*payloads: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(payload).encode() + b"\n" for payload in payloads)


def open_ledger(data_dir: Path) -> Ledger:
    return Ledger.open(
        data_dir,
        config=LedgerConfig(checkpoint_every_events=50, checkpoint_interval_seconds=3600.0),
        run_reason="import",
    )


def import_file(data_dir: Path, path: Path, **kwargs: Any):
    ledger = open_ledger(data_dir)
    try:
        return import_hook_log(ledger, path, **kwargs)
    finally:
        ledger.close()


def imported_rows(data_dir: Path) -> list[LedgerRow]:
    """Stored rows that came from an import, in ledger order."""
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return [row for row in store.rows() if orjson.loads(row.body)["source"] == "ingest"]
    finally:
        store.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "ledger"


GOOD_LINES = [SESSION_START, PRE_TOOL_USE, POST_TOOL_USE_BASH, STOP]
MISSING_SESSION = {"hook_event_name": "Stop", "stop_hook_active": False}


@pytest.fixture
def mixed_log(tmp_path: Path) -> Path:
    """Four good lines among blank lines and five kinds of bad line."""
    path = tmp_path / "hooks.jsonl"
    path.write_bytes(
        jsonl(SESSION_START)  # 1
        + b"\n"  # 2 blank
        + jsonl(PRE_TOOL_USE)  # 3
        + b"this is not json\n"  # 4
        + b'["a", "json", "array"]\n'  # 5
        + b"   \t \n"  # 6 whitespace only
        + b'\xff\xfe{"session_id": "x"}\n'  # 7 invalid UTF-8
        + jsonl(POST_TOOL_USE_BASH)  # 8
        + jsonl(MISSING_SESSION)  # 9
        + jsonl({**STOP, "session_id": OTHER_SESSION})  # 10
    )
    return path


def test_import_reports_each_bad_line_with_its_number(data_dir, mixed_log):
    result = import_file(data_dir, mixed_log)
    problems = {problem.line: problem.message for problem in result.problems}
    assert sorted(problems) == [4, 5, 7, 9]
    assert "not JSON" in problems[4]
    assert "not a JSON object" in problems[5]
    assert "UTF-8" in problems[7]
    assert "session_id" in problems[9]
    assert str(result.problems[0]).startswith("line 4: ")


def test_import_does_not_report_blank_lines(data_dir, mixed_log):
    result = import_file(data_dir, mixed_log)
    assert all(problem.line not in (2, 6) for problem in result.problems)
    assert result.lines == 10


def test_import_appends_every_good_line_in_order(data_dir, mixed_log):
    result = import_file(data_dir, mixed_log)
    assert result.appended == 4
    assert result.already_recorded == 0
    rows = imported_rows(data_dir)
    assert [(row.event_type, row.session_id) for row in rows] == [
        ("session_start", SESSION),
        ("tool_invocation", SESSION),
        ("tool_result", SESSION),
        ("agent_event", OTHER_SESSION),
    ]
    assert [row.tool for row in rows] == [None, "Bash", "Bash", None]


def test_imported_events_can_be_queried_by_session_and_type(data_dir, mixed_log):
    import_file(data_dir, mixed_log, developer_id="dev_jordan", project_id="proj_backend")
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        in_session = list(store.query(EventFilter(session_id=SESSION)))
        stops = list(store.query(EventFilter(event_type=EventType.AGENT_EVENT.value)))
        by_developer = list(store.query(EventFilter(developer_id="dev_jordan")))
    finally:
        store.close()
    assert [row.event_type for row in in_session] == [
        "session_start",
        "tool_invocation",
        "tool_result",
    ]
    assert [row.session_id for row in stops] == [OTHER_SESSION]
    assert len(by_developer) == 4
    assert {row.project_id for row in by_developer} == {"proj_backend"}


def test_imported_body_is_the_canonical_event_with_content_derived_id(data_dir, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(jsonl(PRE_TOOL_USE))
    import_file(data_dir, path)
    (row,) = imported_rows(data_dir)
    document = orjson.loads(row.body)
    assert row.body == rfc8785.dumps(document)
    assert document["eventId"] == content_event_id(PRE_TOOL_USE) == row.event_id
    assert document["input"] == PRE_TOOL_USE["tool_input"]
    assert document["extra"]["effort"] == {"level": "medium"}
    assert document["policyResult"] is None


def test_importing_the_same_file_twice_appends_nothing_the_second_time(data_dir, mixed_log):
    first = import_file(data_dir, mixed_log)
    second = import_file(data_dir, mixed_log)
    assert first.appended == 4
    assert second.appended == 0
    assert second.already_recorded == 4
    assert len(second.problems) == 4
    assert len(imported_rows(data_dir)) == 4


def test_importing_the_same_file_twice_into_one_open_ledger_appends_nothing(data_dir, mixed_log):
    ledger = open_ledger(data_dir)
    try:
        first = import_hook_log(ledger, mixed_log)
        second = import_hook_log(ledger, mixed_log)
    finally:
        ledger.close()
    assert (first.appended, first.already_recorded) == (4, 0)
    assert (second.appended, second.already_recorded) == (0, 4)
    assert len(imported_rows(data_dir)) == 4


def test_ledger_verifies_intact_after_repeated_imports(data_dir, mixed_log):
    import_file(data_dir, mixed_log)
    import_file(data_dir, mixed_log)
    opener = functools.partial(SQLiteStore.in_data_dir, data_dir, read_only=True)
    verifier = load_verifier(str(data_dir / "signing.pub"))
    store = opener()
    try:
        report = verify_ledger(store, opener, verifier, workers=1)
        stored = len(list(store.rows()))
    finally:
        store.close()
    assert report.intact, [str(finding) for finding in report.failures]
    assert report.events == stored


def test_identical_lines_in_one_file_are_genuine_repeats_and_each_recorded(data_dir, tmp_path):
    path = tmp_path / "repeats.jsonl"
    path.write_bytes(jsonl(STOP, STOP, STOP))  # three identical Stop events really happened
    result = import_file(data_dir, path)
    assert result.appended == 3
    assert len(imported_rows(data_dir)) == 3
    again = import_file(data_dir, path)  # the same file again: nothing new
    assert again.appended == 0
    assert again.already_recorded == 3


def test_same_payloads_with_keys_in_another_order_are_recognised_as_recorded(data_dir, tmp_path):
    first = tmp_path / "a.jsonl"
    second = tmp_path / "b.jsonl"
    first.write_bytes(jsonl(*GOOD_LINES))
    second.write_bytes(jsonl(*(dict(reversed(list(p.items()))) for p in GOOD_LINES)))
    assert import_file(data_dir, first).appended == 4
    result = import_file(data_dir, second)
    assert (result.appended, result.already_recorded) == (0, 4)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-04-15T16:32:07.123456+02:00", "2026-04-15T14:32:07.123Z"),
        ("2026-04-15T14:32:07Z", "2026-04-15T14:32:07.000Z"),
        ("2026-04-15T14:32:07.5", "2026-04-15T14:32:07.500Z"),  # no zone: read as UTC
    ],
)
def test_payload_timestamp_is_kept_as_the_event_time_in_utc_millis(
    data_dir, tmp_path, sent, stored
):
    path = tmp_path / "timed.jsonl"
    path.write_bytes(jsonl({**STOP, "timestamp": sent}))
    import_file(data_dir, path)
    (row,) = imported_rows(data_dir)
    assert row.timestamp == stored
    assert orjson.loads(row.body)["timestamp"] == stored


def test_unreadable_payload_timestamp_falls_back_to_import_time(data_dir, tmp_path):
    path = tmp_path / "timed.jsonl"
    path.write_bytes(jsonl({**STOP, "timestamp": "yesterday at noon"}))
    before = datetime.now(UTC) - timedelta(seconds=1)
    result = import_file(data_dir, path)
    assert result.problems == []
    (row,) = imported_rows(data_dir)
    moment = datetime.strptime(row.timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before <= moment <= datetime.now(UTC) + timedelta(seconds=1)
    assert orjson.loads(row.body)["payload"]["timestamp"] == "yesterday at noon"


def test_out_of_range_payload_timestamp_is_a_line_problem_not_an_aborted_import(data_dir, tmp_path):
    path = tmp_path / "timed.jsonl"
    path.write_bytes(jsonl(SESSION_START, {**STOP, "timestamp": "0001-01-01T00:00:00+01:00"}))
    result = import_file(data_dir, path)
    assert [problem.line for problem in result.problems] in ([], [2])
    assert imported_rows(data_dir)[0].event_type == "session_start"


def test_import_with_no_good_lines_appends_nothing(data_dir, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"nope\n\n[]\n")
    result = import_file(data_dir, path)
    assert result.appended == 0
    assert [problem.line for problem in result.problems] == [1, 3]
    assert imported_rows(data_dir) == []


# -- content-derived event ids ------------------------------------------------------------------


def test_content_event_id_ignores_key_order():
    reordered = dict(reversed(list(PRE_TOOL_USE.items())))
    assert list(reordered) != list(PRE_TOOL_USE)
    assert content_event_id(reordered) == content_event_id(PRE_TOOL_USE)


def test_content_event_id_ignores_nested_key_order():
    nested = {**PRE_TOOL_USE, "tool_input": {"description": "say hello", "command": "echo hello"}}
    assert content_event_id(nested) == content_event_id(PRE_TOOL_USE)


def test_content_event_id_is_a_uuid_version_8():
    value = content_event_id(PRE_TOOL_USE)
    parsed = uuid.UUID(value)
    assert str(parsed) == value
    assert parsed.version == 8
    assert parsed.variant == uuid.RFC_4122


def test_content_event_id_differs_when_any_value_differs():
    changed = {**PRE_TOOL_USE, "tool_input": {"command": "echo hellp", "description": "say hello"}}
    assert content_event_id(changed) != content_event_id(PRE_TOOL_USE)


def test_content_event_id_is_stable_across_calls():
    assert content_event_id(STOP) == content_event_id(json.loads(json.dumps(STOP)))


def test_reason_on_a_successful_tool_result_is_kept_as_extra_not_as_an_error():
    event = to_event({**POST_TOOL_USE_BASH, "reason": "because"})
    assert event.status == "success"
    assert event.error is None
    assert event.extra is not None
    assert event.extra["reason"] == "because"


def test_empty_hook_event_name_is_refused_by_name():
    with pytest.raises(HookPayloadError, match="hook_event_name: must not be empty"):
        to_event({**STOP, "hook_event_name": ""})


def test_line_nested_too_deeply_is_a_line_problem_not_an_aborted_import(data_dir, tmp_path):
    depth = 1020  # orjson parses up to 1024 levels; Python's recursion stops near 1000
    deep = '{"d":' * depth + '{"leaf":1}' + "}" * depth
    line = '{"session_id":"s","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":'
    path = tmp_path / "deep.jsonl"
    path.write_bytes((line + deep + "}\n").encode() + jsonl(STOP))
    result = import_file(data_dir, path)
    assert [p.line for p in result.problems] == [1]
    assert result.appended == 1


def test_imported_hook_logs_pass_the_redaction_stage(data_dir, tmp_path):
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAfakefakefakefakefakefakefakefakefake"
        "fakefakefakefakefake0000\n-----END RSA PRIVATE KEY-----"
    )
    secrets = [
        "AKIAFAKEFAKEFAKE0000",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "ghp_FAKEfakeFAKEfakeFAKEfakeFAKEfake0000",
        "sk_live_FAKEfakeFAKEfakeFAKEfake00",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlIn0.FAKEsignatureFAKEsignature00",
    ]
    command = (
        f"AWS_ACCESS_KEY_ID={secrets[0]} AWS_SECRET_ACCESS_KEY={secrets[1]} aws s3 ls && "
        f"git clone https://{secrets[2]}@github.com/a/b && curl -H 'Authorization: Bearer "
        f"{secrets[4]}' -u {secrets[3]}: https://api.stripe.com"
    )
    path = tmp_path / "secrets.jsonl"
    path.write_bytes(
        jsonl(
            {**PRE_TOOL_USE, "tool_input": {"command": command}},
            {**POST_TOOL_USE_BASH, "tool_response": {"stdout": pem}},
        )
    )
    result = import_file(data_dir, path)
    assert result.appended == 2, result.problems
    raw = b"".join(p.read_bytes() for p in data_dir.glob("ledger.sqlite3*"))
    for secret in [*secrets, "MIIEowIBAAKCAQEAfake"]:
        assert secret.encode() not in raw, secret
    assert b"[REDACTED:" in raw
