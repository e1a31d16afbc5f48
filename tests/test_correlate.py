"""CloudTrail records and application logs joined to the session and the tool call that caused
them: `trailguard correlate`, `POST /v1/correlate/...`, and what a hostile importer can do.

Sessions are made by the real gateway app from Claude Code hook payloads; the CloudTrail
records are written by a test double for AWS in the documented format (tests/cloudtrail_records.py).
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from cloudtrail_records import (
    ROLE_ARN,
    FakeCloudTrailSigner,
    cli_user_agent,
    log_file_bytes,
    log_key,
    management_event,
    s3_object_event,
    write_delivery_tree,
)
from conftest import verify_dir
from correlate_helpers import of_type, recorded_sessions, stored
from trailguard.cli import app as cli_app
from trailguard.store.gateway_state import GatewayState

runner = CliRunner()
gateway = pytest.fixture(recorded_sessions, name="gateway")
SESSION = "0193f1c2-7a4e-7c1d-9f00-00000000c7a1"
OTHER_SESSION = "0193f1c2-7a4e-7c1d-9f00-00000000c7a2"
COPY = "aws s3 cp config.json s3://prod-config/app/config.json --profile prod"


def correlate_cli(*args: str) -> Any:
    return runner.invoke(cli_app, ["correlate", *args], catch_exceptions=False)


def api_file(name: str, raw: bytes, **extra: Any) -> dict[str, Any]:
    return {"name": name, "content": base64.b64encode(raw).decode(), **extra}


# -- the whole join, from a delivery tree ---------------------------------------------------------


def test_a_delivery_tree_is_joined_to_sessions_and_the_tool_calls_that_caused_them(
    gateway, tmp_path
):
    gateway.start(SESSION)
    gateway.start(OTHER_SESSION, "alex")
    echo = gateway.bash(SESSION, "echo preparing")
    copy = gateway.bash(SESSION, COPY)
    other = gateway.bash(OTHER_SESSION, "aws s3 rm s3://scratch/tmp.txt", "alex")
    at = copy.started + timedelta(milliseconds=400)
    ours = s3_object_event(
        "PutObject",
        at=at,
        bucket="prod-config",
        key="app/config.json",
        user_agent=cli_user_agent(SESSION),
    )
    theirs = s3_object_event(
        "DeleteObject",
        at=other.started,
        bucket="scratch",
        key="tmp.txt",
        user_agent=cli_user_agent(OTHER_SESSION, "s3.rm"),
    )
    untagged = s3_object_event(
        "GetObject", at=at, bucket="prod-config", key="app/config.json",
        user_agent=cli_user_agent(None),
    )  # fmt: skip
    console = management_event(
        "ec2.amazonaws.com", "DescribeInstances", at=at, user_agent="console.amazonaws.com",
        read_only=True,
    )  # fmt: skip
    write_delivery_tree(tmp_path / "trail", [[untagged, ours], [console, theirs]], at)
    gateway.stop()

    result = correlate_cli(
        "cloudtrail", str(tmp_path / "trail"), "--data-dir", str(gateway.data_dir)
    )
    assert result.exit_code == 0, result.output
    assert "2 file(s), 4 CloudTrail records: 2 joined to sessions (2 new" in result.output
    assert "2 name no trailguard session" in result.output

    events = stored(gateway.data_dir)
    records = {e["recordId"]: e for e in of_type(events, "downstream_record")}
    assert set(records) == {ours["eventID"], theirs["eventID"]}
    put = records[ours["eventID"]]
    assert put["sessionId"] == SESSION
    assert put["developerId"] == "dev_jordan"  # the session's, not the file's
    assert put["toolUseId"] == copy.tool_use_id
    assert put["toolUseId"] != echo.tool_use_id
    assert put["match"] == "exact"
    assert put["action"] == "s3:PutObject"
    assert put["name"] == "PutObject"
    assert put["service"] == "s3.amazonaws.com"
    assert put["resources"][0] == "arn:aws:s3:::prod-config/app/config.json"
    assert put["principal"] == ROLE_ARN
    assert put["sourceIp"] == "192.0.2.10"
    assert put["region"] == "us-east-1"
    assert put["recordTime"] == at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert put["authenticity"] == "unverified"
    assert put["sessionClaim"] == f"userAgent app/trailguard-{SESSION}"
    assert put["importedBy"].startswith("os:")
    assert put["importedFrom"].endswith("#Records[1]")
    assert put["details"]["requestParameters"]["key"] == "app/config.json"
    delete = records[theirs["eventID"]]
    assert delete["sessionId"] == OTHER_SESSION
    assert delete["developerId"] == "dev_alex"
    assert delete["toolUseId"] == other.tool_use_id
    assert delete["match"] == "exact"
    assert not of_type(events, "alert") or all(
        a["alertType"] != "unexplained_activity" for a in of_type(events, "alert")
    )
    assert verify_dir(gateway.data_dir).intact


def test_importing_the_same_files_twice_records_each_record_once(gateway, tmp_path):
    gateway.start(SESSION)
    copy = gateway.bash(SESSION, COPY)
    record = s3_object_event(
        "PutObject", at=copy.started, bucket="prod-config", key="app/config.json",
        user_agent=cli_user_agent(SESSION),
    )  # fmt: skip
    tree = tmp_path / "trail"
    write_delivery_tree(tree, [[record]], copy.started)
    # The same record delivered twice (CloudTrail may), in a second file of the tree:
    write_delivery_tree(tree, [[record]], copy.started + timedelta(minutes=20))
    gateway.stop()
    first = correlate_cli(
        "cloudtrail", str(tree), "--data-dir", str(gateway.data_dir), "--format", "json"
    )
    second = correlate_cli(
        "cloudtrail", str(tree), "--data-dir", str(gateway.data_dir), "--format", "json"
    )
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert json.loads(first.output)["appended"] == 1
    assert json.loads(second.output)["appended"] == 0
    assert json.loads(second.output)["alreadyRecorded"] == 1
    assert len(of_type(stored(gateway.data_dir), "downstream_record")) == 1


# -- unexplained activity -------------------------------------------------------------------------


def test_an_aws_action_no_tool_call_explains_is_an_unexplained_activity_alert(gateway, tmp_path):
    gateway.start(SESSION)
    script = gateway.bash(SESSION, "python3 deploy.py")  # the classifier sees no AWS call
    idle_at = script.ended + timedelta(seconds=30)
    time.sleep(1.1)  # CloudTrail's whole seconds cannot tell apart calls in the same second
    gateway.bash(SESSION, "echo later")  # a later call: the session is still open at idle_at
    during = management_event(
        "iam.amazonaws.com", "CreateAccessKey", at=script.started,
        user_agent=f"Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 app/trailguard-{SESSION}",
        request={"userName": "ci-deployer"},
        response={"accessKey": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "status": "Active",
                                "userName": "ci-deployer", "createDate": "Apr 15, 2026"}},
    )  # fmt: skip
    between = s3_object_event(
        "DeleteObject", at=idle_at, bucket="prod-config", key="app/config.json",
        user_agent=cli_user_agent(SESSION, "s3.rm"),
    )  # fmt: skip
    path = tmp_path / "records.json"
    path.write_bytes(log_file_bytes([during, between])[0])
    gateway.stop()
    result = correlate_cli("cloudtrail", str(path), "--data-dir", str(gateway.data_dir))
    assert result.exit_code == 0, result.output
    assert "2 unexplained (alerted)" in result.output
    events = stored(gateway.data_dir)
    records = {e["recordId"]: e for e in of_type(events, "downstream_record")}
    assert records[during["eventID"]]["match"] == "time"
    assert records[during["eventID"]]["toolUseId"] == script.tool_use_id
    assert records[between["eventID"]]["match"] == "none"
    assert records[between["eventID"]]["toolUseId"] is None
    alerts = {
        a["details"]["recordId"]: a
        for a in of_type(events, "alert")
        if a["alertType"] == "unexplained_activity"
    }
    assert set(alerts) == {during["eventID"], between["eventID"]}
    assert alerts[during["eventID"]]["severity"] == "high"  # an IAM change (admin)
    assert alerts[during["eventID"]]["sessionId"] == SESSION
    assert alerts[during["eventID"]]["details"]["nearestToolUseId"] == script.tool_use_id
    assert alerts[between["eventID"]]["severity"] == "high"  # a delete outside any call
    assert "iam:CreateAccessKey" in alerts[during["eventID"]]["message"]


def test_an_action_that_was_denied_but_happened_anyway_is_a_critical_alert(gateway, tmp_path):
    gateway.start(SESSION)
    denied = gateway.bash(SESSION, "aws --profile prod s3 rm s3://audit-logs --recursive")
    invocation = next(
        e for e in of_type(stored(gateway.data_dir), "tool_invocation")
        if e["toolUseId"] == denied.tool_use_id
    )  # fmt: skip
    assert invocation["policyResult"] == "denied"
    later = denied.started + timedelta(seconds=20)
    record = s3_object_event(
        "DeleteObject", at=later, bucket="audit-logs", key="2026/04/15/app.log",
        user_agent=cli_user_agent(SESSION, "s3.rm"),
    )  # fmt: skip
    path = tmp_path / "records.json"
    path.write_bytes(log_file_bytes([record])[0])
    gateway.stop()
    assert (
        correlate_cli("cloudtrail", str(path), "--data-dir", str(gateway.data_dir)).exit_code == 0
    )
    (alert,) = [a for a in of_type(stored(gateway.data_dir), "alert")
                if a["alertType"] == "unexplained_activity"]  # fmt: skip
    assert alert["severity"] == "critical"
    assert alert["details"]["deniedToolUseId"] == denied.tool_use_id
    assert "was denied" in alert["message"]


# -- a hostile importer ---------------------------------------------------------------------------


def test_a_forged_record_cannot_displace_the_genuine_one_with_the_same_event_id(gateway, tmp_path):
    """The attack: import a forged copy of a record first (same eventID, different content), so
    that the genuine record would later be dropped as 'already recorded'."""
    gateway.start(SESSION)
    copy = gateway.bash(SESSION, COPY)
    genuine = s3_object_event(
        "PutObject", at=copy.started, bucket="prod-config", key="app/config.json",
        user_agent=cli_user_agent(SESSION),
    )  # fmt: skip
    forged = json.loads(json.dumps(genuine))
    forged["sourceIPAddress"] = "198.51.100.66"
    forged["requestParameters"]["key"] = "app/harmless.txt"
    (tmp_path / "forged.json").write_bytes(log_file_bytes([forged])[0])
    (tmp_path / "genuine.json").write_bytes(log_file_bytes([genuine])[0])
    gateway.stop()
    data = str(gateway.data_dir)
    assert (
        correlate_cli("cloudtrail", str(tmp_path / "forged.json"), "--data-dir", data).exit_code
        == 0
    )
    result = correlate_cli("cloudtrail", str(tmp_path / "genuine.json"), "--data-dir", data)
    assert result.exit_code == 0, result.output
    assert "claimed by two different records" in result.output
    events = stored(gateway.data_dir)
    records = [
        e for e in of_type(events, "downstream_record") if e["recordId"] == genuine["eventID"]
    ]
    assert sorted(r["sourceIp"] for r in records) == ["192.0.2.10", "198.51.100.66"]
    assert len({r["eventId"] for r in records}) == 2
    (conflict,) = [a for a in of_type(events, "alert") if a["alertType"] == "conflicting_record"]
    assert conflict["severity"] == "high"
    assert conflict["details"]["recordId"] == genuine["eventID"]
    assert conflict["sessionId"] == SESSION


def test_a_record_made_under_another_aws_identity_than_the_sessions_is_flagged(gateway, tmp_path):
    """The attack: another developer sets AWS_SDK_UA_APP_ID=trailguard-<a victim's session> on
    their own AWS calls, so that the organisation's (genuine) trail seems to put them in the
    victim's session."""
    gateway.start(SESSION)
    copy = gateway.bash(SESSION, COPY)
    genuine = s3_object_event(
        "PutObject", at=copy.started, bucket="prod-config", key="app/config.json",
        user_agent=cli_user_agent(SESSION),
    )  # fmt: skip
    framed = management_event(
        "s3.amazonaws.com", "DeleteBucket", at=copy.ended + timedelta(seconds=40),
        user_agent=cli_user_agent(SESSION, "s3.rb"), request={"bucketName": "prod-backups"},
    )  # fmt: skip
    framed["userIdentity"] = {"type": "IAMUser", "principalId": "AIDAJQABLZS4A3QDU576Q",
                              "arn": "arn:aws:iam::111122223333:user/mallory",
                              "accountId": "111122223333", "userName": "mallory"}  # fmt: skip
    path = tmp_path / "org-trail.json"
    path.write_bytes(log_file_bytes([genuine, framed])[0])
    gateway.stop()
    assert (
        correlate_cli("cloudtrail", str(path), "--data-dir", str(gateway.data_dir)).exit_code == 0
    )
    events = stored(gateway.data_dir)
    (alert,) = [a for a in of_type(events, "alert") if a["alertType"] == "unexplained_activity"]
    assert alert["details"]["recordId"] == framed["eventID"]
    assert alert["details"]["foreignPrincipal"] is True
    assert "made by arn:aws:iam::111122223333:user/mallory, not by the identity" in alert["message"]
    assert ROLE_ARN in alert["message"]


def test_records_naming_sessions_the_ledger_does_not_know_are_skipped_and_reported(
    gateway, tmp_path
):
    gateway.start(SESSION)
    gateway.stop()
    ghost = "0193f1c2-dead-7c1d-9f00-00000000beef"
    record = s3_object_event(
        "PutObject", at=datetime.now(UTC), bucket="b", key="k", user_agent=cli_user_agent(ghost)
    )
    two = s3_object_event(
        "PutObject", at=datetime.now(UTC), bucket="b", key="k2",
        user_agent=cli_user_agent(SESSION) + f" app/trailguard-{ghost}",
    )  # fmt: skip
    path = tmp_path / "records.json"
    path.write_bytes(log_file_bytes([record, two])[0])
    result = correlate_cli("cloudtrail", str(path), "--data-dir", str(gateway.data_dir))
    assert result.exit_code == 1  # the record naming two sessions was skipped, and said so
    assert f"sessions not in this ledger: {ghost} (1)" in result.output
    assert "names 2 trailguard sessions" in result.output
    events = stored(gateway.data_dir)
    assert not of_type(events, "downstream_record")
    assert not [e for e in events if e.get("sessionId") == ghost]


def test_secrets_in_a_record_are_redacted_before_they_are_stored(gateway, tmp_path):
    gateway.start(SESSION)
    call = gateway.bash(
        SESSION, "aws ssm put-parameter --name /app/token --type SecureString --value x"
    )
    leaked = "ghp_" + "Fake1234567890abcdefghijklmnopqrstuvwxyzAB"
    record = management_event(
        "ssm.amazonaws.com", "PutParameter", at=call.started,
        user_agent=cli_user_agent(SESSION, "ssm.put-parameter"),
        request={"name": "/app/token", "type": "SecureString",
                 "value": "HIDDEN_DUE_TO_SECURITY_REASONS",
                 "description": f"rotated token {leaked}"},
        response={"version": 2, "tier": "Standard"},
    )  # fmt: skip
    path = tmp_path / "records.json.gz"
    path.write_bytes(log_file_bytes([record])[1])
    gateway.stop()
    assert (
        correlate_cli("cloudtrail", str(path), "--data-dir", str(gateway.data_dir)).exit_code == 0
    )
    raw = (gateway.data_dir / "ledger.sqlite3").read_bytes()
    assert leaked.encode() not in raw
    (stored_record,) = of_type(stored(gateway.data_dir), "downstream_record")
    assert "[REDACTED:" in stored_record["details"]["requestParameters"]["description"]
    assert stored_record["match"] == "exact"  # ssm:PutParameter on /app/token


def test_a_gzip_bomb_is_refused_without_inflating_it_and_other_files_are_still_imported(
    gateway, tmp_path
):
    gateway.start(SESSION)
    copy = gateway.bash(SESSION, COPY)
    gateway.stop()
    tree = tmp_path / "trail"
    (good,) = write_delivery_tree(
        tree,
        [[s3_object_event("PutObject", at=copy.started, bucket="prod-config",
                          key="app/config.json", user_agent=cli_user_agent(SESSION))]],
        copy.started,
    )  # fmt: skip
    bomb = good.with_name(
        "111122223333_CloudTrail_us-east-1_20260415T1500Z_B0MB0MB0MB0MB0MB.json.gz"
    )
    with gzip.open(bomb, "wb", compresslevel=9) as stream:
        chunk = b'{"Records":[' + b" " * (1024 * 1024)
        for _ in range(80):  # 80 MiB of JSON whitespace: over the 64 MiB limit, ~80 KiB on disk
            stream.write(chunk)
    assert bomb.stat().st_size < 1024 * 1024
    result = correlate_cli("cloudtrail", str(tree), "--data-dir", str(gateway.data_dir))
    assert result.exit_code == 1
    assert "inflates to more than" in result.output
    assert len(of_type(stored(gateway.data_dir), "downstream_record")) == 1


def test_lookup_events_output_is_read_like_a_delivered_log_file(gateway, tmp_path):
    gateway.start(SESSION)
    call = gateway.bash(SESSION, "aws sts get-caller-identity")
    record = management_event(
        "sts.amazonaws.com", "GetCallerIdentity", at=call.started, read_only=True,
        user_agent=cli_user_agent(SESSION, "sts.get-caller-identity"),
    )  # fmt: skip
    lookup = {
        "Events": [
            {
                "EventId": record["eventID"],
                "EventName": "GetCallerIdentity",
                "ReadOnly": "true",
                "AccessKeyId": "ASIAIOSFODNN7EXAMPLE",
                "EventTime": "2026-04-15T14:32:07+00:00",
                "EventSource": "sts.amazonaws.com",
                "Username": "dev-jordan",
                "Resources": [],
                "CloudTrailEvent": json.dumps(record),
            }
        ]
    }
    path = tmp_path / "lookup-events.json"
    path.write_text(json.dumps(lookup))
    gateway.stop()
    assert (
        correlate_cli("cloudtrail", str(path), "--data-dir", str(gateway.data_dir)).exit_code == 0
    )
    (joined,) = of_type(stored(gateway.data_dir), "downstream_record")
    assert joined["recordId"] == record["eventID"]
    assert joined["toolUseId"] == call.tool_use_id
    assert joined["match"] == "action"  # sts:GetCallerIdentity names no resource


def test_a_file_that_is_not_cloudtrail_is_a_clear_error_and_nothing_is_recorded(gateway, tmp_path):
    gateway.start(SESSION)
    gateway.stop()
    before = len(stored(gateway.data_dir))
    path = tmp_path / "notes.json"
    path.write_text('{"hello": "world"}')
    result = correlate_cli("cloudtrail", str(path), "--data-dir", str(gateway.data_dir))
    assert result.exit_code == 1
    assert "JSON but not CloudTrail" in result.output
    missing = correlate_cli(
        "cloudtrail", str(tmp_path / "nope"), "--data-dir", str(gateway.data_dir)
    )
    assert missing.exit_code == 2
    assert "no such file or directory" in missing.output
    # only the import's own start and stop (and their checkpoint) were added
    added = stored(gateway.data_dir)[before:]
    assert {e["eventType"] for e in added} <= {"gateway_start", "gateway_stop", "checkpoint"}


# -- through the gateway's API --------------------------------------------------------------------


def test_an_agent_token_cannot_attach_records_to_another_developers_session(gateway):
    gateway.start(SESSION)  # dev_jordan's
    gateway.start(OTHER_SESSION, "alex")
    mine = gateway.bash(OTHER_SESSION, "aws s3 cp notes.txt s3://alex-scratch/notes.txt", "alex")
    framed = s3_object_event(
        "DeleteObject", at=datetime.now(UTC), bucket="prod-config", key="app/config.json",
        user_agent=cli_user_agent(SESSION, "s3.rm"),
    )  # fmt: skip
    own = s3_object_event(
        "PutObject", at=mine.started, bucket="alex-scratch", key="notes.txt",
        user_agent=cli_user_agent(OTHER_SESSION),
    )  # fmt: skip
    raw = log_file_bytes([framed, own])[1]
    response = gateway.correlate("cloudtrail", {"files": [api_file("trail.json.gz", raw)]}, "alex")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["refusedSessions"] == {SESSION: 1}
    assert report["appended"] == 1
    events = stored(gateway.data_dir)
    assert [e["sessionId"] for e in of_type(events, "downstream_record")] == [OTHER_SESSION]
    (hijack,) = [a for a in of_type(events, "alert") if a["alertType"] == "session_hijack"]
    assert hijack["developerId"] == "dev_alex"
    assert hijack["details"]["targetSessionIds"] == [SESSION]
    assert hijack.get("sessionId") is None  # recorded under the refused token, not in the session
    (record,) = of_type(events, "downstream_record")
    assert record["importedBy"].startswith("dev_alex (token tok_")


def test_an_admin_token_imports_any_sessions_records_and_an_auditor_token_cannot(gateway):
    gateway.start(SESSION)
    copy = gateway.bash(SESSION, COPY)
    record = s3_object_event(
        "PutObject", at=copy.started, bucket="prod-config", key="app/config.json",
        user_agent=cli_user_agent(SESSION),
    )  # fmt: skip
    body = {"files": [api_file("trail.json", log_file_bytes([record])[0])]}
    refused = gateway.correlate("cloudtrail", body, "auditor")
    assert refused.status_code == 403
    assert not of_type(stored(gateway.data_dir), "downstream_record")
    accepted = gateway.correlate("cloudtrail", body, "admin")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["matches"] == {"exact": 1}
    (joined,) = of_type(stored(gateway.data_dir), "downstream_record")
    assert joined["toolUseId"] == copy.tool_use_id
    assert joined["importedBy"].startswith("ops_kim (token ")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"files": []}, "files"),
        ({"files": [{"name": "x", "content": "%%%"}]}, "files.0.content"),
        ({"files": [{"name": "x", "content": "e30="}], "clockSkewSeconds": -1}, "clockSkewSeconds"),
        ({"files": [{"name": "x", "content": "e30="}], "since": "yesterday"}, "since"),
        ({"files": [{"name": "x", "content": "e30="}], "extra": 1}, "extra"),
    ],
)
def test_malformed_import_requests_are_a_4xx_naming_the_field(gateway, body, named):
    response = gateway.correlate("cloudtrail", body, "admin")
    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


def test_a_jsonl_import_without_a_session_field_is_refused(gateway):
    body = {"files": [{"name": "app.log", "content": "e30="}]}
    response = gateway.correlate("jsonl", body, "admin")
    assert response.status_code == 400
    assert "fields.session" in response.json()["detail"]


# -- CloudTrail's signed digests ------------------------------------------------------------------


def test_records_covered_by_a_signed_digest_are_digest_verified_and_a_forged_file_is_not(
    gateway, tmp_path
):
    gateway.start(SESSION)
    copy = gateway.bash(SESSION, COPY)
    gateway.stop()
    signer = FakeCloudTrailSigner()  # stands in for AWS, which signs with its own key
    keys = tmp_path / "public-keys.json"
    keys.write_text(signer.public_keys_json())
    pinned = runner.invoke(
        cli_app, ["correlate", "trust-keys", str(keys), "--data-dir", str(gateway.data_dir)]
    )
    assert pinned.exit_code == 0, pinned.output

    genuine = s3_object_event(
        "PutObject", at=copy.started, bucket="prod-config", key="app/config.json",
        user_agent=cli_user_agent(SESSION),
    )  # fmt: skip
    forged = s3_object_event(
        "GetObject", at=copy.started, bucket="prod-config", key="app/secrets.json",
        user_agent=cli_user_agent(SESSION),
    )  # fmt: skip
    tree = tmp_path / "trail"
    genuine_key, forged_key = log_key(copy.started), log_key(copy.started + timedelta(minutes=5))
    genuine_plain, genuine_gz = log_file_bytes([genuine])
    (tree / genuine_key).parent.mkdir(parents=True)
    (tree / genuine_key).write_bytes(genuine_gz)
    (tree / forged_key).write_bytes(log_file_bytes([forged])[1])
    # Two hourly digests: the first's signature is carried by the second (offline validation);
    # the second, newest one has its signature only in S3 metadata, which a local copy lacks.
    end = copy.started + timedelta(minutes=30)
    first_key, first, first_signature = signer.digest_for(
        "trail-bucket", [(genuine_key, genuine_plain)], end
    )
    second_key, second, _ = signer.digest_for(
        "trail-bucket", [], end + timedelta(hours=1), previous=(first_key, first_signature)
    )
    for key, content in ((first_key, first), (second_key, second)):
        (tree / key).parent.mkdir(parents=True, exist_ok=True)
        (tree / key).write_bytes(content)

    result = correlate_cli("cloudtrail", str(tree), "--data-dir", str(gateway.data_dir))
    assert "1 verified by a CloudTrail digest" in result.output, result.output
    assert "no signature to check" in result.output  # the newest digest, honestly reported
    events = stored(gateway.data_dir)
    records = {e["recordId"]: e for e in of_type(events, "downstream_record")}
    assert records[genuine["eventID"]]["authenticity"] == "digest_verified"
    assert records[forged["eventID"]]["authenticity"] == "unverified"
    # Pinning keys is part of the record: queued for the ledger's writer (none runs now).
    state = GatewayState(gateway.data_dir)
    try:
        queued = [json.loads(document) for _, document in state.pending_events()]
    finally:
        state.close()
    (pinning,) = [e for e in queued if e.get("alertType") == "cloudtrail_keys_pinned"]
    assert pinning["details"]["fingerprints"] == [signer.fingerprint]


def test_a_digest_whose_signature_does_not_check_verifies_nothing(gateway, tmp_path):
    gateway.start(SESSION)
    copy = gateway.bash(SESSION, COPY)
    gateway.stop()
    signer, impostor = FakeCloudTrailSigner(), FakeCloudTrailSigner()
    keys = tmp_path / "public-keys.json"
    keys.write_text(signer.public_keys_json())
    assert (
        runner.invoke(
            cli_app, ["correlate", "trust-keys", str(keys), "--data-dir", str(gateway.data_dir)]
        ).exit_code
        == 0
    )
    record = s3_object_event(
        "PutObject", at=copy.started, bucket="prod-config", key="app/config.json",
        user_agent=cli_user_agent(SESSION),
    )  # fmt: skip
    plain, gz = log_file_bytes([record])
    key = log_key(copy.started)
    # The forger writes a digest that lists the file and names the pinned key's fingerprint,
    # but can only sign it with a key of its own.
    impostor.fingerprint = signer.fingerprint
    end = copy.started + timedelta(minutes=30)
    first_key, first, first_signature = impostor.digest_for("trail-bucket", [(key, plain)], end)
    second_key, second, _ = impostor.digest_for(
        "trail-bucket", [], end + timedelta(hours=1), previous=(first_key, first_signature)
    )
    tree = tmp_path / "trail"
    for name, content in ((key, gz), (first_key, first), (second_key, second)):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(content)
    result = correlate_cli("cloudtrail", str(tree), "--data-dir", str(gateway.data_dir))
    assert result.exit_code == 1
    assert "INVALID signature" in result.output
    (joined,) = of_type(stored(gateway.data_dir), "downstream_record")
    assert joined["authenticity"] == "unverified"


# -- application logs -----------------------------------------------------------------------------


def test_application_log_entries_join_the_tool_call_running_at_their_time(gateway, tmp_path):
    gateway.start(SESSION)
    curl = gateway.bash(SESSION, "curl -s http://127.0.0.1:8000/api/orders -d @order.json")
    gateway.stop()
    during = curl.started + (curl.ended - curl.started) / 2
    lines = [
        {"ts": during.isoformat(), "level": "info", "event": "order.created", "order_id": 42,
         "ctx": {"trailguard_session": SESSION}, "db_password": "hunter2-fake"},
        {"ts": during.isoformat(), "level": "info", "event": "healthcheck"},  # no session
        {"ts": (curl.ended + timedelta(minutes=3)).timestamp(), "event": "cron.tick",
         "ctx": {"trailguard_session": SESSION}},
    ]  # fmt: skip
    log = tmp_path / "app.jsonl"
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    result = correlate_cli(
        "jsonl", str(log), "--session-field", "ctx.trailguard_session", "--time-field", "ts",
        "--app", "orders-api", "--data-dir", str(gateway.data_dir),
    )  # fmt: skip
    assert result.exit_code == 1  # the line that is not JSON was skipped, and named
    assert "app.jsonl:4: not JSON" in result.output
    assert "2 joined to sessions" in result.output
    records = of_type(stored(gateway.data_dir), "downstream_record")
    by_name = {r["name"]: r for r in records}
    assert set(by_name) == {"order.created", "cron.tick"}
    created = by_name["order.created"]
    assert created["system"] == "application"
    assert created["service"] == "orders-api"
    assert created["toolUseId"] == curl.tool_use_id
    assert created["match"] == "time"
    assert created["sessionClaim"] == "field ctx.trailguard_session"
    assert created["details"]["db_password"].startswith("[REDACTED:")
    assert by_name["cron.tick"]["match"] == "none"
    again = correlate_cli(
        "jsonl", str(log), "--session-field", "ctx.trailguard_session", "--time-field", "ts",
        "--data-dir", str(gateway.data_dir), "--app", "orders-api", "--format", "json",
    )  # fmt: skip
    assert json.loads(again.output)["appended"] == 0
    assert not [a for a in of_type(stored(gateway.data_dir), "alert")
                if a["alertType"] == "unexplained_activity"]  # fmt: skip


# -- the session timeline -------------------------------------------------------------------------


def test_sessions_show_lists_downstream_records_under_their_tool_call(gateway, tmp_path):
    gateway.start(SESSION)
    copy = gateway.bash(SESSION, COPY)
    gateway.stop()
    record = s3_object_event(
        "PutObject", at=copy.started + timedelta(milliseconds=600), bucket="prod-config",
        key="app/config.json", user_agent=cli_user_agent(SESSION), source_ip="10.1.2.3",
    )  # fmt: skip
    stray = management_event(
        "iam.amazonaws.com", "AttachUserPolicy", at=copy.ended + timedelta(minutes=2),
        user_agent=cli_user_agent(SESSION, "iam.attach-user-policy"),
        request={"userName": "dev-jordan",
                 "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
    )  # fmt: skip
    path = tmp_path / "records.json"
    path.write_bytes(log_file_bytes([record, stray])[0])
    assert (
        correlate_cli("cloudtrail", str(path), "--data-dir", str(gateway.data_dir)).exit_code == 0
    )
    shown = runner.invoke(
        cli_app, ["sessions", "show", SESSION, "--data-dir", str(gateway.data_dir)]
    )
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    call_line = next(i for i, line in enumerate(lines) if copy.tool_use_id in line)
    assert COPY in lines[call_line]
    assert (
        "CloudTrail PutObject on arn:aws:s3:::prod-config/app/config.json" in lines[call_line + 1]
    )
    assert f"by {ROLE_ARN} from 10.1.2.3 [exact, unverified]" in lines[call_line + 1]
    assert "2 CloudTrail record(s) (0 verified by a digest)" in shown.output
    assert "1 unexplained" in shown.output
    loose = lines.index("  not joined to any tool call:")
    assert "CloudTrail AttachUserPolicy" in lines[loose + 1]
    as_json = runner.invoke(
        cli_app,
        ["sessions", "show", SESSION, "--data-dir", str(gateway.data_dir), "--format", "json"],
    )
    downstream = json.loads(as_json.output)["downstream"]
    assert [(d["name"], d["toolUseId"]) for d in downstream] == [
        ("PutObject", copy.tool_use_id),
        ("AttachUserPolicy", None),
    ]
    listed = runner.invoke(
        cli_app,
        ["query", "--session", SESSION, "--type", "downstream_record", "--format", "csv",
         "--data-dir", str(gateway.data_dir)],
    )  # fmt: skip
    assert f"-> {copy.tool_use_id}" in listed.output


def test_an_import_in_several_batches_reports_each_problem_once_and_joins_every_file(
    gateway, tmp_path, monkeypatch
):
    import trailguard.cli.correlate as command

    monkeypatch.setattr(command, "MAX_REQUEST_BYTES", 1)  # one file per batch
    gateway.start(SESSION)
    copy = gateway.bash(SESSION, COPY)
    gateway.stop()
    signer = FakeCloudTrailSigner()
    keys = tmp_path / "public-keys.json"
    keys.write_text(signer.public_keys_json())
    data = str(gateway.data_dir)
    assert (
        runner.invoke(cli_app, ["correlate", "trust-keys", str(keys), "--data-dir", data]).exit_code
        == 0
    )
    records = [
        s3_object_event("PutObject", at=copy.started, bucket="prod-config",
                        key="app/config.json", user_agent=cli_user_agent(SESSION))
        for _ in range(3)
    ]  # fmt: skip
    tree = tmp_path / "trail"
    paths = write_delivery_tree(tree, [[record] for record in records], copy.started)
    key, digest, _ = signer.digest_for("trail-bucket", [], copy.started + timedelta(hours=1))
    (tree / key).parent.mkdir(parents=True)
    (tree / key).write_bytes(digest)  # the newest digest: no signature offline
    result = correlate_cli("cloudtrail", str(tree), "--data-dir", data, "--format", "json")
    report = json.loads(result.output)
    assert (report["files"], report["appended"]) == (len(paths), 3)
    assert sum("no signature to check" in problem for problem in report["problems"]) == 1
