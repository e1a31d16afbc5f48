"""The harness of the API proxy tests: the proxy served by uvicorn in a thread (as create_app
mounts it, or through its FastAPI router), upstreams scripted by hand, and a Messages API
stream to send."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from trailguard.capture.anthropic_proxy import (
    AnthropicProxy,
    ModelRequestRecord,
    create_proxy_router,
    mount_proxy,
)

SESSION = "9b1d2c3e-0000-4000-8000-00000000abcd"
API_KEY = "sk-ant-api03-SECRET-key-must-not-leak"
BEARER = "Bearer sk-ant-oat01-SECRET-token-must-not-leak"
CLAUDE_HEADERS = {
    "x-api-key": API_KEY,
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "x-claude-code-session-id": SESSION,
    "user-agent": "claude-cli/2.1.328 (external, sdk-cli)",
}


def messages_body(*, stream: bool = True, tools: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-opus-5-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "list the files"}],
        "stream": stream,
    }
    if tools:
        body["tools"] = [{"name": "Bash", "input_schema": {"type": "object"}}]
    return body


# -- harness -------------------------------------------------------------------------------


@dataclass
class Proxy:
    url: str
    records: list[ModelRequestRecord]

    def wait_records(self, count: int, timeout: float = 5.0) -> list[ModelRequestRecord]:
        deadline = time.monotonic() + timeout
        while len(self.records) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.records)} records after {timeout}s, not {count}")
            time.sleep(0.01)
        time.sleep(0.05)  # a second delivery for the same request would show up here
        return list(self.records)


@contextlib.contextmanager
def serve_proxy(
    upstream: str,
    *,
    on_record: Callable[[ModelRequestRecord], Any] | None = None,
    refuse: Callable[[str | None], str | None] | None = None,
    identify: Any = None,
    through_router: bool = False,
) -> Iterator[Proxy]:
    records: list[ModelRequestRecord] = []

    def keep_complete(record: ModelRequestRecord) -> None:
        if not record.provisional:  # the provisional ones have tests of their own
            records.append(record)

    app = FastAPI()
    if through_router:
        app.include_router(
            create_proxy_router(
                upstream, on_record or keep_complete, refuse=refuse, identify=identify
            )
        )
    else:  # the way create_app serves it
        mount_proxy(
            app,
            AnthropicProxy(upstream, on_record or keep_complete, refuse=refuse, identify=identify),
        )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Proxy(f"http://127.0.0.1:{port}/anthropic", records)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class RawRequest:
    method: str
    target: str  # path and query exactly as received
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


Responder = Callable[[BaseHTTPRequestHandler, RawRequest], None]


@dataclass
class RawUpstream:
    """A tiny HTTP/1.1 upstream whose answer is written by hand (chunks, delays, breaks)."""

    respond: Responder
    requests: list[RawRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> RawUpstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = RawRequest(
                    self.command, self.path, list(self.headers.items()), self.rfile.read(length)
                )
                upstream.requests.append(request)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    upstream.respond(self, request)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_one

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"


def start_chunked(
    handler: BaseHTTPRequestHandler,
    status: int = 200,
    content_type: str = "text/event-stream; charset=utf-8",
    extra: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.send_header("request-id", "req_raw_0001")
    for name, value in (extra or {}).items():
        handler.send_header(name, value)
    handler.end_headers()


def send_chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def end_chunks(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: Any,
    extra: dict[str, str] | None = None,
) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (extra or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def sse(event: str, data: dict[str, Any], newline: str = "\n") -> bytes:
    return f"event: {event}{newline}data: {json.dumps(data)}{newline}{newline}".encode()


MESSAGE_START = sse(
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_raw_0001",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "usage": {
                "input_tokens": 3900,
                "output_tokens": 1,
                "cache_creation_input_tokens": 700,
                "cache_read_input_tokens": 1500,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 200,
                    "ephemeral_1h_input_tokens": 500,
                },
                "service_tier": "standard",
            },
        },
    },
)
REST = b"".join(
    [
        b": ping comment\n\n",
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_raw_A", "name": "Bash"},
            },
        ),
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"command": "ls"}'},
            },
        ),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_raw_B", "name": "Read"},
            },
        ),
        sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 240},
            },
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]
)
RAW_USAGE = {
    "input_tokens": 3900,
    "output_tokens": 240,
    "cache_creation_input_tokens": 700,
    "cache_read_input_tokens": 1500,
    "cache_creation.ephemeral_5m_input_tokens": 200,
    "cache_creation.ephemeral_1h_input_tokens": 500,
}


# -- upstreams that speak raw bytes ----------------------------------------------------------


def read_request(sock: socket.socket, pending: bytearray) -> bytes:
    """One request (head and ``Content-Length`` body) from ``sock``; b"" at the end of the
    connection. ``pending`` keeps what was read past it."""
    while b"\r\n\r\n" not in pending:
        data = sock.recv(65536)
        if not data:
            return b""
        pending += data
    end = pending.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(pending[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(pending) < end + length:
        data = sock.recv(65536)
        if not data:
            return b""
        pending += data
    request = bytes(pending[: end + length])
    del pending[: end + length]
    return request


@dataclass
class SocketUpstream:
    """A TCP (or, with ``tls``, TLS) upstream whose every byte is the test's: ``script(sock,
    number)`` runs in a thread for each connection (``number`` counts them from 0)."""

    script: Callable[[socket.socket, int], None]
    tls: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    _listener: socket.socket | None = None
    _port: int = 0

    def __enter__(self) -> SocketUpstream:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            number = self.connections
            self.connections += 1
            threading.Thread(target=self._run, args=(sock, number), daemon=True).start()

    def _run(self, sock: socket.socket, number: int) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            self.script(sock, number)
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()

    def read(self, sock: socket.socket, pending: bytearray) -> bytes:
        request = read_request(sock, pending)
        if request:
            self.requests.append(request)
        return request

    def __exit__(self, *exc: object) -> None:
        assert self._listener is not None
        self._listener.close()

    @property
    def url(self) -> str:
        assert self._listener is not None
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port}"


def sse_response(body: bytes = MESSAGE_START + REST, extra: bytes = b"") -> bytes:
    """A complete chunked SSE answer, as one piece of bytes."""
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nrequest-id: req_sock_1\r\n"
        + extra
        + b"transfer-encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )


def json_response(payload: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
    )


# -- TLS -------------------------------------------------------------------------------------


@dataclass
class Certificates:
    ca_file: Path
    server: ssl.SSLContext


def make_certificates(directory: Path, *, names: tuple[str, ...] = ("127.0.0.1",)) -> Certificates:
    """A throwaway CA and a server certificate it signs for ``names`` (IP addresses or DNS
    names), made with ``cryptography``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None
    ) -> x509.CertificateBuilder:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        certificate("trailguard test CA (fake)", ca_key, None)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alternative: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    server_cert = (
        certificate(names[0], key, ca_cert.subject)
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return Certificates(ca_file, server)


# -- the proxy as a plain ASGI app -----------------------------------------------------------


@dataclass
class AsgiAnswer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


async def call_asgi(
    app: Any,
    method: str,
    raw_path: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    query: bytes = b"",
) -> AsgiAnswer:
    """One request straight into an ASGI app (no server in front to clean the headers up)."""
    from urllib.parse import unquote_to_bytes

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote_to_bytes(raw_path).decode("latin-1"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8787),
    }
    answered = asyncio.Event()
    sent_body = False
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    await app(scope, receive, send)
    start = messages[0]
    return AsgiAnswer(
        start["status"],
        list(start.get("headers", [])),
        b"".join(m.get("body", b"") for m in messages[1:]),
    )
