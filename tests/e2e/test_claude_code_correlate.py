"""The real Claude Code CLI runs `aws s3 cp` against real S3 (ministack); the CloudTrail record
of that upload is then joined to the tool call that caused it.

Real: Claude Code 2.1.328, its hooks, `trailguard hook` writing AWS_SDK_UA_APP_ID to
CLAUDE_ENV_FILE, the AWS CLI (v1, from PyPI) reading it, ministack's S3, `trailguard serve`, and
`trailguard correlate` reading the trail bucket over S3 and posting to the running gateway.
Doubles: the model (a scripted server) and CloudTrail (records made from the requests S3
received, tests/aws_double.py), because neither can run here.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from aws_double import Ministack, RecordingProxy, aws_cli_binary, cloudtrail_records
from cloudtrail_records import log_file_bytes, log_key

from .claude import run_claude
from .conftest import TRAILGUARD, install_hooks
from .model_server import ModelServer, ToolCall, Turn

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "test-secret-not-real",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def test_an_agents_aws_s3_cp_is_joined_to_the_cloudtrail_record_it_caused(
    claude_binary, workspace, gateway, tmp_path
):
    aws = aws_cli_binary()
    ministack = Ministack()
    ministack.start(tmp_path / "ministack.log")
    try:
        s3 = ministack.s3()
        s3.create_bucket(Bucket="e2e-artifacts")
        s3.create_bucket(Bucket="trail-bucket")
        install_hooks(workspace, gateway, "http")
        (workspace.project / "notes.txt").write_text("release notes\n")
        with RecordingProxy(ministack.url) as proxy:
            command = (
                "aws s3 cp notes.txt s3://e2e-artifacts/releases/notes.txt "
                f"--endpoint-url {proxy.url}"
            )
            upload = ToolCall("Bash", {"command": command, "description": "upload notes"})
            env = (
                workspace.env(gateway)
                | FAKE_AWS
                | {"PATH": f"{aws.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
            )
            with ModelServer([Turn(tool_calls=[upload]), Turn(text="Uploaded.")]) as model:
                result = run_claude(
                    claude_binary,
                    home=workspace.home,
                    project=workspace.project,
                    prompt="upload the notes",
                    model_url=model.url,
                    env_extra=env,
                    args=["--permission-mode", "bypassPermissions"],
                    timeout=180,
                )
                output = model.tool_result_for(upload.id).content
        assert result.returncode == 0, result.describe()
        assert "upload:" in output, output
        session_id = result.session_id
        puts = [r for r in proxy.seen if r.method == "PUT"]
        assert puts, f"the CLI sent no PUT: {proxy.seen}"
        # The session id came from the agent's environment (CLAUDE_ENV_FILE), not from us.
        assert f"app/trailguard-{session_id}" in puts[0].user_agent
        assert puts[0].user_agent.startswith("aws-cli/")

        _, gz = log_file_bytes(cloudtrail_records(proxy.seen))
        s3.put_object(Bucket="trail-bucket", Key=log_key(puts[0].at), Body=gz)
        made = gateway.cli("token", "create", "--developer", "sec_ops", "--role", "admin")
        assert made.returncode == 0, made.stderr
        admin = made.stdout.strip().splitlines()[-1]
        imported = subprocess.run(
            [str(TRAILGUARD), "correlate", "cloudtrail", "s3://trail-bucket/AWSLogs/",
             "--s3-endpoint-url", ministack.url, "--data-dir", str(gateway.data_dir),
             "--format", "json"],
            capture_output=True, text=True, timeout=120, check=False,
            env=os.environ | FAKE_AWS | {"TRAILGUARD_TOKEN": admin, "TRAILGUARD_URL": gateway.url},
        )  # fmt: skip
    finally:
        ministack.stop()
    assert imported.returncode == 0, imported.stderr + imported.stdout
    report = json.loads(imported.stdout)
    assert report["appended"] == 1, report
    assert report["matches"] == {"exact": 1}

    events = gateway.session_events(session_id)
    (invocation,) = [e for e in events if e["eventType"] == "tool_invocation"]
    (record,) = [e for e in events if e["eventType"] == "downstream_record"]
    assert record["toolUseId"] == invocation["toolUseId"] == upload.id
    assert record["action"] == "s3:PutObject"
    assert record["resources"][0] == "arn:aws:s3:::e2e-artifacts/releases/notes.txt"
    assert record["importedBy"].startswith("sec_ops (token ")  # through the running gateway
    shown = gateway.cli("sessions", "show", session_id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if upload.id in line)
    assert "CloudTrail PutObject on arn:aws:s3:::e2e-artifacts/releases/notes.txt" in lines[at + 1]
    assert "[exact, unverified]" in lines[at + 1]
    gateway.stop()
    assert gateway.cli("verify").returncode == 0
