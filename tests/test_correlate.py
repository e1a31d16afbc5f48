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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cloudtrail_records import (
    ROLE_ARN,
    FakeCloudTrailSigner,
    cli_user_agent,
    log_file_bytes,
    log_key,
    management_event,
    s3_list_event,
    s3_object_event,
    write_delivery_tree,
)
from conftest import verify_dir
from trailguard.cli import app as cli_app
from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

runner = CliRunner()
SESSION = "0193f1c2-7a4e-7c1d-9f00-00000000c7a1"
OTHER_SESSION = "0193f1c2-7a4e-7c1d-9f00-00000000c7a2"
COPY = "aws s3 cp config.json s3://prod-config/app/config.json --profile prod"


def stored(data_dir: Path) -> list[dict[str, Any]]:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return [orjson.loads(row.body) for row in store.rows()]
    finally:
        store.close()


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["eventType"] == kind]


def ledger_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass
class Call:
    tool_use_id: str
    command: str
    started: datetime
    ended: datetime | None


class Sessions:
    """Sessions recorded through the real gateway app, from Claude Code hook payloads."""

    def __init__(self, client: TestClient, data_dir: Path, tokens: dict[str, str]) -> None:
        self.client = client
        self.data_dir = data_dir
        self.tokens = tokens
        self.running = True

    def stop(self) -> None:
        """Stop the gateway (its ledger closes), so that the CLI writes the ledger itself."""
        if self.running:
            self.client.__exit__(None, None, None)
            self.running = False

    def hook(self, token: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(
            "/hooks/claude-code",
            json=payload,
            headers={"Authorization": f"Bearer {self.tokens[token]}"},
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def start(self, session_id: str, token: str = "jordan") -> None:
        self.hook(
            token,
            {"session_id": session_id, "hook_event_name": "SessionStart", "source": "startup"},
        )

    def bash(
        self, session_id: str, command: str, token: str = "jordan", *, finish: bool = True
    ) -> Call:
        tool_use_id = f"toolu_{uuid.uuid4().hex[:20]}"
        call = {
            "session_id": session_id,
            "tool_name": "Bash",
            "tool_input": {"command": command, "description": "run"},
            "tool_use_id": tool_use_id,
        }
        self.hook(token, {**call, "hook_event_name": "PreToolUse"})
        if finish:
            time.sleep(0.05)
            self.hook(
                token,
                {
                    **call,
                    "hook_event_name": "PostToolUse",
                    "tool_response": {"stdout": "upload: ok", "stderr": ""},
                },
            )
        events = stored(self.data_dir)
        started = next(
            e["timestamp"]
            for e in of_type(events, "tool_invocation")
            if e["toolUseId"] == tool_use_id
        )
        ended = next(
            (e["timestamp"] for e in of_type(events, "tool_result") if e["toolUseId"] == tool_use_id),
            None,
        )
        return Call(
            tool_use_id, command, ledger_time(started), ledger_time(ended) if ended else None
        )

    def end(self, session_id: str, token: str = "jordan") -> None:
        self.hook(token, {"session_id": session_id, "hook_event_name": "SessionEnd", "reason": "other"})

    def correlate(self, kind: str, body: dict[str, Any], token: str) -> Any:
        return self.client.post(
            f"/v1/correlate/{kind}",
            json=body,
            headers={"Authorization": f"Bearer {self.tokens[token]}"},
        )


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Sessions]:
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=50))
    state = GatewayState(data_dir)
    tokens = {
        "jordan": state.create_token("dev_jordan", "agent")[0],
        "alex": state.create_token("dev_alex", "agent")[0],
        "admin": state.create_token("ops_kim", "admin")[0],
        "auditor": state.create_token("aud_sam", "auditor")[0],
    }
    state.close()
    client = TestClient(create_app(ledger, idle_timeout=3600))
    client.__enter__()
    sessions = Sessions(client, data_dir, tokens)
    yield sessions
    sessions.stop()


def correlate_cli(*args: str) -> Any:
    return runner.invoke(cli_app, ["correlate", *args], catch_exceptions=False)


def api_file(name: str, raw: bytes, **extra: Any) -> dict[str, Any]:
    return {"name": name, "content": base64.b64encode(raw).decode(), **extra}


# -- the whole join, from a delivery tree ----------------------------------------------------------


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

    result = correlate_cli("cloudtrail", str(tmp_path / "trail"), "--data-dir", str(gateway.data_dir))
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
    first = correlate_cli("cloudtrail", str(tree), "--data-dir", str(gateway.data_dir), "--format", "json")
    second = correlate_cli("cloudtrail", str(tree), "--data-dir", str(gateway.data_dir), "--format", "json")
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert json.loads(first.output)["appended"] == 1
    assert json.loads(second.output)["appended"] == 0
    assert json.loads(second.output)["alreadyRecorded"] == 1
    assert len(of_type(stored(gateway.data_dir), "downstream_record")) == 1
