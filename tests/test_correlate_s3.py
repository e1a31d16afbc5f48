"""A real AWS client against real S3 (ministack): the session id reaches the User-Agent that
CloudTrail records, and a CloudTrail delivery bucket is imported from ``s3://``.

CloudTrail itself cannot run here: its records are made by a test double from the requests the
S3 server really received (tests/aws_double.py), and its digests are signed by a key the test
made (AWS signs with its own).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from aws_double import Ministack, RecordingProxy, cloudtrail_records
from cloudtrail_records import FakeCloudTrailSigner, log_file_bytes, log_key
from correlate_helpers import of_type, recorded_sessions, stored
from trailguard.cli import app as cli_app

runner = CliRunner()
gateway = pytest.fixture(recorded_sessions, name="gateway")
SESSION = "0193f1c2-7a4e-7c1d-9f00-00000000c7a1"


@pytest.fixture(scope="module")
def ministack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ministack]:
    server = Ministack()
    server.start(tmp_path_factory.mktemp("ministack") / "ministack.log")
    yield server
    server.stop()


def test_botocore_sends_the_session_in_its_user_agent_and_the_record_joins_the_call(
    gateway, ministack, tmp_path, monkeypatch
):
    import botocore.session
    from botocore.config import Config

    gateway.start(SESSION)
    s3 = ministack.s3()
    s3.create_bucket(Bucket="reports-bucket")
    s3.create_bucket(Bucket="trail-bucket")
    monkeypatch.setenv("AWS_SDK_UA_APP_ID", f"trailguard-{SESSION}")  # what the hook client sets
    with RecordingProxy(ministack.url) as proxy:
        client = botocore.session.get_session().create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=proxy.url,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="test-secret-not-real",
            config=Config(s3={"addressing_style": "path"}),
        )
        call = gateway.bash(
            SESSION, "aws s3 cp report.csv s3://reports-bucket/2026/report.csv", finish=False
        )
        client.put_object(Bucket="reports-bucket", Key="2026/report.csv", Body=b"a,b\n1,2\n")
        gateway.hook(
            "jordan",
            {"session_id": SESSION, "hook_event_name": "PostToolUse", "tool_name": "Bash",
             "tool_input": {"command": call.command}, "tool_use_id": call.tool_use_id,
             "tool_response": {"stdout": "upload: ./report.csv", "stderr": ""}},
        )  # fmt: skip
    (request,) = proxy.seen
    assert f"app/trailguard-{SESSION}" in request.user_agent
    assert request.user_agent.startswith("Botocore/") or "botocore" in request.user_agent.lower()
    assert s3.get_object(Bucket="reports-bucket", Key="2026/report.csv")["Body"].read() == (
        b"a,b\n1,2\n"
    )

    # CloudTrail delivers the record to the trail's bucket, with a signed digest whose
    # signature is in the object's metadata (x-amz-meta-signature), as AWS does.
    records = cloudtrail_records(proxy.seen)
    plain, gz = log_file_bytes(records)
    key = log_key(request.at)
    s3.put_object(Bucket="trail-bucket", Key=key, Body=gz)
    signer = FakeCloudTrailSigner()
    digest_key, digest, signature = signer.digest_for(
        "trail-bucket", [(key, plain)], request.at + timedelta(minutes=30)
    )
    s3.put_object(
        Bucket="trail-bucket", Key=digest_key, Body=digest,
        Metadata={"signature": signature, "signature-algorithm": "SHA256withRSA"},
    )  # fmt: skip
    gateway.stop()
    keys = tmp_path / "keys.json"
    keys.write_text(signer.public_keys_json())
    data = str(gateway.data_dir)
    assert (
        runner.invoke(cli_app, ["correlate", "trust-keys", str(keys), "--data-dir", data]).exit_code
        == 0
    )
    env = {
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "test-secret-not-real",
    }
    result = runner.invoke(
        cli_app,
        ["correlate", "cloudtrail", "s3://trail-bucket/AWSLogs/", "--s3-endpoint-url",
         ministack.url, "--data-dir", data, "--format", "json"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["appended"], report["verified"], report["problems"]) == (1, 1, [])
    (joined,) = of_type(stored(gateway.data_dir), "downstream_record")
    assert joined["toolUseId"] == call.tool_use_id
    assert (joined["match"], joined["authenticity"]) == ("exact", "digest_verified")
    assert joined["name"] == "PutObject"
    assert joined["importedFrom"].startswith(f"s3://trail-bucket/{key}#Records[0]")
    assert joined["userAgent"] == request.user_agent


def test_an_s3_location_that_cannot_be_listed_is_a_clear_error(gateway, ministack):
    gateway.stop()
    result = runner.invoke(
        cli_app,
        ["correlate", "cloudtrail", "s3://no-such-trail-bucket/AWSLogs/", "--s3-endpoint-url",
         ministack.url, "--data-dir", str(gateway.data_dir)],
        env={"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "s3://no-such-trail-bucket/AWSLogs/: cannot be listed" in result.output
    assert not of_type(stored(gateway.data_dir), "downstream_record")
