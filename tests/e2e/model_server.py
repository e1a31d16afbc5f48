"""A scripted Anthropic Messages API server for driving the real Claude Code CLI in tests.

Standard library only. The server runs ``http.server.ThreadingHTTPServer`` in a background
thread and answers each *main* model request from a script of :class:`Turn` objects::

    script = [
        Turn(tool_calls=[ToolCall("Bash", {"command": "echo hi", "description": "say hi"})]),
        Turn(text="All done."),
    ]
    with ModelServer(script) as server:
        run_claude(..., model_url=server.url)
        assert "hi" in server.tool_results()[0].content

Routing (what Claude Code 2.1.328 sends in ``-p`` mode, observed against the real binary):

* ``POST /v1/messages?beta=true`` with a non-empty ``tools`` list: a main agent turn. The next
  scripted :class:`Turn` answers it; once the script is exhausted every main request gets the
  final text turn ``"done"`` (``end_turn``).
* ``POST /v1/messages`` without ``tools``: a side request (session title, topic detection, ...).
  It is answered with a short text turn and does not consume the script.
* ``POST /v1/messages/count_tokens``: ``{"input_tokens": 10}``.
* ``HEAD``/``GET /api/hello``: 200. Claude Code sends ``HEAD /api/hello`` (user agent
  ``Bun/1.4.4``) as a connectivity probe when ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`` is
  not set; a 404 there did not disturb the session either.
* Anything else (e.g. ``GET /v1/models``, ``/api/oauth/...``): 404 with an Anthropic-style error
  body. With ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` a ``-p`` session sent nothing but
  main model requests: no side requests, no count_tokens, no ``/v1/models``.

Main requests carry headers ``x-claude-code-session-id`` (= the final JSON's ``session_id``),
``user-agent: claude-cli/2.1.328 (external, sdk-cli)``, ``x-api-key``, ``anthropic-version:
2023-06-01``, ``anthropic-beta`` (claude-code-20250219, interleaved-thinking, ...), ``x-app: cli``
and ``x-stainless-*``; bodies have ``model`` (default ``claude-opus-5-5``), ``max_tokens``,
``messages``, ``system``, ``tools``, ``thinking``, ``output_config``, ``context_management``,
``metadata`` and ``stream: true``. ``messages`` may contain ``role: "system"`` entries (the
environment block is sent as one), so do not assume strict user/assistant alternation.

Requests with ``"stream": true`` (Claude Code always streams) get an SSE stream: ``message_start``,
then ``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` per block,
``message_delta`` (stop_reason, usage) and ``message_stop``. The whole stream is sent at once with
a ``Content-Length``, which is valid SSE and keeps HTTP/1.1 keep-alive simple. ``message_start``
carries the turn's input and cache token counts, ``message_delta`` its ``output_tokens``; Claude
Code adds these up per turn (checked: 3,900 input + 240 output + 1,500 cache-read tokens on
``claude-opus-5-5`` gave ``total_cost_usd`` 0.0207).

Every request is recorded in :attr:`ModelServer.requests` (thread-safe snapshot).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import secrets
import string
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "FINAL_TEXT",
    "SIDE_TEXT",
    "ModelServer",
    "RecordedRequest",
    "ToolCall",
    "ToolResultRecord",
    "Turn",
    "Usage",
    "new_message_id",
    "new_tool_use_id",
]

FINAL_TEXT = "done"
SIDE_TEXT = "Scripted test session"

_ALNUM = string.ascii_letters + string.digits


def _random_alnum(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_tool_use_id() -> str:
    """An id shaped like the real API's: ``toolu_`` + 24 alphanumerics."""
    return "toolu_" + _random_alnum(24)


def new_message_id() -> str:
    return "msg_" + _random_alnum(24)


@dataclass(frozen=True)
class Usage:
    """Token usage reported for one model turn (Claude Code prices the session from it)."""

    input_tokens: int = 100
    output_tokens: int = 20
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }


@dataclass
class ToolCall:
    """One ``tool_use`` block. ``id`` is generated (``toolu_...``) when not given."""

    name: str
    input: dict[str, Any]
    id: str = field(default_factory=new_tool_use_id)


@dataclass
class Turn:
    """The model's answer to the next main request.

    ``tool_calls`` produce one assistant message with one ``tool_use`` block per call
    (stop_reason ``tool_use``); ``text`` alone ends the turn (``end_turn``). Both together give a
    text block followed by the tool calls. ``delay`` (seconds) is slept before answering.
    """

    tool_calls: list[ToolCall] = field(default_factory=list)
    text: str | None = None
    usage: Usage = field(default_factory=Usage)
    delay: float = 0.0
    before: Callable[[], None] | None = None
    """Run before this turn is answered (e.g. stop the gateway mid-session)."""
    message_id: str | None = None
    """The message's ``id`` (generated when not given), for a test that must know it first."""
    request_id: str | None = None
    """The ``request-id`` response header (generated when not given)."""

    def __post_init__(self) -> None:
        if not self.tool_calls and self.text is None:
            raise ValueError("a Turn needs tool_calls or text")

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tool_calls else "end_turn"

    def content_blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.text is not None:
            blocks.append({"type": "text", "text": self.text})
        for call in self.tool_calls:
            blocks.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
            )
        return blocks


class ToolResultRecord(NamedTuple):
    """A ``tool_result`` block the client sent back (content flattened to text)."""

    tool_use_id: str
    content: str
    is_error: bool


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or the raw text if it was not JSON, or None
    kind: str  # "main", "side", "count_tokens" or "other"
    received_at: float
    turn_index: int | None = None  # index into the script for main requests (None = past it)
    tool_results: list[ToolResultRecord] = field(default_factory=list)
    response: dict[str, Any] | None = None  # the message we answered with

    @property
    def has_tool_results(self) -> bool:
        return bool(self.tool_results)

    @property
    def session_id(self) -> str | None:
        return self.headers.get("x-claude-code-session-id")

    # The brief asks for "bodies + headers"; allow dict-style access too.
    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def _flatten_tool_result_content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                else:
                    parts.append(f"[{block.get('type', 'block')}]")
            else:
                parts.append(str(block))
        return "\n".join(parts)
    return json.dumps(content)


def _new_tool_results(body: Any) -> list[ToolResultRecord]:
    """tool_result blocks sent after the last assistant message (older ones were already seen).

    Claude Code 2.1.328 may interleave ``role: "system"`` messages, so every message after the
    last assistant message is searched, not just the last one.
    """
    if not isinstance(body, dict):
        return []
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last_assistant = max(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1
    )
    results = []
    for message in messages[last_assistant + 1 :]:
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        results.extend(
            ToolResultRecord(
                tool_use_id=str(block.get("tool_use_id", "")),
                content=_flatten_tool_result_content(block.get("content")),
                is_error=bool(block.get("is_error", False)),
            )
            for block in content
            if isinstance(block, dict) and block.get("type") == "tool_result"
        )
    return results


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _chunks(text: str, size: int) -> Iterator[str]:
    if not text:
        yield ""
        return
    for start in range(0, len(text), size):
        yield text[start : start + size]


def message_json(turn: Turn, model: str) -> dict[str, Any]:
    """The non-streaming response body for ``turn``."""
    return {
        "id": turn.message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": turn.content_blocks(),
        "stop_reason": turn.stop_reason,
        "stop_sequence": None,
        "usage": turn.usage.as_dict(),
    }


def message_sse(message: dict[str, Any]) -> bytes:
    """The SSE stream equivalent of a complete ``message`` (as built by :func:`message_json`)."""
    usage = message["usage"]
    start_usage = dict(usage, output_tokens=1)
    out = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": dict(
                    message, content=[], stop_reason=None, stop_sequence=None, usage=start_usage
                ),
            },
        ),
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            out.append(
                _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            for piece in _chunks(block["text"], 40):
                out.append(
                    _sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
                )
        else:
            out.append(
                _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": block["id"],
                            "name": block["name"],
                            "input": {},
                        },
                    },
                )
            )
            for piece in _chunks(json.dumps(block["input"]), 40):
                out.append(
                    _sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                )
        out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    out.append(_sse("message_stop", {"type": "message_stop"}))
    return b"".join(out)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            raw = bytes(data)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        return raw

    def _send(
        self, status: int, body: bytes, content_type: str, request_id: str | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", request_id or "req_" + _random_alnum(24))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, request_id: str | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", request_id)

    def _handle(self) -> None:
        model_server = self.server.model_server
        split = urlsplit(self.path)
        raw = self._read_body()
        text = raw.decode("utf-8", "replace")
        body: Any = None
        if raw:
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        path = split.path.rstrip("/") or "/"
        if self.command == "POST" and path == "/v1/messages" and isinstance(body, dict):
            kind = "main" if body.get("tools") else "side"
        elif self.command == "POST" and path == "/v1/messages/count_tokens":
            kind = "count_tokens"
        else:
            kind = "other"
        record = RecordedRequest(
            method=self.command,
            path=path,
            query=parse_qs(split.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            kind=kind,
            received_at=time.time(),
        )
        if kind == "other" and path == "/api/hello":
            # Connectivity probe (``HEAD /api/hello``, Bun user agent) sent when nonessential
            # traffic is not disabled.
            model_server._record(record)
            self._send_json(200, {"message": "hello"})
            return
        if kind == "count_tokens":
            model_server._record(record)
            self._send_json(200, {"input_tokens": 10})
            return
        if kind == "other":
            model_server._record(record)
            self._send_json(
                404,
                {
                    "type": "error",
                    "error": {
                        "type": "not_found_error",
                        "message": f"{self.command} {path} is not scripted",
                    },
                },
            )
            return

        if kind == "main":
            record.tool_results = _new_tool_results(body)
            routed = model_server.router(record) if model_server.router else None
            if routed is not None:
                turn = routed
            else:
                turn, record.turn_index = model_server._next_turn()
        else:
            turn = Turn(text=model_server.side_text, usage=Usage(input_tokens=10, output_tokens=5))
        message = message_json(turn, str(body.get("model") or "claude-test"))
        record.response = message
        model_server._record(record)
        if turn.before is not None:
            turn.before()
        if turn.delay:
            time.sleep(turn.delay)
        if body.get("stream"):
            stream = message_sse(message)
            self._send(200, stream, "text/event-stream; charset=utf-8", turn.request_id)
        else:
            self._send_json(200, message, turn.request_id)

    def _handle_safely(self) -> None:
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bug here must show up in the test, not hang the client
            self.server.model_server._errors.append(exc)
            with contextlib.suppress(OSError):
                self._send_json(
                    500,
                    {
                        "type": "error",
                        "error": {"type": "api_error", "message": f"model_server bug: {exc!r}"},
                    },
                )

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle_safely


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    model_server: ModelServer


class ModelServer:
    """Scripted Messages API on 127.0.0.1. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        script: list[Turn] | None = None,
        port: int = 0,
        *,
        final_text: str = FINAL_TEXT,
        side_text: str = SIDE_TEXT,
        router: Callable[[RecordedRequest], Turn | None] | None = None,
    ) -> None:
        self.script = list(script or [])
        self.router = router
        """Answers a main request before the script does (None: the script answers), e.g. by
        ``x-claude-code-agent-id`` for a subagent that runs beside the main agent."""
        self.port = port
        self.final_text = final_text
        self.side_text = side_text
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._errors: list[Exception] = []
        self._position = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ModelServer:
        if self._httpd is not None:
            return self
        httpd = _Server(("127.0.0.1", self.port), _Handler)
        httpd.model_server = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"model-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("ModelServer is not started")
        return f"http://127.0.0.1:{self.port}"

    # -- script ----------------------------------------------------------------------------
    def _next_turn(self) -> tuple[Turn, int | None]:
        with self._lock:
            if self._position < len(self.script):
                index = self._position
                self._position += 1
                return self.script[index], index
        return Turn(text=self.final_text, usage=Usage(input_tokens=10, output_tokens=2)), None

    @property
    def turns_consumed(self) -> int:
        with self._lock:
            return self._position

    @property
    def script_exhausted(self) -> bool:
        return self.turns_consumed >= len(self.script)

    # -- recording -------------------------------------------------------------------------
    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def main_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "main"]

    @property
    def side_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "side"]

    @property
    def errors(self) -> list[Exception]:
        """Exceptions raised inside request handlers (answered with HTTP 500)."""
        return list(self._errors)

    def tool_results(self) -> list[ToolResultRecord]:
        """Every tool_result the client sent, once each, in order.

        Each record unpacks as ``(tool_use_id, content_text, is_error)``.
        """
        return [tr for r in self.main_requests for tr in r.tool_results]

    def tool_result_for(self, tool_use_id: str) -> ToolResultRecord | None:
        for result in self.tool_results():
            if result.tool_use_id == tool_use_id:
                return result
        return None

    def dump(self, path: str) -> None:
        """Write every recorded request (headers, body) as JSON lines, for debugging."""
        with open(path, "w", encoding="utf-8") as fh:
            for r in self.requests:
                fh.write(
                    json.dumps(
                        {
                            "method": r.method,
                            "path": r.path,
                            "query": r.query,
                            "kind": r.kind,
                            "turn_index": r.turn_index,
                            "headers": r.headers,
                            "body": r.body,
                            "response": r.response,
                        }
                    )
                    + "\n"
                )
