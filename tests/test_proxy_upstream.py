"""The API proxy's upstream client (trailguard.capture.upstream) and its way in: connection reuse,
flow control, timeouts, TLS, environment proxies; and what a hostile upstream or a hostile agent
can try on it (response desync, header injection, request smuggling, response splitting)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from proxy_harness import (
    CLAUDE_HEADERS,
    MESSAGE_START,
    RAW_USAGE,
    REST,
    RawRequest,
    RawUpstream,
    SocketUpstream,
    call_asgi,
    json_response,
    make_certificates,
    messages_body,
    send_json,
    serve_proxy,
    sse_response,
)
from trailguard.capture import anthropic_proxy
from trailguard.capture.anthropic_proxy import AnthropicProxy, ModelRequestRecord
from trailguard.capture.upstream import (
    LocalProtocolError,
    PoolTimeout,
    ReadTimeout,
    Timeouts,
    environment_proxy,
    open_upstream,
)
from trailguard.capture.upstream.http1 import READ_PAUSE_BYTES, HTTP1Upstream
from trailguard.capture.upstream.via_httpx import HttpxUpstream
from trailguard.cost.budgets import BudgetConfig, BudgetTracker
from trailguard.gateway.costs import CostRecorder, today
from trailguard.store.state import SessionSummary

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' upstreams are on 127.0.0.1: no proxy of the machine running them applies."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def answer_every_request(upstream_ref: list[SocketUpstream], answer: bytes) -> Any:
    def script(sock: socket.socket, _number: int) -> None:
        pending = bytearray()
        while upstream_ref[0].read(sock, pending):
            sock.sendall(answer)

    return script


def post(proxy_url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{proxy_url}/v1/messages?beta=true",
        json=messages_body(),
        headers=CLAUDE_HEADERS,
        timeout=10,
        trust_env=False,  # this client talks to the proxy directly, whatever the environment
        **kwargs,
    )


# -- connections -----------------------------------------------------------------------------


def test_requests_share_one_kept_alive_upstream_connection() -> None:
    ref: list[SocketUpstream] = []
    with SocketUpstream(answer_every_request(ref, sse_response())) as upstream:
        ref.append(upstream)
        with serve_proxy(upstream.url) as proxy:
            answers = [post(proxy.url) for _ in range(3)]
            records = proxy.wait_records(3)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.content == MESSAGE_START + REST for a in answers)
    assert len(upstream.requests) == 3
    assert upstream.connections == 1
    assert [r.usage for r in records] == [RAW_USAGE] * 3


def test_a_connection_the_upstream_closes_is_not_used_again() -> None:
    def script(sock: socket.socket, _number: int) -> None:
        if upstream.read(sock, bytearray()):
            sock.sendall(sse_response(extra=b"connection: close\r\n"))

    with SocketUpstream(script) as upstream, serve_proxy(upstream.url) as proxy:
        answers = [post(proxy.url) for _ in range(2)]
        proxy.wait_records(2)
    assert [a.status_code for a in answers] == [200, 200]
    assert upstream.connections == 2


def test_the_body_may_end_with_the_connection() -> None:
    payload = json.dumps({"type": "message", "id": "msg_close_1", "usage": {"input_tokens": 5}})

    def script(sock: socket.socket, _number: int) -> None:
        if upstream.read(sock, bytearray()):
            sock.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + payload.encode()
            )

    with SocketUpstream(script) as upstream, serve_proxy(upstream.url) as proxy:
        first = post(proxy.url)
        second = post(proxy.url)
        records = proxy.wait_records(2)
    assert first.content == second.content == payload.encode()
    assert records[0].message_id == "msg_close_1"
    assert records[0].error is None
    assert upstream.connections == 2  # such a connection cannot carry another answer


def test_an_interim_103_answer_is_not_the_answer() -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
    ref: list[SocketUpstream] = []
    with SocketUpstream(answer_every_request(ref, hints + sse_response())) as upstream:
        ref.append(upstream)
        with serve_proxy(upstream.url) as proxy:
            answers = [post(proxy.url) for _ in range(2)]
            proxy.wait_records(2)
    assert [a.status_code for a in answers] == [200, 200]
    assert "link" not in answers[0].headers
    assert answers[0].content == MESSAGE_START + REST
    assert upstream.connections == 1


# -- a hostile upstream ----------------------------------------------------------------------


def test_bytes_after_a_response_never_answer_the_next_request() -> None:
    """Response desync: the upstream plants a second, unasked-for response behind the first
    (the answer another agent's next request would otherwise read). The connection is dropped;
    the next request gets its own answer on a new connection."""
    planted = json_response(b'{"planted": "by the upstream"}')

    def script(sock: socket.socket, number: int) -> None:
        pending = bytearray()
        while upstream.read(sock, pending):
            answer = json_response(b'{"answer": %d}' % len(upstream.requests))
            sock.sendall(answer + planted if number == 0 else answer)

    with SocketUpstream(script) as upstream, serve_proxy(upstream.url) as proxy:
        first = post(proxy.url)
        second = post(proxy.url)
        proxy.wait_records(2)
    assert first.json() == {"answer": 1}
    assert second.json() == {"answer": 2}
    assert upstream.connections == 2


def test_bytes_on_an_idle_connection_close_it() -> None:
    """The same plant, sent while the connection waits in the pool."""
    client_has_it = threading.Event()
    connection_closed = threading.Event()

    def script(sock: socket.socket, number: int) -> None:
        pending = bytearray()
        if not upstream.read(sock, pending):
            return
        sock.sendall(json_response(b'{"answer": %d}' % len(upstream.requests)))
        if number == 0:
            client_has_it.wait(5)
            sock.sendall(json_response(b'{"planted": "by the upstream"}'))
            if sock.recv(1) == b"":  # the proxy hung up
                connection_closed.set()

    with SocketUpstream(script) as upstream, serve_proxy(upstream.url) as proxy:
        first = post(proxy.url)
        proxy.wait_records(1)
        client_has_it.set()
        assert connection_closed.wait(5)
        second = post(proxy.url)
    assert first.json() == {"answer": 1}
    assert second.json() == {"answer": 2}
    assert upstream.connections == 2


HOSTILE_ANSWERS = {
    "length and chunked": b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked"
    b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "control character": b"HTTP/1.1 200 OK\r\nx-evil: a\x01b\r\ncontent-length: 2\r\n\r\nok",
    "bare CR splitting a header": b"HTTP/1.1 200 OK\r\nx-evil: a\rset-cookie: planted=1\r\n"
    b"content-length: 2\r\n\r\nok",
    "bare LF splitting a header": b"HTTP/1.1 200 OK\r\nx-evil: a\nset-cookie: planted=1\r\n"
    b"content-length: 2\r\n\r\nok",
    "status 999": b"HTTP/1.1 999 Whatever\r\ncontent-length: 2\r\n\r\nok",
    "protocol switch": b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
    b"connection: upgrade\r\n\r\n",
    "head of 200 KB": b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 200_000 + b"\r\n"
    b"content-length: 2\r\n\r\nok",
    "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n",
    "no answer": b"",
}


@pytest.mark.parametrize("answer", HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_a_malformed_upstream_answer_is_a_502_and_never_forwarded(answer: bytes) -> None:
    def script(sock: socket.socket, _number: int) -> None:
        if upstream.read(sock, bytearray()):
            sock.sendall(answer)

    with SocketUpstream(script) as upstream, serve_proxy(upstream.url) as proxy:
        response = post(proxy.url)
        [record] = proxy.wait_records(1)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "api_error"
    assert "could not reach the upstream" in response.json()["error"]["message"]
    assert "set-cookie" not in response.headers
    assert "x-evil" not in response.headers
    assert b"planted" not in response.content
    assert record.status == 502
    assert record.error is not None


def test_a_fixed_length_body_cut_short_is_not_passed_off_as_complete() -> None:
    def script(sock: socket.socket, _number: int) -> None:
        if upstream.read(sock, bytearray()):
            sock.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n"
                b'\r\n{"type": "mess'
            )

    with SocketUpstream(script) as upstream, serve_proxy(upstream.url) as proxy:
        with pytest.raises(httpx.RemoteProtocolError):
            post(proxy.url)
        [record] = proxy.wait_records(1)
    assert record.error is not None
    assert "broke" in record.error


def test_reading_pauses_while_nobody_takes_the_body() -> None:
    """Flow control: the proxy keeps at most about READ_PAUSE_BYTES of a body nobody has taken
    (TCP holds the rest back in the upstream), and then passes every byte on."""
    size = 48 * 1024 * 1024
    wrote_all = threading.Event()

    def script(sock: socket.socket, _number: int) -> None:
        if upstream.read(sock, bytearray()):
            sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
            sock.sendall(b"x" * size)
            wrote_all.set()

    async def main() -> tuple[bool, int, int]:
        client = HTTP1Upstream(upstream.url)
        response = await client.send("GET", "v1/files/big", b"", [], b"")
        chunks = response.chunks()
        received = len(await anext(chunks))
        await asyncio.sleep(0.5)  # ample time for the upstream to push everything, if it could
        held = response._buffered
        finished_unread = wrote_all.is_set()
        async for chunk in chunks:
            received += len(chunk)
        await response.aclose()
        await client.aclose()
        return finished_unread, held, received

    with SocketUpstream(script) as upstream:
        finished_unread, held, received = asyncio.run(main())
        assert wrote_all.wait(5)
    assert not finished_unread
    assert held < READ_PAUSE_BYTES + 1024 * 1024
    assert received == size


def test_every_connection_busy_is_a_pool_timeout_and_a_closed_one_frees_its_place() -> None:
    release = threading.Event()

    def script(sock: socket.socket, number: int) -> None:
        pending = bytearray()
        if not upstream.read(sock, pending):
            return
        if number == 0:  # the head, then nothing until the test is done
            sock.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            release.wait(10)
            return
        sock.sendall(json_response(b"{}"))

    async def main() -> tuple[type[Exception] | None, int]:
        client = HTTP1Upstream(upstream.url, max_connections=1, timeouts=Timeouts(pool=0.2))
        held = await client.send("GET", "held", b"", [], b"")
        failure: type[Exception] | None = None
        try:
            await client.send("GET", "second", b"", [], b"")
        except PoolTimeout as exc:
            failure = type(exc)
        await held.aclose()  # not read to its end: closed, not kept
        third = await client.send("GET", "third", b"", [], b"")
        status = third.status
        await third.aclose()
        await client.aclose()
        return failure, status

    with SocketUpstream(script) as upstream:
        failure, status = asyncio.run(main())
        release.set()
    assert failure is PoolTimeout
    assert status == 200
    assert upstream.connections == 2


def test_an_upstream_silent_between_chunks_is_a_read_timeout() -> None:
    release = threading.Event()

    def script(sock: socket.socket, _number: int) -> None:
        if upstream.read(sock, bytearray()):
            sock.sendall(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"%x\r\n%s\r\n" % (len(MESSAGE_START), MESSAGE_START)
            )
            release.wait(10)

    async def main() -> tuple[bytes, type[Exception] | None]:
        client = HTTP1Upstream(upstream.url, timeouts=Timeouts(read=0.2))
        response = await client.send("POST", "v1/messages", b"", [], b"{}")
        received = b""
        failure: type[Exception] | None = None
        try:
            async for chunk in response.chunks():
                received += chunk
        except ReadTimeout as exc:
            failure = type(exc)
        await response.aclose()
        await client.aclose()
        return received, failure

    with SocketUpstream(script) as upstream:
        received, failure = asyncio.run(main())
        release.set()
    assert received == MESSAGE_START
    assert failure is ReadTimeout


# -- a hostile agent -------------------------------------------------------------------------


def run_asgi(upstream_url: str, *requests: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """``requests`` (keyword arguments of call_asgi) straight into an AnthropicProxy, in turn."""
    records: list[ModelRequestRecord] = []

    async def main() -> list[Any]:
        proxy = AnthropicProxy(upstream_url, lambda r: None if r.provisional else records.append(r))
        try:
            return [await call_asgi(proxy, **request) for request in requests]
        finally:
            await proxy.aclose()

    return asyncio.run(main()), records


INJECTING_HEADERS = {
    "CRLF in a value": (b"x-custom", b"ok\r\nx-injected: 1"),
    "LF in a value": (b"x-custom", b"ok\nx-injected: 1"),
    "NUL in a value": (b"x-custom", b"ok\x00"),
    "space in a name": (b"x custom", b"ok"),
    "colon in a name": (b"x-custom:", b"ok"),
    "CRLF in a name": (b"x-custom\r\nx-injected", b"1"),
    "empty name": (b"", b"ok"),
}


@pytest.mark.parametrize("header", INJECTING_HEADERS.values(), ids=INJECTING_HEADERS.keys())
def test_a_header_that_would_inject_another_is_refused_before_the_upstream(
    header: tuple[bytes, bytes],
) -> None:
    with SocketUpstream(lambda sock, number: None) as upstream:
        [answer], records = run_asgi(
            upstream.url,
            {
                "method": "POST",
                "raw_path": b"/anthropic/v1/messages",
                "headers": [(b"content-type", b"application/json"), header],
                "body": b"{}",
            },
        )
    assert answer.status == 400
    assert json.loads(answer.body)["error"]["type"] == "invalid_request_error"
    assert upstream.connections == 0
    assert records[0].status == 400


def test_framing_headers_from_the_agent_never_reach_the_upstream() -> None:
    """Request smuggling: the agent's Host, Content-Length, Transfer-Encoding and Connection
    are dropped; the client writes one Host and one Content-Length of the body it really
    forwards, so the request after it on the same connection is read as sent."""
    ref: list[SocketUpstream] = []
    with SocketUpstream(answer_every_request(ref, json_response(b"{}"))) as upstream:
        ref.append(upstream)
        smuggling = [
            (b"host", b"evil.example"),
            (b"content-length", b"999"),
            (b"transfer-encoding", b"chunked"),
            (b"connection", b"close"),
            (b"x-kept", b"yes"),
        ]
        answers, _ = run_asgi(
            upstream.url,
            {
                "method": "POST",
                "raw_path": b"/anthropic/v1/messages",
                "headers": smuggling,
                "body": b'{"a":1}\r\n\r\nGET /admin HTTP/1.1\r\n\r\n',
            },
            {
                "method": "POST",
                "raw_path": b"/anthropic/v1/messages",
                "headers": [],
                "body": b'{"b":2}',
            },
        )
    assert [a.status for a in answers] == [200, 200]
    assert upstream.connections == 1
    first, second = upstream.requests
    head, _, body = first.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/messages HTTP/1.1"
    fields = [line.split(b":", 1)[0].lower() for line in lines[1:]]
    assert fields.count(b"host") == 1
    assert fields.count(b"content-length") == 1
    assert b"transfer-encoding" not in fields
    assert b"connection" not in fields
    assert f"host: {upstream.url.removeprefix('http://')}".encode() in lines
    assert b"content-length: %d" % len(body) in lines
    assert body == b'{"a":1}\r\n\r\nGET /admin HTTP/1.1\r\n\r\n'
    assert b"x-kept: yes" in lines
    assert second.startswith(b"POST /v1/messages HTTP/1.1\r\n")
    assert second.endswith(b'\r\n\r\n{"b":2}')


def test_a_chunked_upload_reaches_the_upstream_with_its_length() -> None:
    body = json.dumps(messages_body()).encode()
    ref: list[SocketUpstream] = []
    with SocketUpstream(answer_every_request(ref, sse_response())) as upstream:
        ref.append(upstream)
        with serve_proxy(upstream.url) as proxy:
            response = httpx.post(
                f"{proxy.url}/v1/messages",
                content=iter([body[:10], body[10:]]),  # sent chunked
                headers=CLAUDE_HEADERS,
                timeout=10,
            )
            proxy.wait_records(1)
    assert response.status_code == 200
    [request] = upstream.requests
    head, _, forwarded = request.partition(b"\r\n\r\n")
    assert forwarded == body
    assert b"content-length: %d" % len(body) in head.split(b"\r\n")
    assert b"transfer-encoding" not in head.lower()


def test_path_and_query_bytes_cannot_break_the_request_line() -> None:
    ref: list[SocketUpstream] = []
    with SocketUpstream(answer_every_request(ref, json_response(b"{}"))) as upstream:
        ref.append(upstream)
        [answer], _ = run_asgi(
            upstream.url,
            {
                "method": "GET",
                "raw_path": b"/anthropic/v1/mod els\r\nx-injected: 1",
                "query": b"a=1 2\r\nx-also: 1",
                "headers": [],
            },
        )
    assert answer.status == 200
    [request] = upstream.requests
    head = request.partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == (b"GET /v1/mod%20els%0D%0Ax-injected:%201?a=1%202%0D%0Ax-also:%201 HTTP/1.1")
    assert not any(line.lower().startswith((b"x-injected", b"x-also")) for line in head)


def test_methods_outside_the_proxied_ones_never_reach_the_upstream() -> None:
    with SocketUpstream(lambda sock, number: None) as upstream, serve_proxy(upstream.url) as p:
        answer = httpx.request("TRACE", f"{p.url}/v1/messages")
    assert answer.status_code == 405
    assert upstream.connections == 0


# -- TLS ------------------------------------------------------------------------------------


def test_a_tls_upstream_is_verified_and_its_connection_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificates = make_certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca_file))
    ref: list[SocketUpstream] = []
    script = answer_every_request(ref, sse_response())
    with SocketUpstream(script, tls=certificates.server) as upstream:
        ref.append(upstream)
        with serve_proxy(upstream.url) as proxy:
            answers = [post(proxy.url) for _ in range(2)]
            proxy.wait_records(2)
    assert upstream.url.startswith("https://")
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].content == MESSAGE_START + REST
    assert upstream.connections == 1  # one handshake for both


@pytest.mark.parametrize(
    ("trusted", "names"),
    [(False, ("127.0.0.1",)), (True, ("localhost",))],
    ids=["unknown CA", "another host's certificate"],
)
def test_a_tls_upstream_that_does_not_verify_is_never_sent_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted: bool, names: tuple[str, ...]
) -> None:
    certificates = make_certificates(tmp_path, names=names)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca_file))
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    ref: list[SocketUpstream] = []
    script = answer_every_request(ref, sse_response())
    with SocketUpstream(script, tls=certificates.server) as upstream:
        ref.append(upstream)
        with serve_proxy(upstream.url) as proxy:
            answer = post(proxy.url)
            proxy.wait_records(1)
    assert answer.status_code == 502
    assert "CERTIFICATE_VERIFY_FAILED" in answer.json()["error"]["message"]
    assert upstream.requests == []


# -- which client ---------------------------------------------------------------------------


def test_which_client_serves_an_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_upstream("https://api.anthropic.com"), HTTP1Upstream)
    assert isinstance(open_upstream("http://user:pw@127.0.0.1:9"), HttpxUpstream)
    assert isinstance(
        open_upstream("http://127.0.0.1:9", client=httpx.AsyncClient()), HttpxUpstream
    )
    monkeypatch.setenv("https_proxy", "http://egress.example:3128")
    assert environment_proxy("https://api.anthropic.com")
    assert not environment_proxy("http://127.0.0.1:9")  # only https goes through it
    assert isinstance(open_upstream("https://api.anthropic.com"), HttpxUpstream)
    monkeypatch.setenv("no_proxy", "anthropic.com")
    assert not environment_proxy("https://api.anthropic.com")
    monkeypatch.setenv("all_proxy", "http://egress.example:3128")
    assert environment_proxy("http://127.0.0.1:9")


def test_an_environment_proxy_carries_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY of the gateway host: the request goes to it, in absolute form (httpx)."""

    def respond(handler: BaseHTTPRequestHandler, _request: RawRequest) -> None:
        send_json(handler, 200, {"via": "egress proxy"})

    with RawUpstream(respond) as egress:
        monkeypatch.setenv("http_proxy", egress.url)
        with serve_proxy("http://upstream.invalid:8080") as proxy:
            answer = post(proxy.url)
            proxy.wait_records(1)
    assert answer.json() == {"via": "egress proxy"}
    [request] = egress.requests
    assert request.target == "http://upstream.invalid:8080/v1/messages?beta=true"
    assert request.header("x-trailguard-token") is None


# -- the way in -----------------------------------------------------------------------------


def test_a_crash_in_the_proxy_is_answered_and_recorded_by_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ProxyDispatch sits inside Starlette's ServerErrorMiddleware: an exception in the proxy
    still reaches the gateway's handler, which answers 500 and records an internal_error."""
    from trailguard.gateway.app import create_app
    from trailguard.ledger.writer import Ledger

    def broken(self: Any, status: int, headers: Any) -> None:
        raise RuntimeError("a bug in the proxy")

    monkeypatch.setattr(anthropic_proxy._Capture, "prepare", broken)
    ref: list[SocketUpstream] = []
    with SocketUpstream(answer_every_request(ref, sse_response())) as upstream:
        ref.append(upstream)
        app = create_app(Ledger.open(tmp_path / "ledger"), anthropic_upstream=upstream.url)
        alerts: list[Any] = []
        services = app.state.gateway

        async def record_alert(alert: Any, **_kwargs: Any) -> None:
            alerts.append(alert)

        monkeypatch.setattr(services, "record_alert", record_alert)
        with TestClient(app, raise_server_exceptions=False) as client:
            answer = client.post("/anthropic/v1/messages", json=messages_body())
    assert answer.status_code == 500
    assert [a.alert_type for a in alerts] == ["internal_error"]
    assert "RuntimeError" in alerts[0].message


def test_the_budget_refusal_of_the_gateway_still_comes_first(tmp_path: Path) -> None:
    """Through create_app (ProxyDispatch): an exhausted session budget answers 402 and the
    upstream is never contacted."""
    from trailguard.gateway.app import create_app
    from trailguard.ledger.writer import Ledger
    from trailguard.store.gateway_state import GatewayState

    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir)
    state = GatewayState(data_dir)
    token, _ = state.create_token("dev_alice", "agent")
    state.close()
    headers = CLAUDE_HEADERS | {"X-Trailguard-Token": token}

    ref: list[SocketUpstream] = []
    usage = (
        b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":900000}}\n\n'
    )
    start = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_b1",'
        b'"model":"claude-opus-5-5","usage":{"input_tokens":900000,"output_tokens":1}}}\n\n'
    )
    with SocketUpstream(answer_every_request(ref, sse_response(start + usage))) as upstream:
        ref.append(upstream)
        app = create_app(
            ledger,
            anthropic_upstream=upstream.url,
            budgets=BudgetConfig(session_usd=Decimal("1.0")),
        )
        with TestClient(app) as client:
            first = client.post("/anthropic/v1/messages", json=messages_body(), headers=headers)
            second = client.post("/anthropic/v1/messages", json=messages_body(), headers=headers)
    assert first.status_code == 200
    assert second.status_code == 402
    assert second.json()["error"]["type"] == "billing_error"
    assert len(upstream.requests) == 1


def test_the_client_writes_host_and_length_itself_whatever_its_caller_passes() -> None:
    async def main() -> list[str]:
        client = HTTP1Upstream("http://127.0.0.1:9")
        refused: list[str] = []
        for header in ((b"Host", b"evil.example"), (b"content-length", b"5")):
            try:
                await client.send("POST", "v1/messages", b"", [header], b"{}")
            except LocalProtocolError as exc:
                refused.append(str(exc))
        return refused

    assert asyncio.run(main()) == [
        "header 'Host' is the client's to write",
        "header 'content-length' is the client's to write",
    ]


class CountingSessions:
    def __init__(self, summary: SessionSummary) -> None:
        self.summary = summary
        self.lookups = 0

    def get(self, session_id: str) -> SessionSummary | None:
        self.lookups += 1
        return self.summary if session_id == self.summary.session_id else None


@pytest.mark.parametrize(
    ("config", "lookups"),
    [
        (BudgetConfig(session_usd=Decimal("1")), 0),
        (BudgetConfig(), 0),
        (BudgetConfig(developer_day_usd=Decimal("1")), 1),
        (BudgetConfig(project_day_usd=Decimal("1")), 1),
    ],
    ids=["session budget", "no budget", "developer budget", "project budget"],
)
def test_the_refusal_looks_the_session_up_only_for_its_owners_budgets(
    config: BudgetConfig, lookups: int
) -> None:
    """The proxy's budget check asks for the session's owner and project only when a daily
    budget of theirs exists; either way an exhausted budget refuses."""
    summary = SessionSummary(
        "sess_budget", "dev_alice", "proj_backend", None, "2026-12-03T00:00:00Z", None, None,
        None, False,
    )  # fmt: skip
    sessions = CountingSessions(summary)
    tracker = BudgetTracker(config)
    # refusal() needs the sessions and the budgets only
    recorder = CostRecorder(None, sessions, None, tracker, None)
    assert recorder.refusal("sess_budget") is None
    assert sessions.lookups == lookups
    tracker.add(
        Decimal("2"),
        session_id="sess_budget",
        developer_id="dev_alice",
        project_id="proj_backend",
        day=today(),
    )
    refusal = recorder.refusal("sess_budget")
    assert (refusal is not None) == (config != BudgetConfig())
