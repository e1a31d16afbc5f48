"""Real S3 (ministack) with a recording front, and a test double for CloudTrail.

* ``Ministack``: the ministack S3 server (PyPI) in its own virtual environment under
  ``.cache/ministack`` (its botocore pin differs from ours), installed on first use, started on
  a free loopback port. Under ``CI`` a missing server fails the test instead of skipping it.
* ``RecordingProxy``: an HTTP front that forwards every request to ministack unchanged and
  keeps what AWS would see of it (method, path, query, User-Agent, access key, client address,
  time). The AWS CLI / botocore talk to it as to S3.
* ``cloudtrail_records``: the CloudTrail double. CloudTrail cannot run here, so the records it
  would write for those requests are made from what the proxy saw, in the documented format
  (the User-Agent is the one the client really sent).
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloudtrail_records import ACCOUNT, REGION, cloudtrail_time, user_identity

REPO = Path(__file__).resolve().parents[1]
MINISTACK_PREFIX = REPO / ".cache" / "ministack"
MINISTACK_ENV = "TRAILGUARD_MINISTACK"
AWSCLI_PREFIX = REPO / ".cache" / "awscli"
AWSCLI_ENV = "TRAILGUARD_AWS_CLI"


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _venv_tool(prefix: Path, package: str, executable: str) -> Path:
    """``executable`` from a virtual environment of its own at ``prefix``, made with pip from
    PyPI the first time."""
    binary = prefix / "bin" / executable
    if binary.is_file():
        return binary
    steps = [
        [sys.executable, "-m", "venv", str(prefix)],
        [str(prefix / "bin" / "python"), "-m", "pip", "install", "--quiet", package],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False, timeout=600)
        if done.returncode != 0:
            _unavailable(f"cannot install {package} into {prefix}: {done.stderr[-2000:]}")
    if not binary.is_file():
        _unavailable(f"{package} installed into {prefix} but {binary} is missing")
    return binary


def ministack_binary() -> Path:
    override = os.environ.get(MINISTACK_ENV)
    if override:
        return Path(override)
    return _venv_tool(MINISTACK_PREFIX, "ministack>=1.5,<2", "ministack")


def aws_cli_binary() -> Path:
    """The AWS CLI (v1, from PyPI: v2 is not published there), for the agent's Bash commands."""
    override = os.environ.get(AWSCLI_ENV)
    if override:
        return Path(override)
    return _venv_tool(AWSCLI_PREFIX, "awscli>=1.33", "aws")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Ministack:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path) -> None:
        self.log = log
        env = {**os.environ, "BIND_HOST": "127.0.0.1", "GATEWAY_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [str(ministack_binary())], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/_ministack/health", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        _unavailable(f"ministack did not start on {self.url}: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def s3(self) -> Any:
        """A botocore S3 client on ministack (path-style; ministack takes any credentials)."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="test-secret-not-real",
            config=Config(s3={"addressing_style": "path"}),
        )


@dataclass(frozen=True)
class SeenRequest:
    """What S3 (and so CloudTrail) sees of one request."""

    at: datetime
    method: str
    path: str
    query: dict[str, list[str]]
    user_agent: str
    access_key: str | None
    client: str


_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


class RecordingProxy:
    """Forwards to ``upstream`` and keeps a ``SeenRequest`` of every request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.seen: list[SeenRequest] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urllib.parse.urlsplit(self.path)
                authorization = self.headers.get("Authorization") or ""
                found = _CREDENTIAL.search(authorization)
                proxy.seen.append(
                    SeenRequest(
                        datetime.now(UTC),
                        self.command,
                        urllib.parse.unquote(parts.path),
                        urllib.parse.parse_qs(parts.query, keep_blank_values=True),
                        self.headers.get("User-Agent") or "",
                        found.group(1) if found else None,
                        self.client_address[0],
                    )
                )
                connection = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=60
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.upstream.netloc
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _s3_event_name(request: SeenRequest) -> tuple[str, str | None, str | None]:
    """(eventName, bucket, key) CloudTrail records for an S3 REST request."""
    bucket, _, key = request.path.lstrip("/").partition("/")
    query = request.query
    if not key:
        if request.method == "PUT":
            return "CreateBucket", bucket, None
        if request.method == "DELETE":
            return "DeleteBucket", bucket, None
        if request.method == "HEAD":
            return "HeadBucket", bucket, None
        if request.method == "POST" and "delete" in query:
            return "DeleteObjects", bucket, None
        return ("ListObjects" if bucket else "ListBuckets"), bucket or None, None
    if request.method == "PUT":
        if "partNumber" in query:
            return "UploadPart", bucket, key
        return "PutObject", bucket, key
    if request.method == "POST" and "uploads" in query:
        return "CreateMultipartUpload", bucket, key
    if request.method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload", bucket, key
    if request.method == "DELETE":
        return "DeleteObject", bucket, key
    if request.method == "HEAD":
        return "HeadObject", bucket, key
    return "GetObject", bucket, key


def cloudtrail_records(seen: list[SeenRequest]) -> list[dict[str, Any]]:
    """The CloudTrail data events AWS would record for ``seen`` S3 requests."""
    records = []
    for request in seen:
        name, bucket, key = _s3_event_name(request)
        parameters: dict[str, Any] = {"Host": f"{bucket}.s3.{REGION}.amazonaws.com"}
        resources = []
        if bucket:
            parameters["bucketName"] = bucket
            resources.append(
                {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}
            )
        if key:
            parameters["key"] = key
            resources.insert(0, {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"})
        identity = user_identity()
        identity["accessKeyId"] = request.access_key
        records.append(
            {
                "eventVersion": "1.10",
                "userIdentity": identity,
                "eventTime": cloudtrail_time(request.at),
                "eventSource": "s3.amazonaws.com",
                "eventName": name,
                "awsRegion": REGION,
                "sourceIPAddress": request.client,
                "userAgent": request.user_agent,
                "requestParameters": parameters,
                "responseElements": None,
                "additionalEventData": {"SignatureVersion": "SigV4",
                                        "AuthenticationMethod": "AuthHeader"},
                "requestID": uuid.uuid4().hex[:16].upper(),
                "eventID": str(uuid.uuid4()),
                "readOnly": name.startswith(("Get", "Head", "List")),
                "resources": resources,
                "eventType": "AwsApiCall",
                "managementEvent": False,
                "recipientAccountId": ACCOUNT,
                "eventCategory": "Data",
            }
        )  # fmt: skip
    return records
