"""Smoke tests of the scripted model server, and of the real Claude Code CLI driven by it.

The ``e2e`` tests need the native Claude Code binary: set ``TRAILGUARD_CLAUDE_BIN`` to it, or
install it into ``<repo>/.cache/claude-code`` (``ensure_claude_code()``; set
``TRAILGUARD_E2E_INSTALL=1`` to let these tests run the npm install themselves).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .claude import (
    BINARY_ENV,
    DEFAULT_PREFIX,
    ensure_claude_code,
    find_claude_binary,
    find_transcript,
    run_claude,
    transcript_dir,
    trust_project,
)
from .model_server import FINAL_TEXT, ModelServer, ToolCall, Turn, Usage

TOOL_USE_ID = re.compile(r"^toolu_[A-Za-z0-9]{24}$")
MESSAGE_ID = re.compile(r"^msg_[A-Za-z0-9]+$")


# -- helpers --------------------------------------------------------------------------------
def post(
    url: str,
    body: dict[str, Any] | None,
    *,
    path: str = "/v1/messages?beta=true",
    method: str = "POST",
) -> tuple[int, str, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """A tiny SSE parser: (event name, JSON data) per blank-line-separated event."""
    events = []
    for chunk in raw.decode().split("\n\n"):
        if not chunk.strip():
            continue
        name, data = None, []
        for line in chunk.split("\n"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        assert name is not None, chunk
        events.append((name, json.loads("\n".join(data))))
    return events


def assemble(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Rebuild the message the way an SDK does from the stream, checking the event grammar."""
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    for name, data in events:
        assert data["type"] == name
    message = events[0][1]["message"]
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    open_blocks: set[int] = set()
    for name, data in events[1:-2]:
        index = data["index"]
        if name == "content_block_start":
            assert index not in blocks
            blocks[index] = dict(data["content_block"])
            open_blocks.add(index)
        elif name == "content_block_delta":
            assert index in open_blocks
            delta = data["delta"]
            if delta["type"] == "text_delta":
                blocks[index]["text"] += delta["text"]
            else:
                assert delta["type"] == "input_json_delta"
                partial[index] = partial.get(index, "") + delta["partial_json"]
        else:
            assert name == "content_block_stop"
            open_blocks.remove(index)
            if index in partial:
                blocks[index]["input"] = json.loads(partial[index])
    assert not open_blocks
    delta = events[-2][1]
    message["content"] = [blocks[i] for i in sorted(blocks)]
    message["stop_reason"] = delta["delta"]["stop_reason"]
    message["usage"] = dict(message["usage"], output_tokens=delta["usage"]["output_tokens"])
    return message


def main_request(
    *,
    stream: bool = True,
    messages: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "model": "claude-test-model",
        "max_tokens": 1024,
        "stream": stream,
        "messages": messages or [{"role": "user", "content": "hi"}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
    }


# -- the server alone -----------------------------------------------------------------------
def test_streams_a_tool_use_turn() -> None:
    calls = [
        ToolCall("Bash", {"command": "echo hello-from-e2e", "description": "say hello"}),
        ToolCall("Write", {"file_path": "/tmp/x/notes.txt", "content": "a" * 200 + '\n"q"'}),
    ]
    usage = Usage(
        input_tokens=3900,
        output_tokens=240,
        cache_creation_input_tokens=7,
        cache_read_input_tokens=1500,
    )
    with ModelServer([Turn(tool_calls=calls, text="Two tools.", usage=usage)]) as server:
        status, content_type, raw = post(server.url, main_request())
    assert status == 200
    assert content_type.startswith("text/event-stream")
    message = assemble(parse_sse(raw))
    assert MESSAGE_ID.match(message["id"])
    assert message["model"] == "claude-test-model"
    assert message["role"] == "assistant"
    assert message["stop_reason"] == "tool_use"
    assert message["content"][0] == {"type": "text", "text": "Two tools."}
    tool_uses = message["content"][1:]
    assert [b["type"] for b in tool_uses] == ["tool_use", "tool_use"]
    assert [(b["name"], b["input"]) for b in tool_uses] == [(c.name, c.input) for c in calls]
    assert [b["id"] for b in tool_uses] == [c.id for c in calls]
    assert all(TOOL_USE_ID.match(b["id"]) for b in tool_uses)
    assert message["usage"] == usage.as_dict()
    [recorded] = server.requests
    assert recorded.kind == "main"
    assert recorded.turn_index == 0
    assert recorded.query == {"beta": ["true"]}
    assert recorded.body["model"] == "claude-test-model"


def test_script_order_side_requests_and_other_paths() -> None:
    script = [Turn(tool_calls=[ToolCall("Bash", {"command": "true"})]), Turn(text="All done.")]
    with ModelServer(script) as server:
        side = dict(main_request(stream=False), tools=[])
        _, _, side_raw = post(server.url, side)
        first = assemble(parse_sse(post(server.url, main_request())[2]))
        tool_use_id = first["content"][0]["id"]
        follow_up = main_request(
            stream=False,
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": first["content"]},
                {"role": "system", "content": "interleaved system message"},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": tool_use_id,
                            "content": [{"type": "text", "text": "out"}],
                            "is_error": True,
                        }
                    ],
                },
            ],
        )
        _, content_type, second_raw = post(server.url, follow_up)
        _, _, third_raw = post(server.url, main_request(stream=False))
        tokens = post(
            server.url, {"model": "m", "messages": []}, path="/v1/messages/count_tokens?beta=true"
        )
        missing = post(server.url, None, path="/v1/models", method="GET")
    assert json.loads(side_raw)["stop_reason"] == "end_turn"
    assert content_type.startswith("application/json")
    second = json.loads(second_raw)
    assert second["content"] == [{"type": "text", "text": "All done."}]
    assert second["stop_reason"] == "end_turn"
    assert json.loads(third_raw)["content"][0]["text"] == FINAL_TEXT
    assert tokens[0] == 200
    assert json.loads(tokens[2]) == {"input_tokens": 10}
    assert missing[0] == 404
    assert json.loads(missing[2])["type"] == "error"
    assert [r.kind for r in server.requests] == [
        "side",
        "main",
        "main",
        "main",
        "count_tokens",
        "other",
    ]
    assert [r.turn_index for r in server.main_requests] == [0, 1, None]
    assert server.tool_results() == [(tool_use_id, "out", True)]
    assert server.main_requests[1].has_tool_results
    assert server.errors == []


# -- the real Claude Code CLI ---------------------------------------------------------------
@pytest.fixture(scope="session")
def claude_binary() -> Path:
    binary = find_claude_binary()
    if binary is None and os.environ.get("TRAILGUARD_E2E_INSTALL") == "1":
        binary = ensure_claude_code()
    if binary is None:
        pytest.skip(
            f"Claude Code binary not found: set {BINARY_ENV} to the native `claude` binary, or "
            f"install it into {DEFAULT_PREFIX} (TRAILGUARD_E2E_INSTALL=1 lets the tests run "
            "npm install, about 360 MB)"
        )
    return binary


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    trust_project(home, project)
    return home, project


BYPASS = ["--permission-mode", "bypassPermissions"]


def _registered_marker(name: str) -> pytest.MarkDecorator | None:
    """``pytest.mark.<name>``, or None while it is unregistered: pyproject's addopts has
    ``--strict-markers``, under which an unregistered marker is a collection error."""
    try:
        return getattr(pytest.mark, name)
    except pytest.fail.Exception:
        return None


def e2e(test: Any) -> Any:
    """Mark a test that runs the real CLI: ``slow`` (it spawns processes) and ``e2e`` once the
    ``e2e`` marker is registered in pyproject.toml."""
    marker = _registered_marker("e2e")
    test = pytest.mark.slow(test)
    return marker(test) if marker is not None else test


@e2e
def test_claude_runs_a_bash_tool(claude_binary: Path, workspace: tuple[Path, Path]) -> None:
    home, project = workspace
    script = [
        Turn(
            tool_calls=[
                ToolCall("Bash", {"command": "echo hello-from-e2e", "description": "say hello"})
            ]
        ),
        Turn(text="All done."),
    ]
    with ModelServer(script) as server:
        result = run_claude(
            claude_binary,
            home=home,
            project=project,
            prompt="say hello",
            model_url=server.url,
            args=BYPASS,
        )
    assert result.returncode == 0, result.describe()
    assert result.json is not None, result.describe()
    assert result.json["is_error"] is False
    assert result.json["result"] == "All done."
    assert result.session_id
    assert result.permission_denials == []
    assert server.script_exhausted
    [(tool_use_id, content, is_error)] = server.tool_results()
    assert tool_use_id == script[0].tool_calls[0].id
    assert "hello-from-e2e" in content
    assert not is_error
    assert {r.session_id for r in server.main_requests} == {result.session_id}
    transcript = transcript_dir(home, project) / f"{result.session_id}.jsonl"
    assert transcript.is_file()
    assert find_transcript(home, result.session_id) == transcript
    assert server.errors == []


@e2e
def test_claude_runs_write_and_bash_in_one_turn(
    claude_binary: Path, workspace: tuple[Path, Path]
) -> None:
    home, project = workspace
    target = project / "notes.txt"
    script = [
        Turn(
            tool_calls=[
                ToolCall("Write", {"file_path": str(target), "content": "written by e2e\n"}),
                ToolCall("Bash", {"command": "echo second-tool", "description": "echo"}),
            ],
            usage=Usage(input_tokens=3900, output_tokens=240, cache_read_input_tokens=1500),
        ),
        Turn(text="All done.", usage=Usage(input_tokens=0, output_tokens=0)),
    ]
    with ModelServer(script) as server:
        result = run_claude(
            claude_binary,
            home=home,
            project=project,
            prompt="write notes",
            model_url=server.url,
            args=BYPASS,
        )
    assert result.returncode == 0, result.describe()
    assert result.session_id, result.describe()
    assert target.read_text() == "written by e2e\n"
    results = {r.tool_use_id: r for r in server.tool_results()}
    write_id, bash_id = (call.id for call in script[0].tool_calls)
    assert set(results) == {write_id, bash_id}
    assert not results[write_id].is_error
    assert "second-tool" in results[bash_id].content
    # Claude Code prices the scripted usage with its own table (claude-opus-5-5 in 2.1.328).
    assert result.total_cost_usd == pytest.approx(0.0207)
