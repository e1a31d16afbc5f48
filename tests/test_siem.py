"""SIEM streaming: every event reaches every sink, in order, at least once; nothing is lost while
a sink is down; the real rsyslog over TLS; the Splunk HEC test double; signed webhooks."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from conftest import sample_events
from siem_receivers import (
    Certificates,
    HecReceiver,
    Rsyslog,
    WebhookReceiver,
    first_occurrences,
    make_certificates,
    wait_until,
)
from trailguard.ledger.writer import Ledger
from trailguard.siem.config import SinkConfig, parse_sink_url
from trailguard.siem.cursors import CursorStore
from trailguard.siem.forwarder import Forwarder
from trailguard.store.sqlite import SQLiteStore

FAKE_HEC_TOKEN = "00000000-fake-hec-token-0000-000000000000"
FAKE_WEBHOOK_KEY = b"fake-webhook-hmac-key-for-tests"


def ledger_rows(data_dir: Path) -> list[dict[str, object]]:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return [orjson.loads(row.body) for row in store.rows()]
    finally:
        store.close()


def secret_file(tmp_path: Path, name: str, value: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(value + b"\n")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def forwarding(
    ledger: Ledger, *configs: SinkConfig, poll: float = 0.02
) -> Iterator[list[Forwarder]]:
    cursors = CursorStore(ledger.data_dir)
    forwarders = [
        Forwarder(
            config,
            data_dir=ledger.data_dir,
            verifier=ledger.verifier,
            cursors=cursors,
            hostname=socket.gethostname(),
            record_alert=ledger.submit,
            poll_interval=poll,
        )
        for config in configs
    ]
    for forwarder in forwarders:
        forwarder.start()
    try:
        yield forwarders
    finally:
        for forwarder in forwarders:
            forwarder.stop()
        cursors.close()


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "certs")


@pytest.fixture
def rsyslog(tmp_path: Path, certificates: Certificates) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path / "rsyslog", certificates)
    server.start()
    yield server
    server.stop()


def caught_up(forwarder: Forwarder, ledger: Ledger) -> bool:
    status = forwarder.status
    return status.cursor >= ledger.tree_size and status.head >= ledger.tree_size


def test_every_event_reaches_rsyslog_over_tls_in_order_with_rfc5424_fields(
    open_ledger, rsyslog, certificates
):
    ledger = open_ledger()
    ledger.append_many(sample_events(120))
    ledger.checkpoint()
    config = parse_sink_url(
        f"syslog+tls://127.0.0.1:{rsyslog.port}?ca={certificates.ca}&format=json&batch_size=25"
    )
    with forwarding(ledger, config) as (forwarder,):
        wait_until(lambda: caught_up(forwarder, ledger), what="the sink to catch up")
        wait_until(lambda: len(rsyslog.lines()) >= ledger.tree_size, what="rsyslog to write")
    expected = ledger_rows(ledger.data_dir)
    messages = rsyslog.messages()
    received = [json.loads(msg) for _, _, msg in messages]
    # The json format is the stored canonical bytes: every event exactly as signed, in order.
    assert [(e["seq"], e["eventId"]) for e in received] == [
        (e["seq"], e["eventId"]) for e in expected
    ]
    assert received == expected
    # rsyslog parsed our RFC 5424 header: APP-NAME and MSGID (the event type) are fields.
    assert {app for app, _, _ in messages} == {"trailguard"}
    assert [msgid for _, msgid, _ in messages] == [e["eventType"] for e in expected]
    assert forwarder.status.delivered == len(expected)
    assert "checkpoint" in {e["eventType"] for e in received}


# -- CEF: hostile agent-controlled content cannot end the line or forge fields --------------


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """A CEF:0 parser written from the specification, independent of trailguard's writer:
    seven header fields split on unescaped pipes (``\\|`` and ``\\\\`` escaped), then
    ``key=value`` pairs whose values escape ``\\=``, ``\\\\``, ``\\n`` and ``\\r``."""
    import re

    header: list[str] = []
    current, i = "", 0
    while len(header) < 7:
        char = line[i]
        if char == "\\" and line[i + 1] in "|\\":
            current += line[i + 1]
            i += 2
        elif char == "|":
            header.append(current)
            current, i = "", i + 1
        else:
            current += char
            i += 1
    extension = line[i:]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", extension))
    values: dict[str, str] = {}
    for number, match in enumerate(keys):
        end = keys[number + 1].start() if number + 1 < len(keys) else len(extension)
        raw = extension[match.end() : end]
        values[match[1]] = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), raw)
    return header, values


HOSTILE = (
    "echo 'a|b' act=allowed suser=root \\ back\\slash\r\nCEF:0|evil|x|1|2|3|10|act=allowed\n=|"
)


def test_cef_escapes_hostile_agent_content_through_rsyslog(open_ledger, rsyslog, certificates):
    from trailguard.events import Alert, ToolInvocation

    ledger = open_ledger()
    ledger.append_many(
        [
            ToolInvocation(
                tool="mcp__evil|tool\\x",
                tool_use_id="toolu_evil",
                input={"command": HOSTILE},
                policy_result="denied",
                policy_rule="rule|with=odd\\chars",
                policy_reason=HOSTILE,
                session_id="sess_evil",
                developer_id="dev_jordan",
            ),
            Alert(alert_type="loop", severity="high", message=HOSTILE + "\x1b[31m"),
        ]
    )
    config = parse_sink_url(
        f"syslog+tls://127.0.0.1:{rsyslog.port}?ca={certificates.ca}&format=cef"
    )
    with forwarding(ledger, config) as (forwarder,):
        wait_until(lambda: caught_up(forwarder, ledger), what="the sink to catch up")
        wait_until(lambda: len(rsyslog.lines()) >= ledger.tree_size, what="rsyslog to write")
    lines = [msg for _, _, msg in rsyslog.messages()]
    assert len(lines) == ledger.tree_size, "a newline in agent content split a message"
    by_id = {}
    for line in lines:
        assert line.startswith("CEF:0|trailguard|trailguard|")
        header, values = parse_cef(line)
        by_id[values["externalId"]] = (header, values)
    rows = {row["eventId"]: row for row in ledger_rows(ledger.data_dir)}
    denial = next(r for r in rows.values() if r.get("toolUseId") == "toolu_evil")
    header, values = by_id[denial["eventId"]]
    assert header[4] == "tool_invocation:denied"
    assert header[5] == "mcp__evil|tool\\x denied"  # the pipe and backslash survived, escaped
    assert int(header[6]) >= 5
    assert values["act"] == "denied", "the agent's 'act=allowed' became a field"
    assert values["suser"] == "dev_jordan"
    assert values["reason"] == HOSTILE
    assert values["cs4"] == "rule|with=odd\\chars"
    assert json.loads(values["msg"]) == {"command": HOSTILE}
    assert values["cn1"] == str(denial["seq"])
    # The RFC 5424 PRI rsyslog read: facility 13 (log audit), a denial at least a warning.
    priorities = {json_id: (f, sev) for f, sev, _, _, json_id in (
        (f, sev, a, m, parse_cef(msg)[1]["externalId"]) for f, sev, a, m, msg in rsyslog.parsed()
    )}  # fmt: skip
    assert priorities[denial["eventId"]] == (13, 4)
    assert {f for f, _ in priorities.values()} == {13}
    alert = next(r for r in rows.values() if r.get("alertType") == "loop")
    _, values = by_id[alert["eventId"]]
    assert values["msg"] == HOSTILE + "\ufffd[31m", "a terminal escape reached the SIEM"


# -- OCSF: every event type maps to a class and validates against the published schema ------


def every_event_type() -> list[object]:
    from trailguard.events import (
        AgentEvent,
        Alert,
        AuditAccess,
        BudgetThreshold,
        Cost,
        InfraOperation,
        Operation,
        PolicyChange,
        Prompt,
        SessionEnd,
        SessionStart,
        TokenChange,
        ToolInvocation,
        ToolResult,
    )

    common = {"session_id": "sess_ocsf", "developer_id": "dev_jordan", "project_id": "proj_x"}
    s3 = Operation(
        kind="aws",
        action="s3:PutObject",
        resource="arn:aws:s3:::prod-config/app.json",
        access="write",
        risk="high",
        attributes={"profile": "prod"},
    )
    return [
        SessionStart(
            agent="claude-code", agent_version="2.1.328", model="claude-opus-5-5", **common
        ),
        Prompt(prompt="deploy it", **common),
        ToolInvocation(
            tool="Bash",
            tool_use_id="toolu_1",
            input={"command": "aws s3 cp a.json s3://prod-config/app.json"},
            operations=[s3],
            policy_result="allowed",
            policy_rule="allow-all",
            **common,
        ),
        ToolResult(
            tool="Bash",
            tool_use_id="toolu_1",
            status="success",
            output={"stdout": "ok"},
            duration_ms=12,
            **common,
        ),
        InfraOperation(tool_use_id="toolu_1", operation=s3, **common),
        ToolInvocation(
            tool="Read",
            tool_use_id="toolu_2",
            input={"file_path": "/etc/hosts"},
            policy_result="allowed",
            **common,
        ),
        ToolResult(tool="Read", tool_use_id="toolu_2", status="error", error="ENOENT", **common),
        ToolInvocation(
            tool="mcp__github__create_issue",
            tool_use_id="toolu_3",
            input={},
            policy_result="ask",
            **common,
        ),
        ToolInvocation(
            tool="Bash",
            tool_use_id="toolu_4",
            input={"command": "git push -f origin main"},
            policy_result="denied",
            policy_rule="no-force-push-to-main",
            policy_reason="force-pushing main rewrites history",
            **common,
        ),
        Alert(alert_type="loop_detected", severity="medium", message="same call 8 times", **common),
        Cost(model="claude-opus-5-5", input_tokens=10, output_tokens=5, cost_usd=0.01, **common),
        BudgetThreshold(scope="session", limit_usd=5.0, spent_usd=4.0, percent=80, **common),
        PolicyChange(policy_version="sha256:abc", description="reloaded"),
        AuditAccess(
            action="GET /v1/events", developer_id="dev_auditor", outcome="allowed", result_count=3
        ),
        AuditAccess(action="query", actor="os:root", outcome="refused"),
        AgentEvent(name="Notification", payload={"message": "waiting"}, **common),
        TokenChange(
            action="created",
            token_id="tok_1",
            role="agent",
            subject_developer_id="dev_jordan",
            changed_by="os:root",
        ),
        TokenChange(
            action="revoked",
            token_id="tok_1",
            role="agent",
            subject_developer_id="dev_jordan",
            changed_by="os:root",
        ),
        SessionEnd(reason="completed", **common),
    ]


@pytest.fixture(scope="module")
def ocsf_schema():
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

    from trailguard.siem.ocsf import OCSF_VERSION

    return OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))


def test_ocsf_output_validates_against_the_published_schema(open_ledger, ocsf_schema):
    import jsonschema_rs

    from trailguard.siem.ocsf import OCSF_VERSION, to_ocsf

    ledger = open_ledger()
    ledger.append_many(every_event_type())
    ledger.close()
    rows = ledger_rows(ledger.data_dir)
    assert {row["eventType"] for row in rows} >= {
        "session_start",
        "session_end",
        "prompt",
        "tool_invocation",
        "tool_result",
        "infra_operation",
        "policy_change",
        "cost",
        "budget_threshold",
        "alert",
        "checkpoint",
        "gateway_start",
        "gateway_stop",
        "audit_access",
        "agent_event",
        "token_change",
    }
    validators: dict[int, object] = {}
    classes = {}
    for row in rows:
        event = to_ocsf(row)
        uid = event["class_uid"]
        if uid not in validators:
            name = ocsf_schema.lookup_class_name_from_uid(uid)
            validators[uid] = jsonschema_rs.validator_for(ocsf_schema.get_class_schema(name))
        errors = [str(e) for e in validators[uid].iter_errors(event)]
        assert not errors, f"{row['eventType']} (seq {row['seq']}) -> {uid}: {errors[:5]}"
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert event["metadata"]["uid"] == row["eventId"]
        assert event["metadata"]["sequence"] == row["seq"]
        assert event["metadata"]["version"] == OCSF_VERSION
        assert event["metadata"]["product"]["name"] == "trailguard"
        assert isinstance(event["time"], int)
        assert event["time"] > 1_700_000_000_000
        assert event["time"] % 1000 == int(row["timestamp"][20:23])
        classes.setdefault(row["eventType"], set()).add((uid, event["activity_id"]))
    assert classes["session_start"] == {(6002, 3)}
    assert classes["session_end"] == {(6002, 4)}
    assert classes["gateway_start"] == {(6002, 3)}
    assert classes["infra_operation"] == {(6003, 3)}  # s3:PutObject is a write
    assert classes["alert"] == {(2004, 1)}
    assert classes["token_change"] == {(3004, 1), (3004, 4)}
    assert classes["checkpoint"] == {(0, 99)}
    # Bash → Process Activity (launch and terminate), a denial → Detection Finding, others API.
    assert classes["tool_invocation"] == {(1007, 1), (6003, 2), (6003, 0), (2004, 1)}
    assert classes["tool_result"] == {(1007, 2), (6003, 2)}
    by_type = {row["eventType"]: to_ocsf(row) for row in rows}
    infra = by_type["infra_operation"]
    assert infra["api"]["operation"] == "s3:PutObject"
    assert infra["resources"][0]["uid"] == "arn:aws:s3:::prod-config/app.json"
    checkpoint = by_type["checkpoint"]
    assert checkpoint["unmapped"]["note"].startswith(ledger.origin)


def test_ocsf_validation_catches_a_broken_mapping(ocsf_schema):
    """The check above can fail: a missing required field or a wrong type is reported."""
    import jsonschema_rs

    validator = jsonschema_rs.validator_for(ocsf_schema.get_class_schema("api_activity"))
    event = {
        "class_uid": 6003,
        "category_uid": 6,
        "activity_id": 2,
        "type_uid": 600302,
        "time": "yesterday",
        "severity_id": 1,
        "metadata": {"version": "1.5.0"},
    }
    errors = " ".join(str(e) for e in validator.iter_errors(event)).replace("'", '"')
    assert '"actor" is a required property' in errors
    assert '"product" is a required property' in errors
    assert 'is not of type "integer"' in errors


# -- TLS: the server is always verified, never a plaintext fallback --------------------------


def alerts(data_dir: Path, alert_type: str) -> list[dict[str, object]]:
    return [
        row
        for row in ledger_rows(data_dir)
        if row["eventType"] == "alert" and row["alertType"] == alert_type
    ]


def test_a_wrong_ca_is_refused_nothing_is_sent_and_the_sink_pauses_with_an_alert(
    open_ledger, rsyslog, certificates, monkeypatch
):
    monkeypatch.setattr("trailguard.siem.forwarder.REFUSALS_BEFORE_PAUSE", 2)
    ledger = open_ledger()
    ledger.append_many(sample_events(10))
    config = parse_sink_url(
        f"syslog+tls://127.0.0.1:{rsyslog.port}?ca={certificates.other_ca}&max_backoff=0.2"
    )
    with forwarding(ledger, config) as (forwarder,):
        wait_until(lambda: forwarder.status.state == "paused", what="the sink to pause")
        assert forwarder.status.cursor == 0
        assert "certificate" in (forwarder.status.last_error or "")
        assert "no plaintext fallback" in (forwarder.status.last_error or "")
        wait_until(lambda: alerts(ledger.data_dir, "sink_paused"), what="the alert")
    assert rsyslog.lines() == [], "something reached the receiver without a verified TLS session"
    (alert,) = alerts(ledger.data_dir, "sink_paused")
    assert alert["severity"] == "high"
    assert "paused at seq 0" in alert["message"]
    assert "trailguard sinks resume" in alert["message"]


def test_a_client_certificate_is_presented_when_the_receiver_requires_one(
    tmp_path, open_ledger, certificates
):
    server = Rsyslog(tmp_path / "mtls", certificates, client_auth=True)
    server.start()
    try:
        ledger = open_ledger()
        ledger.append_many(sample_events(5))
        base = f"syslog+tls://127.0.0.1:{server.port}?ca={certificates.ca}"
        with_cert = parse_sink_url(
            f"{base}&cert={certificates.client_cert}&key={certificates.client_key}&name=mtls"
        )
        with forwarding(ledger, with_cert) as (forwarder,):
            wait_until(lambda: caught_up(forwarder, ledger), what="the sink to catch up")
            wait_until(lambda: len(server.lines()) >= ledger.tree_size, what="rsyslog to write")
        assert [json.loads(m)["seq"] for _, _, m in server.messages()] == list(
            range(ledger.tree_size)
        )
    finally:
        server.stop()


# -- Splunk HEC (test double): the cursor moves only for acknowledged batches ------------------


def hec_url(tmp_path: Path, receiver: HecReceiver, extra: str = "") -> str:
    token = secret_file(tmp_path, "hec.token", receiver.token.encode())
    return f"splunk-hec+http://127.0.0.1:{receiver.port}?token_file={token}{extra}"


def test_hec_cursor_moves_only_for_batches_splunk_acknowledged(tmp_path, open_ledger):
    receiver = HecReceiver(FAKE_HEC_TOKEN, ack=True)
    receiver.hold_acks = True
    receiver.start()
    try:
        ledger = open_ledger()
        ledger.append_many(sample_events(60))
        config = parse_sink_url(
            hec_url(tmp_path, receiver, "&ack=true&batch_size=10&ack_window=3&index=audit")
        )
        with forwarding(ledger, config) as (forwarder,):
            wait_until(lambda: receiver.state.requests >= 3, what="three batches sent")
            assert forwarder.status.cursor == 0, "the cursor moved before Splunk acknowledged"
            assert forwarder.status.delivered == 0
            assert receiver.state.requests == 3, "more batches in flight than the window"
            receiver.release_acks()
            wait_until(lambda: caught_up(forwarder, ledger), what="the sink to catch up")
        events = receiver.events
        assert [e["event"]["seq"] for e in events] == list(range(ledger.tree_size))
        assert all(e["fields"]["eventId"] == e["event"]["eventId"] for e in events)
        assert all(e["index"] == "audit" and e["sourcetype"] == "trailguard:event" for e in events)
        assert all(isinstance(e["time"], float) for e in events)
    finally:
        receiver.stop()


def test_hec_acknowledgements_lost_with_a_restarted_indexer_are_sent_again(tmp_path, open_ledger):
    receiver = HecReceiver(FAKE_HEC_TOKEN, ack=True)
    receiver.hold_acks = True
    receiver.start()
    try:
        ledger = open_ledger()
        ledger.append_many(sample_events(20))
        config = parse_sink_url(
            hec_url(tmp_path, receiver, "&ack=true&ack_timeout=1&max_backoff=0.2")
        )
        with forwarding(ledger, config) as (forwarder,):
            wait_until(lambda: receiver.state.requests >= 1, what="a batch sent")
            receiver.stop()  # the indexer restarts and forgets the pending acknowledgement
            receiver.state.pending.clear()
            receiver.hold_acks = False
            receiver.start()
            wait_until(lambda: caught_up(forwarder, ledger), what="the sink to catch up")
        assert [e["event"]["seq"] for e in receiver.events] == list(range(ledger.tree_size))
        assert receiver.state.requests >= 2, "the unacknowledged batch was not sent again"
    finally:
        receiver.stop()


# -- webhooks: signed, verified by the receiver; refusals pause, resume continues --------------


def webhook_url(tmp_path: Path, receiver: WebhookReceiver, key: bytes, extra: str = "") -> str:
    path = secret_file(tmp_path, "webhook.key", key)
    return f"webhook+http://127.0.0.1:{receiver.port}/trailguard?secret_file={path}{extra}"


def test_webhook_batches_are_signed_and_the_receiver_verifies_them(tmp_path, open_ledger):
    from trailguard.siem.http import verify_signature

    receiver = WebhookReceiver(FAKE_WEBHOOK_KEY)
    receiver.start()
    try:
        ledger = open_ledger()
        ledger.append_many(sample_events(30))
        config = parse_sink_url(webhook_url(tmp_path, receiver, FAKE_WEBHOOK_KEY, "&batch_size=7"))
        with forwarding(ledger, config) as (forwarder,):
            wait_until(lambda: caught_up(forwarder, ledger), what="the sink to catch up")
        assert [e["seq"] for e in receiver.events] == list(range(ledger.tree_size))
        assert receiver.refused == 0
        assert max(len(batch) for batch in receiver.batches) == 7
        body, signature = receiver.bodies[0]
        assert verify_signature(FAKE_WEBHOOK_KEY, signature, body)
        # The signature covers the exact body and the time: a changed body, another key or a
        # replay long after fail the receiver's check.
        assert not verify_signature(FAKE_WEBHOOK_KEY, signature, body.replace(b"step", b"stop"))
        assert not verify_signature(b"another key", signature, body)
        timestamp = int(signature.split(",")[0].removeprefix("t="))
        assert not verify_signature(FAKE_WEBHOOK_KEY, signature, body, now=timestamp + 3600)
    finally:
        receiver.stop()


def test_a_receiver_refusing_the_signature_pauses_the_sink_and_resume_delivers_everything(
    tmp_path, open_ledger, monkeypatch
):
    monkeypatch.setattr("trailguard.siem.forwarder.REFUSALS_BEFORE_PAUSE", 2)
    receiver = WebhookReceiver(b"the receiver expects another key")
    receiver.start()
    try:
        ledger = open_ledger()
        ledger.append_many(sample_events(12))
        config = parse_sink_url(
            webhook_url(tmp_path, receiver, FAKE_WEBHOOK_KEY, "&max_backoff=0.2&name=hooks")
        )
        with forwarding(ledger, config) as (forwarder,):
            wait_until(lambda: forwarder.status.state == "paused", what="the sink to pause")
            assert receiver.refused >= 2
            assert receiver.events == []
            assert forwarder.status.cursor == 0, "a refused batch was skipped"
            assert "401" in (forwarder.status.last_error or "")
            receiver.secret = FAKE_WEBHOOK_KEY  # the receiver's key is fixed
            assert CursorStore(ledger.data_dir).request_resume("hooks")
            wait_until(lambda: caught_up(forwarder, ledger), what="the sink to catch up")
        assert first_occurrences([e["seq"] for e in receiver.events]) == list(
            range(ledger.tree_size)
        )
    finally:
        receiver.stop()
    assert alerts(ledger.data_dir, "sink_paused")
    assert alerts(ledger.data_dir, "sink_resumed")


# -- outages: the ledger is the buffer ---------------------------------------------------------


def test_all_sinks_down_while_events_keep_coming_then_back_nothing_lost_order_kept(
    tmp_path, open_ledger, rsyslog, certificates
):
    hec = HecReceiver(FAKE_HEC_TOKEN, ack=True)
    webhook = WebhookReceiver(FAKE_WEBHOOK_KEY)
    hec.start()
    webhook.start()
    ledger = open_ledger()
    configs = [
        parse_sink_url(
            f"syslog+tls://127.0.0.1:{rsyslog.port}?ca={certificates.ca}&max_backoff=0.5"
            "&lag_alert_events=50&batch_size=20"
        ),
        parse_sink_url(hec_url(tmp_path, hec, "&ack=true&max_backoff=0.5&batch_size=20")),
        parse_sink_url(
            webhook_url(tmp_path, webhook, FAKE_WEBHOOK_KEY, "&max_backoff=0.5&batch_size=20")
        ),
    ]
    try:
        with forwarding(ledger, *configs) as forwarders:
            ledger.append_many(sample_events(50))
            wait_until(
                lambda: all(caught_up(f, ledger) for f in forwarders), what="all sinks caught up"
            )
            rsyslog.stop()
            hec.stop()
            webhook.stop()
            for _ in range(10):  # events keep coming while every SIEM is away
                ledger.append_many(sample_events(30))
            ledger.checkpoint()
            wait_until(
                lambda: all(f.status.state == "retrying" for f in forwarders),
                what="every sink to notice the outage",
            )
            wait_until(
                lambda: all(f.status.lag_events >= 300 for f in forwarders),
                what="the lag to show every event appended meanwhile",
            )
            wait_until(lambda: alerts(ledger.data_dir, "sink_lagging"), what="a lag alert")
            rsyslog.start()
            hec.start()
            webhook.start()
            wait_until(
                lambda: all(caught_up(f, ledger) for f in forwarders),
                timeout=60,
                what="all sinks caught up again",
            )
            wait_until(lambda: alerts(ledger.data_dir, "sink_caught_up"), what="the recovery")
            size = ledger.tree_size
            wait_until(lambda: len(rsyslog.lines()) >= size, what="rsyslog to write everything")
    finally:
        hec.stop()
        webhook.stop()
    expected = list(range(size))
    received = {
        "syslog": [json.loads(msg)["seq"] for _, _, msg in rsyslog.messages()],
        "hec": [e["event"]["seq"] for e in hec.events],
        "webhook": [e["seq"] for e in webhook.events],
    }
    for sink, seqs in received.items():
        assert first_occurrences(seqs)[:size] == expected, f"{sink}: lost or reordered events"
    lagging = alerts(ledger.data_dir, "sink_lagging")
    assert {a["details"]["sink"] for a in lagging} >= {configs[0].name}


def test_a_sink_down_keeps_memory_bounded_and_reads_only_its_window(tmp_path, open_ledger):
    """However far behind, a forwarder holds at most ``window`` batches of ``batch_size``."""
    webhook = WebhookReceiver(FAKE_WEBHOOK_KEY)  # never started: connection refused
    ledger = open_ledger()
    ledger.append_many(sample_events(3000))
    config = parse_sink_url(
        webhook_url(tmp_path, webhook, FAKE_WEBHOOK_KEY, "&max_backoff=0.1&batch_size=50")
    )
    with forwarding(ledger, config) as (forwarder,):
        wait_until(lambda: forwarder.status.failures >= 5, what="retries")
        assert len(forwarder._in_flight) <= 1
        assert forwarder._read_pos == forwarder.status.cursor == 0
        assert forwarder.status.lag_events == ledger.tree_size


# -- what is forwarded: only signed events; filters ---------------------------------------------


def test_a_row_written_beyond_the_signed_head_is_never_forwarded(tmp_path, open_ledger):
    import time

    import tamper
    from trailguard.events import Alert

    webhook = WebhookReceiver(FAKE_WEBHOOK_KEY)
    webhook.start()
    try:
        ledger = open_ledger()
        ledger.append_many(sample_events(10))
        config = parse_sink_url(webhook_url(tmp_path, webhook, FAKE_WEBHOOK_KEY))
        with forwarding(ledger, config) as (forwarder,):
            wait_until(lambda: caught_up(forwarder, ledger), what="caught up")
            forged = Alert(alert_type="all_clear", severity="info", message="nothing happened")
            forged_seq = tamper.append_forged_event(ledger.data_dir, forged.to_json_dict())
            time.sleep(1.0)  # fifty polls of the ledger
            assert forwarder.status.head == forged_seq, "the head moved without a signature"
            assert forwarder.status.state == "running"
    finally:
        webhook.stop()
    received = {e["eventId"] for e in webhook.events}
    assert len(received) == forged_seq
    assert forged.event_id not in received


def test_filters_send_only_the_chosen_types_and_risks_but_every_checkpoint(tmp_path, open_ledger):
    from trailguard.events import Alert

    webhook = WebhookReceiver(FAKE_WEBHOOK_KEY)
    webhook.start()
    try:
        ledger = open_ledger()
        ledger.append_many(
            [
                *sample_events(9),
                Alert(alert_type="a", severity="low", message="low"),
                Alert(alert_type="b", severity="critical", message="critical"),
            ]
        )
        ledger.checkpoint()
        config = parse_sink_url(
            webhook_url(
                tmp_path, webhook, FAKE_WEBHOOK_KEY, "&types=alert,checkpoint&min_risk=high"
            )
        )
        with forwarding(ledger, config) as (forwarder,):
            wait_until(lambda: caught_up(forwarder, ledger), what="caught up")
    finally:
        webhook.stop()
    kinds = [(e["eventType"], e.get("alertType")) for e in webhook.events]
    assert ("alert", "b") in kinds
    assert ("alert", "a") not in kinds
    assert {k for k, _ in kinds} == {"alert", "checkpoint"}
    assert forwarder.status.cursor == ledger.tree_size, "filtered events must still be passed"


# -- secrets: never in logs, the ledger or the cursor file ---------------------------------------


def test_sink_secrets_never_reach_logs_the_ledger_or_the_cursor_file(
    tmp_path, open_ledger, caplog, monkeypatch
):
    monkeypatch.setattr("trailguard.siem.forwarder.REFUSALS_BEFORE_PAUSE", 2)
    hec = HecReceiver("the-token-the-receiver-wants")
    hec.echo_token = True  # a hostile receiver quotes our Authorization header back
    hec.start()
    try:
        ledger = open_ledger()
        ledger.append_many(sample_events(5))
        token_file = secret_file(tmp_path, "hec.token", FAKE_HEC_TOKEN.encode())
        url = f"splunk-hec+http://127.0.0.1:{hec.port}?token_file={token_file}&max_backoff=0.1"
        config = parse_sink_url(url)
        assert FAKE_HEC_TOKEN not in repr(config)
        with caplog.at_level("DEBUG"), forwarding(ledger, config) as (forwarder,):
            wait_until(lambda: forwarder.status.state == "paused", what="the sink to pause")
            wait_until(lambda: alerts(ledger.data_dir, "sink_paused"), what="the alert")
    finally:
        hec.stop()
    assert "[REDACTED:sink-secret]" in (forwarder.status.last_error or "")
    stored = b"".join(
        bytes(row.body) for row in SQLiteStore.in_data_dir(ledger.data_dir, read_only=True).rows()
    )
    assert FAKE_HEC_TOKEN.encode() not in stored
    assert FAKE_HEC_TOKEN not in caplog.text
    assert FAKE_HEC_TOKEN.encode() not in (ledger.data_dir / "sinks.sqlite3").read_bytes()
    for wal in ledger.data_dir.glob("sinks.sqlite3*"):
        assert FAKE_HEC_TOKEN.encode() not in wal.read_bytes()


# -- the SIEM's copy of a checkpoint is a trusted checkpoint ------------------------------------


def test_a_checkpoint_copied_from_each_sink_catches_a_truncation(
    tmp_path, open_ledger, rsyslog, certificates
):
    from typer.testing import CliRunner

    import tamper
    from trailguard.cli import app

    webhook = WebhookReceiver(FAKE_WEBHOOK_KEY)
    webhook.start()
    try:
        ledger = open_ledger()
        for _ in range(4):
            ledger.append_many(sample_events(40))
            ledger.checkpoint()
        configs = [
            parse_sink_url(
                f"syslog+tls://127.0.0.1:{rsyslog.port}?ca={certificates.ca}&format=cef"
            ),
            parse_sink_url(
                f"syslog+tls://127.0.0.1:{rsyslog.port}?ca={certificates.ca}&format=json&name=j"
            ),
            parse_sink_url(webhook_url(tmp_path, webhook, FAKE_WEBHOOK_KEY, "&format=ocsf")),
        ]
        with forwarding(ledger, *configs) as forwarders:
            wait_until(lambda: all(caught_up(f, ledger) for f in forwarders), what="caught up")
            wait_until(lambda: len(rsyslog.lines()) >= 2 * ledger.tree_size, what="rsyslog")
        ledger.close()
    finally:
        webhook.stop()
    last = max(
        e["metadata"]["sequence"]
        for e in webhook.events
        if e["class_uid"] == 0 and e["unmapped"]["eventType"] == "checkpoint"
    )
    lines = rsyslog.log.read_text().splitlines()
    copies = {
        "rsyslog CEF line": next(line for line in reversed(lines) if "cs6=" in line),
        "rsyslog JSON line": next(
            line for line in reversed(lines) if '"eventType":"checkpoint"' in line
        ),
        "webhook OCSF event": json.dumps(
            next(e for e in webhook.events if e["metadata"]["sequence"] == last), indent=2
        ),
    }
    runner = CliRunner()
    key = str(ledger.data_dir / "signing.pub")
    for name, text in copies.items():
        pasted = tmp_path / f"{name.replace(' ', '-')}.txt"
        pasted.write_text(text)
        result = runner.invoke(
            app,
            [
                "verify",
                "--data-dir",
                str(ledger.data_dir),
                "--key",
                key,
                "--trusted-checkpoint",
                str(pasted),
                "--format",
                "json",
            ],
        )
        assert result.exit_code == 0, (name, result.output[-2000:])
    tamper.truncate_to_checkpoint(ledger.data_dir, 100)
    for name in copies:
        pasted = tmp_path / f"{name.replace(' ', '-')}.txt"
        result = runner.invoke(
            app,
            [
                "verify",
                "--data-dir",
                str(ledger.data_dir),
                "--key",
                key,
                "--trusted-checkpoint",
                str(pasted),
                "--format",
                "json",
            ],
        )
        assert result.exit_code == 1, name
        assert "the ledger is shorter than a checkpoint it once signed" in result.output, name


def test_text_without_a_checkpoint_is_refused_clearly(tmp_path, open_ledger):
    from typer.testing import CliRunner

    from trailguard.cli import app

    ledger = open_ledger()
    ledger.close()
    pasted = tmp_path / "not-a-checkpoint.txt"
    pasted.write_text('trailguard tool_invocation 12 2026-01-01T00:00:00Z {"eventId": "x"}')
    result = CliRunner().invoke(
        app, ["verify", "--data-dir", str(ledger.data_dir), "--trusted-checkpoint", str(pasted)]
    )
    assert result.exit_code == 2
    assert "no signed checkpoint found" in result.output


def test_an_event_that_cannot_be_formatted_pauses_the_sink_at_it_never_skips_it(
    tmp_path, open_ledger, monkeypatch
):
    from trailguard.events import Prompt
    from trailguard.siem import formats

    def to_ocsf(doc):
        if doc.get("prompt") == "poison":
            raise ValueError("cannot map this")
        return {"seq": doc["seq"], "eventId": doc["eventId"]}

    monkeypatch.setattr(formats, "to_ocsf", to_ocsf)
    webhook = WebhookReceiver(FAKE_WEBHOOK_KEY)
    webhook.start()
    try:
        ledger = open_ledger()
        ledger.append_many(sample_events(5))
        poison = ledger.append(Prompt(prompt="poison")).seq
        ledger.append_many(sample_events(5))
        config = parse_sink_url(
            webhook_url(tmp_path, webhook, FAKE_WEBHOOK_KEY, "&format=ocsf&batch_size=1")
        )
        with forwarding(ledger, config) as (forwarder,):
            wait_until(lambda: forwarder.status.state == "paused", what="the sink to pause")
            assert forwarder.status.cursor == poison
            wait_until(lambda: alerts(ledger.data_dir, "sink_paused"), what="the alert")
    finally:
        webhook.stop()
    assert [e["seq"] for e in webhook.events] == list(range(poison))
    (alert,) = alerts(ledger.data_dir, "sink_paused")
    assert f"internal error at seq {poison}: ValueError: cannot map this" in alert["message"]
