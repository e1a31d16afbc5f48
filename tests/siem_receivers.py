"""Receivers the SIEM tests stream to: Debian's real rsyslog (with rsyslog-gnutls) run as its own
process, and two HTTP receivers written here (a Splunk HEC test double, a webhook receiver).

Certificates are made with the real ``openssl`` command for each test."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from trailguard.siem.http import SIGNATURE_HEADER, verify_signature


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str) -> str:
    """The path of a binary the test needs; missing: a failure under CI, else a skip."""
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if path is None:
        message = f"{name} is not installed (apt-get install rsyslog rsyslog-gnutls openssl)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_until(condition: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed nothing here: the wrong CA to trust."""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([require_binary("openssl"), *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days",
                 "2", "-subj", f"/CN=trailguard test {name}", cwd=directory)  # fmt: skip
    for name, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
                 "/CN=127.0.0.1", cwd=directory)  # fmt: skip
        (directory / f"{name}.ext").write_text(
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
            f"keyUsage=digitalSignature\nextendedKeyUsage={usage}\n"
        )
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                 f"{name}.ext", cwd=directory)  # fmt: skip
    for key in directory.glob("*.key"):
        key.chmod(0o600)
    return Certificates(
        ca=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )


# -- rsyslog ------------------------------------------------------------------------------------

_RSYSLOG_CONF = """
global(workDirectory="{work}" maxMessageSize="1m"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"
       StreamDriver.AuthMode="{auth_mode}" {permitted})
template(name="fields" type="list") {{
  property(name="syslogfacility") constant(value=" ") property(name="syslogseverity")
  constant(value=" ") property(name="app-name") constant(value=" ") property(name="msgid")
  constant(value=" ") property(name="procid") constant(value=" ")
  property(name="timereported" dateFormat="rfc3339") constant(value=" ")
  property(name="msg") constant(value="\\n")
}}
ruleset(name="received") {{
  action(type="omfile" file="{log}" template="fields")
}}
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="received")
"""


class Rsyslog:
    """``rsyslogd -n -f CONF -i PIDFILE`` receiving RFC 5425 syslog over TLS on a loopback port,
    writing each message as ``FACILITY SEVERITY APP-NAME MSGID PROCID TIMESTAMP MSG`` to
    ``received.log``, as rsyslog parsed them."""

    def __init__(self, directory: Path, certificates: Certificates, *, client_auth: bool = False):
        self.binary = require_binary("rsyslogd")
        self.directory = directory
        self.port = free_port()
        self.log = directory / "received.log"
        self.conf = directory / "rsyslog.conf"
        self.pidfile = directory / "rsyslog.pid"
        (directory / "work").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            _RSYSLOG_CONF.format(
                work=directory / "work",
                ca=certificates.ca,
                cert=certificates.server_cert,
                key=certificates.server_key,
                auth_mode="x509/certvalid" if client_auth else "anon",
                permitted="",
                log=self.log,
                port=self.port,
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        output = (self.directory / "rsyslogd.out").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"rsyslogd exited: {(self.directory / 'rsyslogd.out').read_text()[-2000:]}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise AssertionError("rsyslogd did not listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def lines(self) -> list[str]:
        if not self.log.exists():
            return []
        return [line for line in self.log.read_text(errors="replace").splitlines() if line]

    def messages(self) -> list[tuple[str, str, str]]:
        """(app name, msgid, msg) of every message received."""
        return [(app, msgid, msg) for _, _, app, msgid, msg in self.parsed()]

    def parsed(self) -> list[tuple[int, int, str, str, str]]:
        """(facility, severity, app name, msgid, msg) of every message received."""
        found = []
        for line in self.lines():
            facility, severity, app, msgid, _procid, _time, msg = line.split(" ", 6)
            found.append((int(facility), int(severity), app, msgid, msg))
        return found


# -- HTTP receivers ------------------------------------------------------------------------------


class _Server:
    """A threaded HTTP/1.1 server whose ``stop`` also cuts the keep-alive connections it has
    open (as a receiver that goes down does)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        server = self

        class Tracking(self.handler()):  # type: ignore[misc,valid-type]
            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with server._connections_lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._connections_lock:
                    server._connections.discard(self.connection)
                super().finish()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Tracking)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._connections.clear()


def _answer(handler: BaseHTTPRequestHandler, status: int, document: Any) -> None:
    body = json.dumps(document).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@dataclass
class HecState:
    events: list[dict[str, Any]] = field(default_factory=list)
    acks: dict[str, dict[int, bool]] = field(default_factory=dict)
    pending: dict[str, dict[int, list[dict[str, Any]]]] = field(default_factory=dict)
    next_ack: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class HecReceiver(_Server):
    """A TEST DOUBLE of Splunk's HTTP Event Collector (no Splunk can run here), implementing
    its documented protocol: ``POST /services/collector/event`` with ``Authorization: Splunk
    <token>`` (401 code 2 without it, 403 code 4 for a wrong one), a body of concatenated event
    objects each with ``event`` (400 code 12 without), and with indexer acknowledgement the
    ``X-Splunk-Request-Channel`` header (400 code 10 without), an ``ackId`` per request, and
    ``POST /services/collector/ack`` answering ``{"acks": {"<id>": true|false}}``.

    Events count as indexed (``events``) only when their request is acknowledged; with
    ``hold_acks`` they stay pending. ``echo_token`` makes refusals quote the Authorization
    header back, as a hostile or buggy receiver might."""

    def __init__(self, token: str, *, ack: bool = False, port: int | None = None) -> None:
        super().__init__(port)
        self.token = token
        self.ack = ack
        self.hold_acks = False
        self.echo_token = False
        self.refuse_all = False
        self.state = HecState()

    @property
    def events(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.events)

    def release_acks(self) -> None:
        self.hold_acks = False

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Splunk and webhook servers do

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                auth = self.headers.get("Authorization", "")
                if receiver.refuse_all or auth != f"Splunk {receiver.token}":
                    text = "Invalid token" + (f" ({auth})" if receiver.echo_token else "")
                    if not auth:
                        _answer(self, 401, {"text": "Token is required", "code": 2})
                    else:
                        _answer(self, 403, {"text": text, "code": 4})
                    return
                channel = self.headers.get("X-Splunk-Request-Channel")
                if receiver.ack and not channel:
                    _answer(self, 400, {"text": "Data channel is missing", "code": 10})
                    return
                if self.path.startswith("/services/collector/ack"):
                    self._ack(body, channel or "")
                elif self.path.startswith("/services/collector/event"):
                    self._events(body, channel)
                else:
                    _answer(self, 404, {"text": "The requested URL was not found", "code": 404})

            def _events(self, body: bytes, channel: str | None) -> None:
                decoder = json.JSONDecoder()
                text = body.decode()
                position, events = 0, []
                while position < len(text):
                    while position < len(text) and text[position].isspace():
                        position += 1
                    if position >= len(text):
                        break
                    try:
                        event, position = decoder.raw_decode(text, position)
                    except ValueError:
                        _answer(self, 400, {"text": "Invalid data format", "code": 6})
                        return
                    if "event" not in event:
                        _answer(self, 400, {"text": "Event field is required", "code": 12})
                        return
                    if not isinstance(event.get("time"), int | float):
                        _answer(self, 400, {"text": "Invalid data format", "code": 6})
                        return
                    events.append(event)
                if not events:
                    _answer(self, 400, {"text": "No data", "code": 5})
                    return
                state = receiver.state
                with state.lock:
                    state.requests += 1
                    if not receiver.ack:
                        state.events.extend(events)
                        _answer(self, 200, {"text": "Success", "code": 0})
                        return
                    ack_id = state.next_ack
                    state.next_ack += 1
                    state.pending.setdefault(channel or "", {})[ack_id] = events
                _answer(self, 200, {"text": "Success", "code": 0, "ackId": ack_id})

            def _ack(self, body: bytes, channel: str) -> None:
                try:
                    ids = [int(i) for i in json.loads(body)["acks"]]
                except (ValueError, KeyError, TypeError):
                    _answer(self, 400, {"text": "Invalid data format", "code": 6})
                    return
                state = receiver.state
                answer = {}
                with state.lock:
                    pending = state.pending.setdefault(channel, {})
                    for ack_id in ids:
                        if ack_id in pending and not receiver.hold_acks:
                            state.events.extend(pending.pop(ack_id))
                            state.acks.setdefault(channel, {})[ack_id] = True
                        answer[str(ack_id)] = state.acks.get(channel, {}).get(ack_id, False)
                _answer(self, 200, {"acks": answer})

        return Handler


class WebhookReceiver(_Server):
    """A webhook receiver that checks ``X-Trailguard-Signature`` with its own copy of the key
    (``verify_signature``, 5-minute tolerance), answering 401 to a bad or missing signature, and
    keeps every accepted batch. ``delay`` slows each answer; ``status`` forces an answer."""

    def __init__(self, secret: bytes, *, port: int | None = None, delay: float = 0.0) -> None:
        super().__init__(port)
        self.secret = secret
        self.delay = delay
        self.status: int | None = None
        self.batches: list[list[dict[str, Any]]] = []
        self.bodies: list[tuple[bytes, str]] = []
        self.refused = 0
        self._lock = threading.Lock()

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for batch in self.batches for event in batch]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Splunk and webhook servers do

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.status is not None:
                    _answer(self, receiver.status, {"error": "forced"})
                    return
                signature = self.headers.get(SIGNATURE_HEADER, "")
                if not verify_signature(receiver.secret, signature, body):
                    with receiver._lock:
                        receiver.refused += 1
                    _answer(self, 401, {"error": "bad signature"})
                    return
                with receiver._lock:
                    receiver.bodies.append((body, signature))
                    receiver.batches.append(json.loads(body))
                _answer(self, 200, {"ok": True})

        return Handler


def first_occurrences(seqs: list[int]) -> list[int]:
    """``seqs`` with repeats removed, keeping the first time each was seen."""
    seen: set[int] = set()
    order = []
    for seq in seqs:
        if seq not in seen:
            seen.add(seq)
            order.append(seq)
    return order
