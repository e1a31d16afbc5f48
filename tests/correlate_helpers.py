"""Sessions made by the real gateway app from Claude Code hook payloads, for the correlate
tests: the tool calls that downstream records are joined to."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore


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
            (
                e["timestamp"]
                for e in of_type(events, "tool_result")
                if e["toolUseId"] == tool_use_id
            ),
            None,
        )
        return Call(
            tool_use_id, command, ledger_time(started), ledger_time(ended) if ended else None
        )

    def end(self, session_id: str, token: str = "jordan") -> None:
        self.hook(
            token, {"session_id": session_id, "hook_event_name": "SessionEnd", "reason": "other"}
        )

    def correlate(self, kind: str, body: dict[str, Any], token: str) -> Any:
        return self.client.post(
            f"/v1/correlate/{kind}",
            json=body,
            headers={"Authorization": f"Bearer {self.tokens[token]}"},
        )


def recorded_sessions(tmp_path: Path) -> Iterator[Sessions]:
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
