"""The Anthropic API pass-through proxy: real sockets end to end (uvicorn in a thread, scripted
upstreams), so streaming is what a client would see."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from e2e.claude import ClaudeCodeUnavailable, ensure_claude_code, find_claude_binary, run_claude
from e2e.model_server import ModelServer, ToolCall, Turn, Usage, message_sse
from proxy_harness import (
    API_KEY,
    BEARER,
    CLAUDE_HEADERS,
    MESSAGE_START,
    RAW_USAGE,
    REST,
    SESSION,
    RawRequest,
    RawUpstream,
    end_chunks,
    messages_body,
    send_chunk,
    send_json,
    serve_proxy,
    sse,
    start_chunked,
)
from trailguard.capture.anthropic_proxy import (
    DEFAULT_UPSTREAM,
    ModelRequestRecord,
    SSEParser,
    create_proxy_router,
)


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    server = ModelServer(
        [
            Turn(
                tool_calls=[
                    ToolCall("Bash", {"command": "ls"}, id="toolu_01AAA"),
                    ToolCall("Read", {"file_path": "/etc/hosts"}, id="toolu_01BBB"),
                ],
                usage=Usage(
                    input_tokens=3900,
                    output_tokens=240,
                    cache_creation_input_tokens=300,
                    cache_read_input_tokens=1500,
                ),
            ),
            Turn(text="All done.", usage=Usage(input_tokens=50, output_tokens=7)),
        ]
    ).start()
    try:
        yield server
    finally:
        server.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- streaming -----------------------------------------------------------------------------


def test_stream_reaches_the_client_before_the_upstream_finishes() -> None:
    client_saw_start = threading.Event()
    upstream_waited: list[bool] = []

    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        start_chunked(handler)
        send_chunk(handler, MESSAGE_START)
        # The rest is sent only once the client has message_start (or after 5 s, failing).
        upstream_waited.append(client_saw_start.wait(5))
        time.sleep(0.2)
        send_chunk(handler, REST)
        end_chunks(handler)

    with RawUpstream(respond) as upstream, serve_proxy(upstream.url) as proxy:
        received = b""
        started = time.monotonic()
        with httpx.stream(
            "POST",
            f"{proxy.url}/v1/messages?beta=true",
            json=messages_body(),
            headers=CLAUDE_HEADERS,
            timeout=10,
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for chunk in response.iter_raw():
                received += chunk
                if b"message_start" in received and not client_saw_start.is_set():
                    assert b"message_stop" not in received
                    first_at = time.monotonic() - started
                    client_saw_start.set()
        total = time.monotonic() - started
        assert upstream_waited == [True]
        assert received == MESSAGE_START + REST
        assert first_at < total - 0.15
        [record] = proxy.wait_records(1)
    assert record.stream is True
    assert record.status == 200
    assert record.first_byte_ms < record.latency_ms
    assert record.latency_ms >= 200
    assert record.usage == RAW_USAGE
    assert record.tool_use_ids == ("toolu_raw_A", "toolu_raw_B")
    assert record.request_id == "req_raw_0001"
    assert record.message_id == "msg_raw_0001"
    assert record.model == "claude-sonnet-4-5"
    assert record.error is None


def test_records_model_usage_tool_ids_session_and_agent(model_server: ModelServer) -> None:
    with serve_proxy(model_server.url) as proxy:
        headers = CLAUDE_HEADERS | {
            "x-claude-code-agent-id": "agent-explore-1",
            "x-claude-code-parent-agent-id": "agent-main",
        }
        first = httpx.post(
            f"{proxy.url}/v1/messages?beta=true",
            json=messages_body(),
            headers=headers,
            timeout=10,
        )
        second = httpx.post(
            f"{proxy.url}/v1/messages?beta=true",
            json=messages_body(),
            headers=CLAUDE_HEADERS,
            timeout=10,
        )
        records = proxy.wait_records(2)
    assert first.status_code == second.status_code == 200
    # The SSE is passed through byte for byte.
    upstream_first, upstream_second = model_server.main_requests
    assert upstream_first.response is not None
    assert upstream_second.response is not None
    assert first.content == message_sse(upstream_first.response)
    assert second.content == message_sse(upstream_second.response)

    one, two = records
    assert one.model == "claude-opus-5-5"
    assert one.session_id == SESSION
    assert one.agent_id == "agent-explore-1"
    assert one.parent_agent_id == "agent-main"
    assert one.stream is True
    assert one.usage == {
        "input_tokens": 3900,
        "output_tokens": 240,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 1500,
    }
    assert one.tool_use_ids == ("toolu_01AAA", "toolu_01BBB")
    assert one.message_id == upstream_first.response["id"]
    assert one.request_id is not None
    assert one.request_id.startswith("req_")
    assert one.error is None
    assert 0 <= one.first_byte_ms <= one.latency_ms

    assert two.agent_id is None
    assert two.parent_agent_id is None
    assert two.tool_use_ids == ()
    assert two.usage["input_tokens"] == 50
    assert two.usage["output_tokens"] == 7
    assert two.message_id == upstream_second.response["id"]


def test_non_streaming_json_response(model_server: ModelServer) -> None:
    with serve_proxy(model_server.url) as proxy:
        response = httpx.post(
            f"{proxy.url}/v1/messages",
            json=messages_body(stream=False),
            headers=CLAUDE_HEADERS,
            timeout=10,
        )
        [record] = proxy.wait_records(1)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    message = response.json()
    assert message == model_server.main_requests[0].response
    assert record.stream is False
    assert record.message_id == message["id"]
    assert record.model == "claude-opus-5-5"
    assert record.tool_use_ids == ("toolu_01AAA", "toolu_01BBB")
    assert record.usage["cache_creation_input_tokens"] == 300
    assert record.usage["output_tokens"] == 240


def test_other_endpoints_pass_through(model_server: ModelServer) -> None:
    with serve_proxy(model_server.url) as proxy:
        counted = httpx.post(
            f"{proxy.url}/v1/messages/count_tokens?beta=true",
            json=messages_body(),
            headers=CLAUDE_HEADERS,
        )
        missing = httpx.get(f"{proxy.url}/v1/models", headers=CLAUDE_HEADERS)
        head = httpx.head(f"{proxy.url}/api/hello")
        records = proxy.wait_records(3)
    assert counted.json() == {"input_tokens": 10}
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    assert head.status_code == 200
    assert head.content == b""
    assert [r.status for r in records] == [200, 404, 200]
    assert records[0].usage == {}  # count_tokens is not a model turn
    assert records[1].error is not None
    assert "not_found_error" in records[1].error


# -- forwarding ----------------------------------------------------------------------------


def test_credentials_forwarded_untouched_and_never_recorded(
    model_server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with serve_proxy(model_server.url) as proxy:
        httpx.post(
            f"{proxy.url}/v1/messages?beta=true",
            json=messages_body(),
            headers=CLAUDE_HEADERS,
            timeout=10,
        )
        httpx.post(
            f"{proxy.url}/v1/messages?beta=true",
            json=messages_body(),
            headers={k: v for k, v in CLAUDE_HEADERS.items() if k != "x-api-key"}
            | {"authorization": BEARER},
            timeout=10,
        )
        records = proxy.wait_records(2)
    first, second = model_server.requests
    assert first.headers["x-api-key"] == API_KEY
    assert "authorization" not in first.headers
    assert second.headers["authorization"] == BEARER
    assert "x-api-key" not in second.headers
    for upstream_request in (first, second):
        assert upstream_request.headers["anthropic-version"] == "2023-06-01"
        assert upstream_request.headers["anthropic-beta"] == CLAUDE_HEADERS["anthropic-beta"]
        assert upstream_request.headers["user-agent"] == CLAUDE_HEADERS["user-agent"]
        assert upstream_request.headers["x-claude-code-session-id"] == SESSION
    text = repr(records) + str(records) + caplog.text
    for secret in ("SECRET", API_KEY, BEARER):
        assert secret not in text
    assert not any("header" in name for name in ModelRequestRecord.__dataclass_fields__)


def test_path_query_body_and_headers_forwarded_exactly() -> None:
    body = b'{"model": "claude-opus-5-5",  "odd spacing": "\\u00e9 \xc3\xa9", "stream": false}'

    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        send_json(
            handler,
            200,
            {"ok": True},
            extra={"x-upstream": "kept", "anthropic-ratelimit-requests-remaining": "42"},
        )

    with RawUpstream(respond) as upstream, serve_proxy(upstream.url) as proxy:
        response = httpx.post(
            f"{proxy.url}/v1/messages?beta=true&a=%20b+c&slash=%2F&empty=&flag",
            content=body,
            headers={
                "content-type": "application/json",
                "x-api-key": API_KEY,
                "x-custom": "one",
                "connection": "keep-alive, x-drop-me",
                "x-drop-me": "hop-by-hop by Connection",
                "keep-alive": "timeout=5",
                "te": "trailers",
                "proxy-authorization": "Basic cHJveHk6cGFzcw==",
                "accept-encoding": "gzip, br",
            },
        )
        response_put = httpx.put(f"{proxy.url}/v1/files/a%20b/c?x=1", content=b"raw")
        proxy.wait_records(2)
    assert response.status_code == 200
    assert response.headers["x-upstream"] == "kept"
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "42"
    assert response_put.status_code == 200
    post, put = upstream.requests
    assert post.method == "POST"
    assert post.target == "/v1/messages?beta=true&a=%20b+c&slash=%2F&empty=&flag"
    assert post.body == body
    assert post.header("content-length") == str(len(body))
    assert post.header("x-api-key") == API_KEY
    assert post.header("x-custom") == "one"
    assert post.header("content-type") == "application/json"
    assert post.header("accept-encoding") == "identity"
    assert post.header("host") == upstream.url.removeprefix("http://")
    for dropped in ("x-drop-me", "keep-alive", "te", "proxy-authorization"):
        assert post.header(dropped) is None, dropped
    assert (put.method, put.target, put.body) == ("PUT", "/v1/files/a%20b/c?x=1", b"raw")


def test_upstream_with_a_path_prefix() -> None:
    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        send_json(handler, 200, {"ok": True})

    with RawUpstream(respond) as upstream, serve_proxy(upstream.url + "/base/") as proxy:
        httpx.get(f"{proxy.url}/v1/models?limit=5")
        proxy.wait_records(1)
    assert upstream.requests[0].target == "/base/v1/models?limit=5"


def test_compressed_upstream_forwarded_as_is_and_parsed() -> None:
    """An upstream that compresses although asked for identity: the client gets the bytes as
    sent (and decodes them itself); the proxy decodes a copy to record usage."""
    compressed = gzip.compress(MESSAGE_START + REST)

    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        start_chunked(handler, extra={"Content-Encoding": "gzip"})
        for start in range(0, len(compressed), 50):
            send_chunk(handler, compressed[start : start + 50])
        end_chunks(handler)

    with RawUpstream(respond) as upstream, serve_proxy(upstream.url) as proxy:
        with httpx.stream(
            "POST", f"{proxy.url}/v1/messages", json=messages_body(), headers=CLAUDE_HEADERS
        ) as response:
            raw = b"".join(response.iter_raw())
        [record] = proxy.wait_records(1)
    assert response.headers["content-encoding"] == "gzip"
    assert raw == compressed
    assert record.usage == RAW_USAGE
    assert record.tool_use_ids == ("toolu_raw_A", "toolu_raw_B")
    assert record.error is None


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_events_split_across_chunks_with_any_line_ending(newline: str) -> None:
    stream = (MESSAGE_START + REST).decode().replace("\n", newline).encode()

    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        start_chunked(handler)
        for start in range(0, len(stream), 7):  # boundaries fall everywhere, inside \r\n too
            send_chunk(handler, stream[start : start + 7])
        end_chunks(handler)

    with RawUpstream(respond) as upstream, serve_proxy(upstream.url) as proxy:
        response = httpx.post(f"{proxy.url}/v1/messages", json=messages_body())
        [record] = proxy.wait_records(1)
    assert response.content == stream
    assert record.usage == RAW_USAGE
    assert record.tool_use_ids == ("toolu_raw_A", "toolu_raw_B")
    assert record.message_id == "msg_raw_0001"


# -- errors --------------------------------------------------------------------------------


def test_upstream_down_gives_502_with_a_clear_message() -> None:
    port = closed_port()
    with serve_proxy(f"http://user:hunter2@127.0.0.1:{port}") as proxy:
        response = httpx.post(
            f"{proxy.url}/v1/messages?beta=true", json=messages_body(), headers=CLAUDE_HEADERS
        )
        [record] = proxy.wait_records(1)
    assert response.status_code == 502
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "api_error"
    message = payload["error"]["message"]
    assert "trailguard proxy could not reach the upstream" in message
    assert f"http://127.0.0.1:{port}" in message
    for secret in ("hunter2", "user:", API_KEY, "SECRET"):
        assert secret not in message
        assert secret not in repr(record)
    assert record.status == 502
    assert record.error is not None
    assert "could not reach" in record.error
    assert record.session_id == SESSION
    assert record.usage == {}
    assert record.tool_use_ids == ()


@pytest.mark.parametrize(
    ("status", "error_type", "extra"),
    [
        (529, "overloaded_error", {"x-should-retry": "true"}),
        (500, "api_error", {}),
        (401, "authentication_error", {}),
        (429, "rate_limit_error", {"retry-after": "17", "anthropic-ratelimit-tokens-reset": "x"}),
    ],
)
def test_upstream_errors_pass_through_unchanged(
    status: int, error_type: str, extra: dict[str, str]
) -> None:
    payload = {"type": "error", "error": {"type": error_type, "message": f"upstream said {status}"}}

    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        send_json(handler, status, payload, extra=extra | {"request-id": "req_err_1"})

    with RawUpstream(respond) as upstream, serve_proxy(upstream.url) as proxy:
        response = httpx.post(
            f"{proxy.url}/v1/messages", json=messages_body(), headers=CLAUDE_HEADERS
        )
        [record] = proxy.wait_records(1)
    assert response.status_code == status
    assert response.json() == payload
    for name, value in extra.items():
        assert response.headers[name] == value
    assert record.status == status
    assert record.request_id == "req_err_1"
    assert record.error == f"{error_type}: upstream said {status}"


def test_stream_broken_midway_ends_with_an_error_event() -> None:
    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        start_chunked(handler)
        send_chunk(handler, MESSAGE_START)
        handler.wfile.write(b"40\r\nevent: content_block_")  # a chunk cut short
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    with RawUpstream(respond) as upstream, serve_proxy(upstream.url) as proxy:
        response = httpx.post(f"{proxy.url}/v1/messages", json=messages_body())
        [record] = proxy.wait_records(1)
    assert response.status_code == 200
    assert response.content.startswith(MESSAGE_START)
    events = [e for e in SSEParser().feed(response.content) if e[0] == "error"]
    assert len(events) == 1
    assert "upstream stream broke" in json.loads(events[0][1])["error"]["message"]
    assert record.error is not None
    assert "broke" in record.error
    assert record.message_id == "msg_raw_0001"  # what arrived is still recorded
    assert record.usage["input_tokens"] == 3900


def test_upstream_sse_error_event_is_recorded() -> None:
    overloaded = sse(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )

    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        start_chunked(handler)
        send_chunk(handler, MESSAGE_START + overloaded)
        end_chunks(handler)

    with RawUpstream(respond) as upstream, serve_proxy(upstream.url) as proxy:
        response = httpx.post(f"{proxy.url}/v1/messages", json=messages_body())
        [record] = proxy.wait_records(1)
    assert response.content == MESSAGE_START + overloaded
    assert record.error == "overloaded_error: Overloaded"


@pytest.mark.parametrize("through_router", [False, True], ids=["mounted", "router"])
def test_client_gone_midstream_still_gives_one_record(through_router: bool) -> None:
    client_left = threading.Event()

    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        start_chunked(handler)
        send_chunk(handler, MESSAGE_START)
        client_left.wait(5)
        time.sleep(0.2)
        for _ in range(50):  # keeps streaming into a proxy whose client has gone
            send_chunk(handler, REST)
            time.sleep(0.01)
        end_chunks(handler)

    with (
        RawUpstream(respond) as upstream,
        serve_proxy(upstream.url, through_router=through_router) as proxy,
    ):
        with httpx.stream("POST", f"{proxy.url}/v1/messages", json=messages_body()) as response:
            for chunk in response.iter_raw():
                assert b"message_start" in chunk
                break
        client_left.set()
        [record] = proxy.wait_records(1, timeout=10)
    assert record.message_id == "msg_raw_0001"
    assert record.error is not None
    assert "client disconnected" in record.error


# -- refusal and on_record -----------------------------------------------------------------


def test_refuse_answers_without_contacting_the_upstream(model_server: ModelServer) -> None:
    asked: list[str | None] = []

    def refuse(session_id: str | None) -> str | None:
        asked.append(session_id)
        if session_id == SESSION:
            return "trailguard: the session budget of $5.00 is exhausted"
        return None

    with serve_proxy(model_server.url, refuse=refuse) as proxy:
        refused = httpx.post(
            f"{proxy.url}/v1/messages?beta=true", json=messages_body(), headers=CLAUDE_HEADERS
        )
        allowed = httpx.post(
            f"{proxy.url}/v1/messages?beta=true",
            json=messages_body(),
            headers=CLAUDE_HEADERS | {"x-claude-code-session-id": "other-session"},
        )
        records = proxy.wait_records(2)
    assert refused.status_code == 402
    assert refused.json() == {
        "type": "error",
        "error": {
            "type": "billing_error",
            "message": "trailguard: the session budget of $5.00 is exhausted",
        },
    }
    assert allowed.status_code == 200
    assert asked == [SESSION, "other-session"]
    assert len(model_server.requests) == 1  # only the allowed one
    assert model_server.requests[0].session_id == "other-session"
    assert records[0].status == 402
    assert records[0].session_id == SESSION
    assert records[0].error is not None
    assert "budget" in records[0].error
    assert records[1].status == 200


def test_a_failing_on_record_does_not_break_the_response(
    model_server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[ModelRequestRecord] = []

    def broken(record: ModelRequestRecord) -> None:
        calls.append(record)
        raise RuntimeError("ledger unavailable")

    with serve_proxy(model_server.url, on_record=broken) as proxy:
        response = httpx.post(
            f"{proxy.url}/v1/messages", json=messages_body(), headers=CLAUDE_HEADERS
        )
        plain = httpx.post(f"{proxy.url}/v1/messages", json=messages_body(stream=False))
        deadline = time.monotonic() + 5
        while len([c for c in calls if not c.provisional]) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert response.status_code == 200
    assert b"message_stop" in response.content
    assert plain.status_code == 200
    assert plain.json()["type"] == "message"
    assert len([call for call in calls if not call.provisional]) == 2
    assert "on_record failed" in caplog.text
    assert API_KEY not in caplog.text


def test_async_on_record_is_awaited(model_server: ModelServer) -> None:
    seen: list[ModelRequestRecord] = []

    async def on_record(record: ModelRequestRecord) -> None:
        await asyncio.sleep(0.01)
        seen.append(record)

    with serve_proxy(model_server.url, on_record=on_record) as proxy:
        httpx.post(f"{proxy.url}/v1/messages", json=messages_body(), headers=CLAUDE_HEADERS)
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [record.provisional for record in seen] == [True, False]
    assert seen[1].tool_use_ids == ("toolu_01AAA", "toolu_01BBB")


def test_router_defaults_and_schema() -> None:
    app = FastAPI()
    app.include_router(create_proxy_router(on_record=lambda _r: None))
    assert DEFAULT_UPSTREAM == "https://api.anthropic.com"
    # One documented operation (POST, how Claude Code calls it); every other method is proxied
    # but not listed.
    paths = {p: list(ops) for p, ops in app.openapi()["paths"].items() if "anthropic" in p}
    assert paths == {"/anthropic/{path}": ["post"]}


# -- the SSE parser ------------------------------------------------------------------------


def test_sse_parser_handles_every_split_point() -> None:
    stream = (
        b'event: message_start\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b": comment\n\n"
        b"id: 7\nevent: ping\ndata: {}\n\n"
        b"data: no-event-name\r\r"
        b"event: message_stop\ndata:{}\n\n"
    )
    expected = [
        ("message_start", b'{"a":\n1}'),
        ("ping", b"{}"),
        (None, b"no-event-name"),
        ("message_stop", b"{}"),
    ]
    assert SSEParser().feed(stream) == expected
    for split in range(1, len(stream)):
        parser = SSEParser()
        assert parser.feed(stream[:split]) + parser.feed(stream[split:]) == expected, split
    parser = SSEParser()
    assert [e for i in range(len(stream)) for e in parser.feed(stream[i : i + 1])] == expected


# -- the real client -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def claude_binary_path() -> Path:
    """$TRAILGUARD_CLAUDE_BIN or .cache/claude-code, installed from npm when missing; in CI a
    failed install fails the test instead of skipping it."""
    binary = find_claude_binary()
    if binary is None:
        try:
            binary = ensure_claude_code()
        except ClaudeCodeUnavailable as exc:
            if os.environ.get("CI"):
                pytest.fail(f"Claude Code is required in CI: {exc}")
            pytest.skip(f"no Claude Code ({exc}): set TRAILGUARD_CLAUDE_BIN")
    return binary


@pytest.mark.e2e
@pytest.mark.slow
def test_real_claude_code_through_the_proxy_and_a_refusal(
    model_server: ModelServer, claude_binary_path: Path
) -> None:
    """Claude Code runs a session through the proxy (records match what it reports), then a
    refused request ends its next session at once: no retries, the message shown."""
    CLAUDE_BINARY = claude_binary_path
    refusing = threading.Event()
    refusals: list[str | None] = []

    def refuse(session_id: str | None) -> str | None:
        if refusing.is_set():
            refusals.append(session_id)
            return "trailguard: the daily budget of $10.00 for dev_jordan is exhausted"
        return None

    with (
        serve_proxy(model_server.url, refuse=refuse) as proxy,
        tempfile.TemporaryDirectory() as tmp,
    ):
        home, project = Path(tmp) / "home", Path(tmp) / "project"
        project.mkdir()
        result = run_claude(
            CLAUDE_BINARY,
            home=home,
            project=project,
            prompt="list the files",
            model_url=proxy.url,
            args=["--permission-mode", "bypassPermissions"],
        )
        assert result.returncode == 0, result.describe()
        records = proxy.wait_records(2)
        assert {r.session_id for r in records} == {result.session_id}
        assert records[0].tool_use_ids == ("toolu_01AAA", "toolu_01BBB")
        assert result.json is not None
        reported = result.json["usage"]
        assert sum(r.usage["input_tokens"] for r in records) == reported["input_tokens"]
        assert sum(r.usage["output_tokens"] for r in records) == reported["output_tokens"]

        refusing.set()
        denied = run_claude(
            CLAUDE_BINARY,
            home=home,
            project=project,
            prompt="again",
            model_url=proxy.url,
            timeout=60,
        )
        assert denied.is_error, denied.describe()
        assert denied.json is not None
        assert "daily budget of $10.00" in denied.json["result"], denied.describe()
        assert denied.json.get("api_error_status") == 402
        assert len(refusals) == 1  # not retried
        assert len(model_server.main_requests) == 2


# -- counting before the agent acts, and who is charged -----------------------------------------


def test_usage_is_counted_before_the_end_of_the_stream_reaches_the_client(
    model_server: ModelServer,
) -> None:
    """The budget race (issue 11.5): Claude Code acts on a response once it has it all, so the
    cost must be durable before ``message_stop`` is forwarded. A slow ``on_record`` holds the
    rest of the stream back until it returns."""
    counted = threading.Event()

    async def on_record(record: ModelRequestRecord) -> None:
        if record.provisional:
            await asyncio.sleep(0.3)  # a slow ledger commit
            counted.set()

    with serve_proxy(model_server.url, on_record=on_record) as proxy:
        received = b""
        stop_seen_after_count: list[bool] = []
        with httpx.stream(
            "POST", f"{proxy.url}/v1/messages", json=messages_body(), headers=CLAUDE_HEADERS
        ) as response:
            for chunk in response.iter_raw():
                received += chunk
                if b"message_stop" in received and not stop_seen_after_count:
                    stop_seen_after_count.append(counted.is_set())
    assert b"message_stop" in received
    assert stop_seen_after_count == [True]


def test_the_trailguard_token_names_the_developer_and_never_goes_upstream(
    model_server: ModelServer,
) -> None:
    tokens = {"tg_agent_fake_token_0001": "dev_alice"}

    async def identify(token: str | None) -> str | None:
        return tokens.get(token or "")

    with serve_proxy(model_server.url, identify=identify) as proxy:
        for token in ("tg_agent_fake_token_0001", "tg_agent_not_a_token", None):
            headers = CLAUDE_HEADERS | ({"X-Trailguard-Token": token} if token else {})
            httpx.post(f"{proxy.url}/v1/messages", json=messages_body(), headers=headers)
        records = proxy.wait_records(3)
    assert [(r.developer_id, r.token_presented) for r in records] == [
        ("dev_alice", True),
        (None, True),
        (None, False),
    ]
    for upstream_request in model_server.requests:
        assert "x-trailguard-token" not in upstream_request.headers


def split_events(stream: bytes) -> list[bytes]:
    """The SSE events (and comments) of ``stream``, each with its blank line."""
    return [part + b"\n\n" for part in stream.split(b"\n\n") if part]


@pytest.mark.parametrize("through_router", [False, True], ids=["mounted", "router"])
def test_every_chunk_is_forwarded_before_the_upstream_sends_the_next(through_router: bool) -> None:
    """No buffering anywhere: the upstream sends each event only once the client has read the
    one before it (a lock-step that would deadlock, and fail, if the proxy held any back)."""
    events = split_events(MESSAGE_START + REST)
    ends = [len(b"".join(events[: number + 1])) for number in range(len(events))]
    client_has = [threading.Event() for _ in events]
    upstream_waits: list[bool] = []

    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        start_chunked(handler)
        for number, event in enumerate(events):
            send_chunk(handler, event)
            upstream_waits.append(client_has[number].wait(5))
        end_chunks(handler)

    with (
        RawUpstream(respond) as upstream,
        serve_proxy(upstream.url, through_router=through_router) as proxy,
    ):
        received = b""
        with httpx.stream(
            "POST", f"{proxy.url}/v1/messages", json=messages_body(), headers=CLAUDE_HEADERS
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received += chunk
                for number, end in enumerate(ends):
                    if len(received) >= end:
                        client_has[number].set()
        [record] = proxy.wait_records(1)
    assert received == MESSAGE_START + REST
    assert upstream_waits == [True] * len(events)
    assert record.usage == RAW_USAGE
    assert record.error is None


def test_a_slow_token_lookup_does_not_delay_the_first_byte_and_still_names_the_payer() -> None:
    """The token is looked up only when the cost record is made: the first byte is forwarded
    before the lookup returns, and the cost record still carries the developer."""
    lookup_done = threading.Event()
    first_byte_before_lookup: list[bool] = []

    async def identify(token: str | None) -> str | None:
        await asyncio.sleep(0.5)
        lookup_done.set()
        return "dev_alice" if token == "tg_agent_fake_token_0001" else None

    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        start_chunked(handler)
        send_chunk(handler, MESSAGE_START)
        time.sleep(0.7)
        send_chunk(handler, REST)
        end_chunks(handler)

    with (
        RawUpstream(respond) as upstream,
        serve_proxy(upstream.url, identify=identify) as proxy,
    ):
        headers = CLAUDE_HEADERS | {"X-Trailguard-Token": "tg_agent_fake_token_0001"}
        with httpx.stream(
            "POST", f"{proxy.url}/v1/messages", json=messages_body(), headers=headers
        ) as response:
            for _chunk in response.iter_raw():
                if not first_byte_before_lookup:
                    first_byte_before_lookup.append(not lookup_done.is_set())
        records = proxy.wait_records(1)
    assert first_byte_before_lookup == [True]
    assert [(r.developer_id, r.provisional) for r in records] == [("dev_alice", False)]


def test_events_before_message_delta_are_not_held_back_by_the_cost_record() -> None:
    """When message_start and message_delta arrive in one upstream chunk, the part before
    message_delta goes on at once; the rest (message_delta, message_stop) waits for the
    provisional cost record, as the budget guarantee needs."""
    counted = threading.Event()
    seen_before_count: list[bytes] = []

    async def on_record(record: ModelRequestRecord) -> None:
        if record.provisional:
            await asyncio.sleep(0.5)  # a slow ledger commit
            counted.set()

    def respond(handler: BaseHTTPRequestHandler, _: RawRequest) -> None:
        start_chunked(handler)
        send_chunk(handler, MESSAGE_START + REST)  # the whole answer in one chunk
        end_chunks(handler)

    with (
        RawUpstream(respond) as upstream,
        serve_proxy(upstream.url, on_record=on_record) as proxy,
    ):
        received = b""
        with httpx.stream(
            "POST", f"{proxy.url}/v1/messages", json=messages_body(), headers=CLAUDE_HEADERS
        ) as response:
            for chunk in response.iter_raw():
                if not counted.is_set():
                    seen_before_count.append(chunk)
                received += chunk
    early = b"".join(seen_before_count)
    assert counted.is_set()
    assert received == MESSAGE_START + REST
    assert early.startswith(MESSAGE_START)
    assert b"message_delta" not in early
    assert b"message_stop" not in early
