"""Fuzzing what a hostile or broken agent can hand trailguard: event JSON and hook-log lines.

The property in every case: a clear, typed rejection or a stored event — never another
exception, and never a good input lost because a bad one sat beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import verify_dir
from trailguard.capture.hook_log import import_hook_log
from trailguard.events import EventValidationError, parse_event
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.sqlite import SQLiteStore

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
event_keys = st.sampled_from(
    [
        "eventType",
        "eventId",
        "seq",
        "timestamp",
        "sessionId",
        "tool",
        "toolUseId",
        "input",
        "reason",
        "prompt",
        "status",
        "operation",
        "extra",
        "treeSize",
        "costUsd",
    ]
)
event_like = st.dictionaries(event_keys, json_values, max_size=8) | st.fixed_dictionaries(
    {"eventType": st.sampled_from(["tool_invocation", "session_end", "prompt", "cost", "nope"])},
    optional={
        "tool": json_values,
        "prompt": json_values,
        "reason": json_values,
        "seq": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(event_like)
def test_any_json_object_is_an_event_or_a_named_rejection(document):
    try:
        event = parse_event(document)
    except EventValidationError as exc:
        assert exc.problems
        assert all(":" in problem for problem in exc.problems)  # "field: what is wrong"
        return
    assert event.to_json_dict()["eventType"] == document["eventType"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_an_event_or_a_named_rejection(raw):
    try:
        parse_event(raw)
    except EventValidationError as exc:
        assert exc.problems


good_payload = st.builds(
    lambda n, prompt: {
        "session_id": f"sess_{n}",
        "hook_event_name": "UserPromptSubmit",
        "prompt": prompt,
    },
    st.integers(min_value=0, max_value=10**6),
    st.text(max_size=40),
)
bad_line = st.one_of(
    st.binary(max_size=80).filter(lambda b: b"\n" not in b and b.strip() != b""),
    json_values.map(lambda v: json.dumps(v).encode()),  # NaN, Infinity: not JSON, garbage too
    st.dictionaries(
        st.sampled_from(["session_id", "hook_event_name", "tool_name", "tool_input"]),
        json_values,
        max_size=4,
    ).map(lambda d: json.dumps(d).encode()),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(st.booleans(), good_payload, bad_line), min_size=1, max_size=25))
def test_a_hook_log_of_good_and_garbage_lines_keeps_every_good_line(tmp_path_factory, lines):
    directory = tmp_path_factory.mktemp("fuzz")
    log = directory / "hooks.jsonl"
    expected_prompts = []
    raw_lines = []
    for is_good, payload, garbage in lines:
        if is_good:
            raw_lines.append(json.dumps(payload).encode())
            expected_prompts.append(payload["prompt"])
        else:
            raw_lines.append(garbage)
    log.write_bytes(b"\n".join(raw_lines) + b"\n")
    data_dir = directory / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=10))
    try:
        result = import_hook_log(ledger, log)
    finally:
        ledger.close()

    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    stored_prompts = [
        orjson.loads(row.body)["prompt"] for row in store.rows() if row.event_type == "prompt"
    ]
    store.close()
    # Every good line is stored (identical payloads count once); garbage never displaces them.
    assert set(expected_prompts) <= set(stored_prompts)
    assert result.appended + result.already_recorded + len(result.problems) <= len(lines)
    assert all(1 <= p.line <= len(lines) for p in result.problems)
    assert verify_dir(Path(data_dir)).intact
