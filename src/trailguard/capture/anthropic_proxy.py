"""A pass-through proxy for the Anthropic Messages API, recording usage per model request.

Claude Code runs with ``ANTHROPIC_BASE_URL=http://<gateway>/anthropic``; every request under
``/anthropic/`` is forwarded to ``<upstream>/<path>?<query>`` with its body and headers, and the
upstream's answer (status, headers, body) goes back to the client chunk by chunk as it arrives:
server-sent events are never buffered. While the bytes go through, a copy is parsed on the side
(``message_start``, ``content_block_start`` of ``tool_use`` blocks, ``message_delta``, ``error``
events; or the whole JSON body of a non-streaming answer) into one :class:`ModelRequestRecord`
per request, handed to ``on_record`` after the response's last byte.

Credentials (``x-api-key``, ``Authorization``) and every other header are forwarded untouched and
never kept: the record carries no headers, and no error message quotes them.

Decisions:

* Upstream is asked for ``accept-encoding: identity`` so the copy can be parsed without
  decompressing; Anthropic's SSE is not compressed anyway. Should an upstream compress regardless,
  the bytes are forwarded as they are (with their ``content-encoding``) and a gzip / deflate copy
  is decompressed for parsing only; other encodings are forwarded but not parsed (the record's
  ``error`` then says so).
* Hop-by-hop headers (RFC 9110 section 7.6.1, plus those a ``Connection`` header names) are not
  forwarded either way; ``Host`` and ``Content-Length`` are written by the upstream client
  (:mod:`trailguard.capture.upstream`), which refuses a header name that is not a token or a
  value with a control character (400 ``invalid_request_error``: nothing goes upstream); the
  upstream's ``Date`` and ``Server`` are dropped because the gateway's server adds its own.
* The way in: :func:`mount_proxy` puts a small ASGI middleware in front of FastAPI's routing
  that hands ``/anthropic/…`` to :class:`AnthropicProxy` directly; the FastAPI route stays for
  the OpenAPI document and for apps that only include :func:`create_proxy_router`. The response
  goes out as raw ASGI messages (head, then each upstream chunk as it arrives); a task waiting
  for the client's disconnect is started after the first byte, and stops the stream when the
  client leaves.
* Upstream answers (2xx, 4xx, 5xx: 401, 429, 529 ...) pass through unchanged. When the upstream
  cannot be reached the client gets a 502 (504 when it does not answer in time) with an
  Anthropic-style error body naming the upstream; should an SSE stream break half-way, an
  ``event: error`` is appended so the client sees an API error rather than a truncated stream.
* A refused request (``refuse(session_id)`` returned a message, e.g. an exhausted budget) is
  answered, without contacting the upstream, with 402 ``billing_error`` (one of the Messages
  API's own error types). Checked against Claude Code 2.1.328 in ``-p`` mode: it does not retry
  it and reports ``API Error: 402 <message>``. The alternatives behave worse: 429
  ``rate_limit_error`` is retried 10 times over about three minutes; 403 ``permission_error`` is
  shown as ``Failed to authenticate. API Error: 403 ...``; 400 ``invalid_request_error`` is sent
  again six times.
* Timeouts: connect 10 s; 600 s between two reads (Anthropic sends ``ping`` events in long
  streams), so a slow generation is never cut.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import quote, unquote

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from trailguard.capture.upstream import (
    ConnectTimeout,
    LocalProtocolError,
    PoolTimeout,
    Timeouts,
    Upstream,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
    open_upstream,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_UPSTREAM",
    "REFUSAL_STATUS",
    "AnthropicProxy",
    "ModelRequestRecord",
    "ProxyDispatch",
    "SSEParser",
    "ToolUse",
    "create_proxy_router",
    "mount_proxy",
]

logger = logging.getLogger(__name__)

DEFAULT_UPSTREAM = "https://api.anthropic.com"
PREFIX = "/anthropic"
REFUSAL_STATUS = 402
REFUSAL_ERROR_TYPE = "billing_error"
MAX_JSON_PARSE_BYTES = 32 * 1024 * 1024
"""Larger non-streaming bodies are still forwarded, just not parsed."""
MAX_SSE_LINE_BYTES = 8 * 1024 * 1024
"""An SSE line longer than this is skipped by the parser (never by the forwarding)."""
MAX_ERROR_MESSAGE = 500
_ID_HEADER_MAX = 256

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

# RFC 9110 7.6.1 connection-specific fields, plus what the client / the server set themselves.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
TOKEN_HEADER = b"x-trailguard-token"
"""The trailguard agent token (Claude Code sends it on every model request with
``ANTHROPIC_CUSTOM_HEADERS="X-Trailguard-Token: <token>"``): who the usage is charged to. It is
never forwarded upstream."""
_REQUEST_DROP = _HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"accept-encoding",
    b"expect",
    TOKEN_HEADER,
}
_RESPONSE_DROP = _HOP_BY_HOP | {b"date", b"server"}

SESSION_HEADER = b"x-claude-code-session-id"
AGENT_HEADER = b"x-claude-code-agent-id"
PARENT_AGENT_HEADER = b"x-claude-code-parent-agent-id"

# Events whose data is parsed; content_block_delta (the bulk of a stream) only while a tool_use
# block is open (its input arrives as input_json_delta), never for text or thinking.
_WANTED_EVENTS = frozenset(
    {"message_start", "content_block_start", "message_delta", "error", "message"}
)
MAX_TOOL_INPUT_BYTES = 64 * 1024
"""A tool_use block's input is kept up to this many bytes of its JSON (then marked truncated)."""
MAX_TOOL_USES = 256
"""At most this many tool_use blocks of one response are kept with their name and input."""


@dataclass(frozen=True)
class ToolUse:
    """One ``tool_use`` block of a model response, as the model emitted it: what the agent was
    asked to run, independently of whether its hooks report it."""

    id: str
    name: str | None
    input: Any
    """The parsed input; the raw text when it did not parse (or was cut); None when absent."""
    input_truncated: bool = False


@dataclass(frozen=True)
class ModelRequestRecord:
    """What the proxy saw of one model request. Never any header, body or credential."""

    request_id: str | None
    """The upstream's ``request-id`` header, else the message id."""
    message_id: str | None
    """``message_start.message.id`` (or the JSON message's ``id``)."""
    model: str | None
    session_id: str | None
    """``X-Claude-Code-Session-Id``."""
    agent_id: str | None
    """``x-claude-code-agent-id``: Claude Code sends it on a subagent's requests."""
    usage: dict[str, int]
    """The final usage: ``input_tokens``, ``output_tokens``, ``cache_creation_input_tokens``,
    ``cache_read_input_tokens``; nested counters flattened with a dot, e.g.
    ``cache_creation.ephemeral_5m_input_tokens`` / ``cache_creation.ephemeral_1h_input_tokens``.
    ``message_start``'s usage updated by ``message_delta``'s (cumulative) counts."""
    tool_use_ids: tuple[str, ...]
    """Ids of the ``tool_use`` blocks the response emitted, in order."""
    status: int
    latency_ms: float
    """From the request's arrival to the last byte handed to the client."""
    first_byte_ms: float
    """From the request's arrival to the upstream's first body byte."""
    stream: bool
    """The answer was ``text/event-stream``."""
    error: str | None
    """Why the request failed or its record is incomplete: an upstream error (``type: message``),
    an unreachable upstream, a refusal, a broken stream, a client gone before the end."""
    parent_agent_id: str | None = None
    """``x-claude-code-parent-agent-id``: the agent that spawned ``agent_id``."""
    developer_id: str | None = None
    """The developer whose agent token came in ``X-Trailguard-Token`` (None: no valid token;
    the usage is then unattributed, whatever session the request claims)."""
    token_presented: bool = False
    """The request carried an ``X-Trailguard-Token`` header (valid or not)."""
    refused: bool = False
    """The gateway refused the request (``refuse`` gave a reason, e.g. an exhausted budget):
    it never reached the upstream; ``error`` holds the reason."""
    provisional: bool = False
    """Sent when the response's final usage (``message_delta``) was read, before the rest of
    the response went to the client; the complete record follows."""
    tool_uses: tuple[ToolUse, ...] = ()
    """The ``tool_use`` blocks with their tool name and input, in order."""


OnRecord = Callable[[ModelRequestRecord], Awaitable[None] | None]
Refuse = Callable[[str | None], str | None]
Identify = Callable[[str | None], Awaitable[str | None]]
"""The developer of an ``X-Trailguard-Token`` value, or None when it is missing or invalid."""


# -- parsing ---------------------------------------------------------------------------------

_LINE_END = re.compile(rb"\r\n|\r|\n")


class SSEParser:
    """Incremental ``text/event-stream`` parser: feed raw chunks, get ``(event, data)`` pairs.

    Lines end with ``\\r\\n``, ``\\n`` or ``\\r``, and may be split anywhere across chunks
    (a chunk ending in ``\\r`` waits for the next one); an event ends at a blank line. Only the
    ``event`` and ``data`` fields matter here; comments (``: ping``), ``id`` and ``retry`` are
    ignored.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[bytes] = []
        self._skipping = False

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[tuple[str | None, bytes]] = []
        start = 0
        for match in _LINE_END.finditer(buffer):
            if match.group() == b"\r" and match.end() == len(buffer):
                break  # maybe the first half of \r\n
            line = buffer[start : match.start()]
            start = match.end()
            if self._skipping:
                self._skipping = False  # the rest of an over-long line
                continue
            self._line(line, events)
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_SSE_LINE_BYTES:
            self._buffer, self._skipping = b"", True
        return events

    def _line(self, line: bytes, events: list[tuple[str | None, bytes]]) -> None:
        if not line:
            if self._data or self._event is not None:
                events.append((self._event, b"\n".join(self._data)))
            self._event, self._data = None, []
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")


def _flatten_usage(usage: Any, into: dict[str, int]) -> None:
    if not isinstance(usage, dict):
        return
    for key, value in usage.items():
        if isinstance(value, int) and not isinstance(value, bool):
            into[str(key)] = value
        elif isinstance(value, dict):
            for sub, count in value.items():
                if isinstance(count, int) and not isinstance(count, bool):
                    into[f"{key}.{sub}"] = count


def _error_text(payload: Any) -> str | None:
    """``type: message`` of an Anthropic error body, cut to a sane length."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if not isinstance(error, dict):
        return None
    text = f"{error.get('type', 'error')}: {error.get('message', '')}"
    return text[:MAX_ERROR_MESSAGE]


def _is_tool_use(block: Any) -> TypeGuard[dict[str, Any]]:
    return (
        isinstance(block, dict)
        and block.get("type") == "tool_use"
        and isinstance(block.get("id"), str)
    )


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _header_id(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    raw = _header(headers, name)
    if raw is None:
        return None
    value = raw.decode("latin-1")
    if not value or len(value) > _ID_HEADER_MAX or not value.isprintable():
        return None
    return value


@dataclass
class _ToolBlock:
    id: str
    name: str | None
    input: Any = None
    partial: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def add(self, piece: str) -> None:
        if self.truncated:
            return
        encoded = piece.encode("utf-8", "replace")
        if len(self.partial) + len(encoded) > MAX_TOOL_INPUT_BYTES:
            self.partial += encoded[: MAX_TOOL_INPUT_BYTES - len(self.partial)]
            self.truncated = True
            return
        self.partial += encoded

    def result(self) -> ToolUse:
        if self.partial:
            text = bytes(self.partial)
            try:
                value: Any = None if self.truncated else orjson.loads(text)
            except orjson.JSONDecodeError:
                value = None
            if value is None:
                value = text.decode("utf-8", "ignore")
            return ToolUse(self.id, self.name, value, self.truncated)
        return ToolUse(self.id, self.name, self.input, self.truncated)


def _tool_block(block: dict[str, Any]) -> _ToolBlock:
    name = block.get("name")
    tool_input = block.get("input")
    truncated = False
    if tool_input is not None and len(orjson.dumps(tool_input)) > MAX_TOOL_INPUT_BYTES:
        tool_input = orjson.dumps(tool_input)[:MAX_TOOL_INPUT_BYTES].decode("utf-8", "ignore")
        truncated = True
    return _ToolBlock(
        block["id"],
        name if isinstance(name, str) else None,
        tool_input if tool_input != {} else None,
        truncated=truncated,
    )


@dataclass
class _Capture:
    """The record of one request, filled in while its response goes through."""

    started: float
    session_id: str | None
    agent_id: str | None
    parent_agent_id: str | None
    developer_id: str | None = None
    token_presented: bool = False
    status: int = 0
    request_id: str | None = None
    message_id: str | None = None
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    tool_use_ids: list[str] = field(default_factory=list)
    tool_blocks: dict[int, _ToolBlock] = field(default_factory=dict)
    open_tool: int | None = None
    """Index of the tool_use block whose input deltas are arriving now."""
    stream: bool = False
    error: str | None = None
    first_byte: float | None = None
    last_byte: float | None = None
    # parsing state
    sse: SSEParser | None = None
    json_body: bytearray | None = None
    decoder: Any = None  # zlib decompressobj for a compressed copy
    parse_failed: bool = False
    complete: bool = False
    delivered: bool = False
    usage_final: bool = False
    """``message_delta`` (the final usage) was read: the response's cost is known."""
    usage_counted: bool = False
    refused: bool = False

    def note_error(self, text: str) -> None:
        if self.error is None:
            self.error = text[:MAX_ERROR_MESSAGE]

    def prepare(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Decide how to parse the response's body from its status and headers."""

        def text(name: bytes) -> str | None:
            value = _header(headers, name)
            return value.decode("latin-1") if value is not None else None

        self.status = status
        self.request_id = text(b"request-id") or text(b"x-request-id")
        content_type = (text(b"content-type") or "").lower()
        encoding = (text(b"content-encoding") or "identity").lower().strip()
        self.stream = content_type.startswith("text/event-stream")
        parse = self.stream or "json" in content_type
        if parse and encoding not in ("", "identity"):
            if encoding in ("gzip", "x-gzip"):
                self.decoder = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
            elif encoding == "deflate":
                self.decoder = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)
            else:
                parse = False
                self.note_error(f"response not parsed: content-encoding {encoding}")
        if parse and self.stream:
            self.sse = SSEParser()
        elif parse:
            self.json_body = bytearray()

    def feed(self, chunk: bytes) -> None:
        if self.parse_failed or (self.sse is None and self.json_body is None):
            return
        try:
            if self.decoder is not None:
                chunk = self.decoder.decompress(chunk)
            if self.sse is not None:
                for event, data in self.sse.feed(chunk):
                    self._on_event(event, data)
            elif self.json_body is not None:
                self.json_body += chunk
                if len(self.json_body) > MAX_JSON_PARSE_BYTES:
                    self.json_body = None
        except Exception as exc:  # a parse problem must never disturb the forwarding
            self.parse_failed = True
            self.note_error(f"response not parsed: {type(exc).__name__}")

    def _on_event(self, event: str | None, data: bytes) -> None:
        if self.open_tool is None:
            if event is not None and event not in _WANTED_EVENTS:
                return
            if event is None and b'"content_block_delta"' in data[:64]:
                return
        elif event == "content_block_stop":
            self.open_tool = None
            return
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        if kind == "message_start":
            self._on_message(payload.get("message"))
        elif kind == "content_block_start":
            block = payload.get("content_block")
            if _is_tool_use(block):
                self.tool_use_ids.append(block["id"])
                index = payload.get("index")
                if isinstance(index, int) and len(self.tool_blocks) < MAX_TOOL_USES:
                    self.tool_blocks[index] = _tool_block(block)
                    self.open_tool = index
        elif kind == "content_block_delta":
            delta = payload.get("delta")
            tool = self.tool_blocks.get(payload.get("index"))  # type: ignore[arg-type]
            if (
                tool is not None
                and isinstance(delta, dict)
                and delta.get("type") == "input_json_delta"
                and isinstance(delta.get("partial_json"), str)
            ):
                tool.add(delta["partial_json"])
        elif kind == "content_block_stop":
            self.open_tool = None
        elif kind == "message_delta":
            _flatten_usage(payload.get("usage"), self.usage)
            self.usage_final = True
        elif kind == "error":
            self.note_error(_error_text(payload) or "error event")

    def _on_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        if isinstance(message.get("id"), str):
            self.message_id = message["id"]
        if isinstance(message.get("model"), str):
            self.model = message["model"]
        _flatten_usage(message.get("usage"), self.usage)

    def finish_body(self) -> None:
        """The body is complete: parse a buffered JSON body."""
        if self.json_body is None or self.parse_failed:
            return
        body = bytes(self.json_body)
        self.json_body = None
        try:
            if self.decoder is not None:
                body += self.decoder.flush()
            payload = orjson.loads(body) if body else None
        except (orjson.JSONDecodeError, zlib.error):
            return
        if not isinstance(payload, dict):
            return
        if payload.get("type") == "error" or "error" in payload:
            self.note_error(_error_text(payload) or f"upstream answered {self.status}")
            return
        if payload.get("type") == "message":
            self._on_message(payload)
            for index, block in enumerate(payload.get("content") or ()):
                if _is_tool_use(block):
                    self.tool_use_ids.append(block["id"])
                    if len(self.tool_blocks) < MAX_TOOL_USES:
                        self.tool_blocks[index] = _tool_block(block)

    def record(self, *, provisional: bool = False) -> ModelRequestRecord:
        now = time.perf_counter()
        last = self.last_byte if self.last_byte is not None else now
        first = self.first_byte if self.first_byte is not None else last
        if self.status >= 400:
            self.note_error(f"upstream answered {self.status}")
        return ModelRequestRecord(
            request_id=self.request_id or self.message_id,
            message_id=self.message_id,
            model=self.model,
            session_id=self.session_id,
            agent_id=self.agent_id,
            usage=dict(self.usage),
            tool_use_ids=tuple(self.tool_use_ids),
            status=self.status,
            latency_ms=(last - self.started) * 1000,
            first_byte_ms=(first - self.started) * 1000,
            stream=self.stream,
            error=self.error,
            parent_agent_id=self.parent_agent_id,
            developer_id=self.developer_id,
            token_presented=self.token_presented,
            refused=self.refused,
            provisional=provisional,
            tool_uses=tuple(block.result() for _, block in sorted(self.tool_blocks.items())),
        )


async def _hand_over(on_record: OnRecord, record: ModelRequestRecord) -> None:
    """Give ``record`` to ``on_record``; a failure is logged, never raised."""
    try:
        result = on_record(record)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception(
            "on_record failed for model request %s (session %s)",
            record.request_id,
            record.session_id,
        )


async def _deliver(on_record: OnRecord, capture: _Capture) -> None:
    """Hand the complete record over, once."""
    if capture.delivered:
        return
    capture.delivered = True
    await _hand_over(on_record, capture.record())


def _event_start(chunk: bytes, marker: bytes) -> int:
    """Where, in ``chunk``, the SSE event holding the last ``marker`` begins: just after the
    blank line before it, or 0 (the event began in an earlier chunk, or ``marker`` is absent).
    Only events that end before that event are in ``chunk[:start]``."""
    at = chunk.rfind(marker)
    if at < 0:
        return 0
    return max(
        (end + len(blank) for blank in (b"\n\n", b"\r\n\r\n", b"\r\r")
         if (end := chunk.rfind(blank, 0, at)) >= 0),
        default=0,
    )  # fmt: skip


def _connection_named(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    """The header names a ``Connection`` header lists (hop-by-hop as well)."""
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }


def _forward_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    drop = _REQUEST_DROP | _connection_named(headers)
    kept = [(name, value) for name, value in headers if name.lower() not in drop]
    kept.append((b"accept-encoding", b"identity"))
    return kept


def _response_headers(
    headers: list[tuple[bytes, bytes]], *, keep_length: bool
) -> list[tuple[bytes, bytes]]:
    drop = _RESPONSE_DROP | _connection_named(headers)
    if not keep_length:
        drop = drop | {b"content-length"}
    return [(name, value) for name, value in headers if name.lower() not in drop]


def route_path(scope: Scope) -> str:
    """The request's path inside the app (without the ``root_path`` it is mounted under)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _raw_tail(scope: Scope) -> str:
    """The path after ``/anthropic/`` as the client encoded it (taken from the raw request path
    when it matches), so the upstream sees the same bytes."""
    path = route_path(scope)[len(PREFIX) + 1 :]
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and path:
        segments = raw.split(b"/")
        count = path.count("/") + 1
        if len(segments) >= count:
            tail = b"/".join(segments[-count:]).decode("latin-1")
            if unquote(tail) == path:
                return tail
    return quote(path, safe="/:@!$&'()*+,;=-._~%")


async def _read_body(receive: Receive) -> bytes | None:
    """The request body; None when the client left before all of it arrived."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


class _ClientGone(Exception):
    """The client disconnected while its response was streaming."""


class _Exchange:
    """One proxied request: the refusal check, the upstream request, the response streamed back
    with its copy parsed on the side, and the record handed over at the end."""

    def __init__(self, proxy: AnthropicProxy, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.proxy = proxy
        self.scope = scope
        self.receive = receive
        self.send = send
        self.capture = _Capture(
            started=time.perf_counter(),
            session_id=_header_id(headers, SESSION_HEADER),
            agent_id=_header_id(headers, AGENT_HEADER),
            parent_agent_id=_header_id(headers, PARENT_AGENT_HEADER),
        )
        token = _header(headers, TOKEN_HEADER)
        self.token = token.decode("latin-1") if token is not None else None
        self.capture.token_presented = token is not None
        # Who pays is needed for the record, not for the upstream: the token is looked up
        # when the first record is made (at message_delta, or at the end), so the lookup adds
        # nothing to the time to first byte.
        self.looked_up = proxy.identify is None
        self.finished = False
        """The last byte is on its way: a disconnect from now on is the normal end."""
        self.client_gone = False
        self.protected = False
        """A record is being handed over: a disconnect waits for it rather than cancel it."""

    # -- the record --

    async def identified(self) -> None:
        identify = self.proxy.identify
        if self.looked_up or identify is None:
            return
        self.looked_up = True
        try:
            self.capture.developer_id = await identify(self.token)
        except Exception:
            logger.exception("identify() failed; the request's usage is unattributed")

    async def deliver(self) -> None:
        await self.identified()
        await _deliver(self.proxy.on_record, self.capture)

    async def fail(self, status: int, error_type: str, message: str) -> None:
        """Answer with an Anthropic-style error (nothing came from the upstream), then record."""
        capture = self.capture
        capture.status = status
        capture.note_error(message)
        capture.last_byte = time.perf_counter()
        body = orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})
        try:
            await self.send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-length", b"%d" % len(body)),
                        (b"content-type", b"application/json"),
                    ],
                }
            )
            await self.send({"type": "http.response.body", "body": body})
        finally:
            await self.deliver()

    # -- the request --

    async def run(self) -> None:
        capture = self.capture
        refuse = self.proxy.refuse
        if refuse is not None:
            try:
                refusal = refuse(capture.session_id)
            except Exception:
                logger.exception("refuse() failed for session %s", capture.session_id)
                await self.fail(
                    500, "api_error", "trailguard proxy: the budget check failed; request refused"
                )
                return
            if refusal is not None:
                capture.refused = True
                await self.fail(REFUSAL_STATUS, REFUSAL_ERROR_TYPE, refusal)
                return
        body = await _read_body(self.receive)
        if body is None:
            return  # gone before its request was read: nothing went upstream, nothing to record
        upstream = self.proxy.upstream
        try:
            response = await upstream.send(
                self.scope["method"],
                _raw_tail(self.scope),
                self.scope.get("query_string") or b"",
                _forward_headers(self.scope["headers"]),
                body,
            )
        except LocalProtocolError as exc:
            await self.fail(
                400, "invalid_request_error", f"trailguard proxy cannot forward this request: {exc}"
            )
            return
        except UpstreamTimeout as exc:
            if isinstance(exc, ConnectTimeout):
                status, what = 502, "could not connect to"
            elif isinstance(exc, PoolTimeout):
                status, what = 503, "has no free connection to"
            else:
                status, what = 504, "got no answer in time from"
            await self.fail(
                status,
                "api_error",
                f"trailguard proxy {what} the upstream {upstream.label} ({type(exc).__name__})",
            )
            return
        except UpstreamError as exc:
            await self.fail(
                502,
                "api_error",
                f"trailguard proxy could not reach the upstream {upstream.label} "
                f"({type(exc).__name__}: {str(exc)[:200]})",
            )
            return
        await self.stream(response)

    async def stream(self, response: UpstreamResponse) -> None:
        capture = self.capture
        capture.prepare(response.status, response.headers)
        task = asyncio.current_task()
        watcher: asyncio.Future[Any] | None = None
        try:
            await self.send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": _response_headers(response.headers, keep_length=not capture.stream),
                }
            )
            async with aclosing(response.chunks()) as chunks:
                try:
                    async for received in chunks:
                        await self.forward(received)
                        if watcher is None:  # after the first byte: it costs that byte nothing
                            watcher = self.watch_disconnect(task)
                    capture.finish_body()
                    capture.complete = True
                except UpstreamError as exc:
                    capture.note_error(
                        f"upstream stream from {self.proxy.upstream.label} broke: "
                        f"{type(exc).__name__}"
                    )
                    if not capture.stream:
                        raise
                    await self.send_more(_broken_stream_event(exc))
                    capture.last_byte = time.perf_counter()
                    capture.complete = True
            self.finished = True
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not self.client_gone or task is None:
                raise
            task.uncancel()  # the watcher's doing: the client is gone, the request is over
        except _ClientGone:
            pass
        finally:
            self.finished = True
            if watcher is not None:
                watcher.cancel()
            if capture.first_byte is None:
                capture.first_byte = time.perf_counter()
            if capture.last_byte is None:
                capture.last_byte = capture.first_byte
            if not capture.complete:
                capture.note_error("client disconnected before the end of the response")
            # Shielded: a cancellation now (a server shutdown) must not lose the record.
            await asyncio.shield(self.close(response))

    async def close(self, response: UpstreamResponse) -> None:
        try:
            await response.aclose()
        finally:
            await self.deliver()

    async def send_more(self, chunk: bytes) -> None:
        await self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def forward(self, received: bytes) -> None:
        """Pass one upstream chunk on; at ``message_delta`` (the final usage), hand the
        provisional record over before the rest of the response reaches the agent."""
        capture = self.capture
        chunk = received
        if capture.first_byte is None:
            capture.first_byte = time.perf_counter()
        capture.feed(chunk)
        if capture.usage_final and not capture.usage_counted:
            # Count the cost before the end of the response reaches the agent; the events
            # before message_delta in the same chunk are not held back.
            capture.usage_counted = True
            head = 0 if capture.decoder else _event_start(chunk, b"message_delta")
            if head:  # (compressed bytes cannot be split by event)
                await self.send_more(chunk[:head])
                chunk = chunk[head:]
            self.protected = True
            try:
                await self.identified()
                await _hand_over(self.proxy.on_record, capture.record(provisional=True))
            finally:
                self.protected = False
            if self.client_gone:
                raise _ClientGone
        await self.send_more(chunk)
        capture.last_byte = time.perf_counter()

    def watch_disconnect(self, task: asyncio.Task[Any] | None) -> asyncio.Future[Any]:
        """Wait for the client's ``http.disconnect`` next to the stream; when it comes before
        the end, stop the stream (unless a record is being handed over: that finishes first)."""
        watcher = asyncio.ensure_future(self.receive())

        def on_message(done: asyncio.Future[Any]) -> None:
            if done.cancelled() or done.exception() is not None or self.finished:
                return
            if done.result().get("type") != "http.disconnect":
                return
            self.client_gone = True
            if not self.protected and task is not None:
                task.cancel()

        watcher.add_done_callback(on_message)
        return watcher


def _broken_stream_event(exc: Exception) -> bytes:
    return (  # the blank lines end whatever partial event came before
        b"\n\nevent: error\ndata: "
        + orjson.dumps(
            {
                "type": "error",
                "error": {
                    "type": "api_error",
                    "message": "trailguard proxy: the upstream stream broke "
                    f"({type(exc).__name__})",
                },
            }
        )
        + b"\n\n"
    )


class AnthropicProxy:
    """The pass-through as an ASGI app for requests under ``/anthropic/``.

    ``on_record`` gets one :class:`ModelRequestRecord` per request, after its last byte (sync or
    async; its exceptions are logged and swallowed). ``refuse(session_id)`` returning a message
    answers the request with a 402 ``billing_error`` carrying it, without contacting the
    upstream. ``identify`` names the developer of the request's ``X-Trailguard-Token``.
    ``client``: an httpx client to send with (used as given, not closed); by default
    :mod:`trailguard.capture.upstream` picks the client (see ``open_upstream``).

    A streamed response's usage is final at ``message_delta``: ``on_record`` gets a provisional
    record then, and is awaited before that part of the stream goes on to the client, so the
    cost is counted before the agent can act on the response (a tool call that crosses the
    budget is denied, not run).
    """

    def __init__(
        self,
        upstream: str = DEFAULT_UPSTREAM,
        on_record: OnRecord | None = None,
        *,
        refuse: Refuse | None = None,
        client: httpx.AsyncClient | None = None,
        identify: Identify | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.upstream: Upstream = open_upstream(upstream, client=client, timeouts=timeouts)
        self.on_record: OnRecord = on_record if on_record is not None else (lambda _record: None)
        self.refuse = refuse
        self.identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _Exchange(self, scope, receive, send).run()

    async def aclose(self) -> None:
        await self.upstream.aclose()

    def router(self) -> APIRouter:
        """``/anthropic/{path}`` (every method) as a FastAPI route: the OpenAPI operation, and
        the lifespan that closes the upstream connections. Requests that reach it are served by
        this proxy; :func:`mount_proxy` lets them skip FastAPI's routing altogether."""

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            try:
                yield
            finally:
                await self.aclose()

        router = APIRouter(lifespan=lifespan)

        @router.api_route(f"{PREFIX}/{{path:path}}", methods=["POST"], **_OPENAPI)
        @router.api_route(
            f"{PREFIX}/{{path:path}}",
            methods=sorted(METHODS - {"POST"}),
            include_in_schema=False,
        )
        async def proxy(request: Request, path: str) -> Response:
            return _Delegate(self)

        return router


class _Delegate(Response):
    """A FastAPI route's answer that hands the request's ASGI channel to ``app``."""

    def __init__(self, app: AnthropicProxy) -> None:
        super().__init__()
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


class ProxyDispatch:
    """ASGI middleware sending ``/anthropic/…`` straight to the proxy, past FastAPI's routing,
    dependency solving and per-request middleware (0.6 ms of the time to first byte, measured).
    Installed with ``app.add_middleware``, it sits inside Starlette's ServerErrorMiddleware, so
    an unexpected exception is still answered 500 and recorded by the app's handler."""

    def __init__(self, app: ASGIApp, proxy: AnthropicProxy) -> None:
        self.app = app
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in METHODS
            and route_path(scope).startswith(PREFIX + "/")
        ):
            await self.proxy(scope, receive, send)
        else:
            await self.app(scope, receive, send)


_OPENAPI: dict[str, Any] = {
    "summary": "Pass-through to the Anthropic API (Claude Code's ANTHROPIC_BASE_URL)",
    "description": (
        "Every method under `/anthropic/` is forwarded to the upstream model API unchanged "
        "(`x-api-key` / `Authorization` are the model API's own and are never stored). "
        "`X-Trailguard-Token: <agent token>` names who pays; without a valid one the usage is "
        "recorded unattributed and an alert is raised. The response's usage is counted "
        "before its end reaches the client; a session whose budget is exhausted gets 402 "
        "`billing_error` without the upstream being contacted."
    ),
    "tags": ["proxy"],
    "responses": {
        400: {"description": "a request header or the path cannot be forwarded as it is"},
        402: {"description": "the session's budget is exhausted (Anthropic error shape)"},
        502: {"description": "the upstream could not be reached"},
        504: {"description": "the upstream did not answer in time"},
    },
}


def create_proxy_router(
    upstream: str = DEFAULT_UPSTREAM,
    on_record: OnRecord | None = None,
    *,
    refuse: Refuse | None = None,
    client: httpx.AsyncClient | None = None,
    identify: Identify | None = None,
) -> APIRouter:
    """A router serving ``/anthropic/{path}`` (every method) as a pass-through to ``upstream``,
    through FastAPI's routing (see :class:`AnthropicProxy` for the arguments; the router's
    lifespan, which FastAPI merges into the app's on ``include_router``, closes the upstream
    connections). :func:`mount_proxy` is the faster way in."""
    proxy = AnthropicProxy(upstream, on_record, refuse=refuse, client=client, identify=identify)
    return proxy.router()


def mount_proxy(app: FastAPI, proxy: AnthropicProxy) -> None:
    """Serve ``/anthropic/…`` on ``app`` through ``proxy``: the route (OpenAPI, lifespan) and
    the :class:`ProxyDispatch` middleware that takes the requests before FastAPI routes them.
    Call before the app starts."""
    app.include_router(proxy.router())
    app.add_middleware(ProxyDispatch, proxy=proxy)
