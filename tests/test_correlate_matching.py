"""Joining one CloudTrail record to a tool call: the operations the classifier declared for real
commands against records in the documented format (pure functions, no ledger)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloudtrail_records import cli_user_agent, management_event, s3_list_event, s3_object_event
from trailguard.classify import classify_tool_call
from trailguard.correlate.cloudtrail import (
    CloudTrailRecord,
    LogFile,
    iam_actions,
    parse_log_file,
    session_ids_in_user_agent,
)
from trailguard.correlate.matching import Observed, SessionTimeline, ToolCall

SESSION = "0193f1c2-7a4e-7c1d-9f00-00000000c7a1"
START = datetime(2026, 4, 15, 14, 32, 7, 123000, tzinfo=UTC)


def call(command: str, *, tool_use_id: str = "toolu_a", started: datetime = START,
         seconds: float = 3.0, decision: str = "allowed") -> ToolCall:  # fmt: skip
    operations = classify_tool_call("Bash", {"command": command})
    return ToolCall(
        tool_use_id, "Bash", started, started + timedelta(seconds=seconds), decision,
        tuple(operations),
    )  # fmt: skip


def observed(raw: dict[str, Any]) -> Observed:
    (record,) = parse_log_file(LogFile.from_bytes("t", b'{"Records": [%s]}' % _json(raw)))
    assert isinstance(record, CloudTrailRecord)
    return Observed(
        time=datetime.strptime(record.event_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
        precision=timedelta(seconds=1),
        actions=record.iam_actions,
        access=record.access,
        resources=tuple(record.resources()),
        names=frozenset(record.request_names()),
    )


def _json(raw: dict[str, Any]) -> bytes:
    import json

    return json.dumps(raw).encode()


def join(calls: list[ToolCall], raw: dict[str, Any]) -> tuple[str, str | None, str]:
    match = SessionTimeline(calls).match(observed(raw))
    return match.level, match.tool_use_id, match.reason


UA = cli_user_agent(SESSION)
AT = START + timedelta(seconds=1)


def test_a_put_object_joins_the_aws_s3_cp_that_declared_it_exactly():
    cp = call("aws s3 cp config.json s3://prod-config/app/config.json --profile prod")
    level, joined, _ = join(
        [cp],
        s3_object_event("PutObject", at=AT, bucket="prod-config", key="app/config.json",
                        user_agent=UA),
    )  # fmt: skip
    assert (level, joined) == ("exact", "toolu_a")


@pytest.mark.parametrize("name", ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"])
def test_a_multipart_upload_is_the_put_object_the_cli_declared(name):
    cp = call("aws s3 cp build.tar s3://artifacts/releases/build.tar")
    record = s3_object_event(name, at=AT, bucket="artifacts", key="releases/build.tar",
                             user_agent=UA)  # fmt: skip
    assert join([cp], record)[:2] == ("exact", "toolu_a")


def test_sync_lists_the_bucket_it_writes_to_and_puts_objects_under_the_prefix():
    sync = call("aws s3 sync ./site s3://www-bucket/public")
    listing = s3_list_event(at=AT, bucket="www-bucket", user_agent=UA)
    put = s3_object_event("PutObject", at=AT, bucket="www-bucket", key="public/index.html",
                          user_agent=UA)  # fmt: skip
    assert join([sync], listing)[:2] == ("related", "toolu_a")
    assert join([sync], put)[:2] == ("exact", "toolu_a")


def test_the_declared_action_on_another_bucket_is_not_explained():
    cp = call("aws s3 cp config.json s3://staging-config/app/config.json")
    level, _, reason = join(
        [cp],
        s3_object_event("PutObject", at=AT, bucket="prod-config", key="app/config.json",
                        user_agent=UA),
    )  # fmt: skip
    assert level == "time"
    assert "declared s3:PutObject on arn:aws:s3:::staging-config/app/config.json" in reason


def test_assume_role_for_a_profile_is_the_credentials_of_the_call():
    describe = call("aws --profile prod ec2 describe-instances")
    record = management_event(
        "sts.amazonaws.com", "AssumeRole", at=AT, user_agent=UA,
        request={"roleArn": "arn:aws:iam::111122223333:role/prod-admin",
                 "roleSessionName": "botocore-session-1776263527"},
    )  # fmt: skip
    assert join([describe], record)[:2] == ("related", "toolu_a")


def test_identifiers_in_the_request_agree_with_what_the_command_named():
    terminate = call("aws ec2 terminate-instances --instance-ids i-0abcd1234efgh5678")
    record = management_event(
        "ec2.amazonaws.com", "TerminateInstances", at=AT, user_agent=UA,
        request={"instancesSet": {"items": [{"instanceId": "i-0abcd1234efgh5678"}]}},
    )  # fmt: skip
    assert join([terminate], record)[:2] == ("exact", "toolu_a")
    update = call("aws lambda update-function-code --function-name orders --zip-file fileb://f.zip")
    versioned = management_event(
        "lambda.amazonaws.com", "UpdateFunctionCode20150331v2", at=AT, user_agent=UA,
        request={"functionName": "orders", "publish": False},
    )  # fmt: skip
    assert join([update], versioned)[:2] == ("exact", "toolu_a")


def test_of_two_calls_the_one_whose_operations_explain_the_record_wins():
    echo = call("echo working", tool_use_id="toolu_echo", seconds=5)
    rm = call("aws s3 rm s3://scratch/tmp.txt", tool_use_id="toolu_rm",
              started=START + timedelta(seconds=1))  # fmt: skip
    record = s3_object_event("DeleteObject", at=AT + timedelta(seconds=1), bucket="scratch",
                             key="tmp.txt", user_agent=UA)  # fmt: skip
    match = SessionTimeline([echo, rm]).match(observed(record))
    assert (match.level, match.tool_use_id, match.candidates) == ("exact", "toolu_rm", 2)


def test_a_denied_call_is_never_the_explanation_and_is_named():
    denied = call("aws --profile prod s3 rm s3://audit-logs --recursive", decision="denied")
    record = s3_object_event("DeleteObject", at=AT, bucket="audit-logs", key="2026/app.log",
                             user_agent=UA)  # fmt: skip
    match = SessionTimeline([denied]).match(observed(record))
    assert (match.level, match.tool_use_id, match.denied_call) == ("none", None, "toolu_a")


def test_a_record_just_outside_the_window_joins_only_within_the_clock_skew():
    cp = call("aws s3 cp a.txt s3://b/a.txt", seconds=0.2)
    near = s3_object_event("PutObject", at=START + timedelta(seconds=2), bucket="b", key="a.txt",
                           user_agent=UA)  # fmt: skip
    far = s3_object_event("PutObject", at=START + timedelta(seconds=9), bucket="b", key="a.txt",
                          user_agent=UA)  # fmt: skip
    assert join([cp], near)[0] == "exact"
    assert join([cp], far)[0] == "none"


def test_iam_actions_follow_cloudtrail_event_names():
    assert iam_actions("s3.amazonaws.com", "ListObjects") == ("s3:ListBucket",)
    assert iam_actions("s3.amazonaws.com", "HeadObject") == ("s3:GetObject",)
    assert iam_actions("lambda.amazonaws.com", "Invoke") == ("lambda:InvokeFunction",)
    assert iam_actions("lambda.amazonaws.com", "CreateFunction20150331") == (
        "lambda:CreateFunction",
    )
    assert iam_actions("monitoring.amazonaws.com", "PutMetricData") == ("cloudwatch:PutMetricData",)
    assert iam_actions("iam.amazonaws.com", "CreateAccessKey") == ("iam:CreateAccessKey",)


@pytest.mark.parametrize(
    ("user_agent", "sessions"),
    [
        (f"[{cli_user_agent(SESSION)}]", (SESSION,)),  # CloudTrail brackets some agents
        (f"Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 app/trailguard-{SESSION} cfg/retry-mode#legacy",
         (SESSION,)),
        ("aws-cli/2.22.35 app/myapp", ()),
        ("console.amazonaws.com", ()),
        (f"x app/trailguard-a app/trailguard-{SESSION}", ("a", SESSION)),
        (f"evilapp/trailguard-{SESSION}", ()),  # "app/" must start a token
    ],
)  # fmt: skip
def test_the_session_is_read_from_the_app_id_in_the_user_agent(user_agent, sessions):
    assert session_ids_in_user_agent(user_agent) == sessions
