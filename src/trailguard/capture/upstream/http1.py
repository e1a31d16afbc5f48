"""The API proxy's default upstream client: HTTP/1.1 on keep-alive connections, one request at a
time per connection, the response parsed by httptools (llhttp, the parser uvicorn already uses
for the gateway's own requests).

Why not httpx here: for this one streaming POST, ``httpx.AsyncClient.send`` was 42 % of the
gateway's request path (its request model, auth and redirect layers, httpcore's pool locks and
anyio cancel scopes, h11 writing the head and the body in two writes). This client writes the
request head and body in one write, parses the answer in C and hands over each body chunk as
it arrives; what it leaves out (proxies, redirects, cookies, HTTP/2, user info in the URL) the
proxy does not use, or gets from :mod:`.via_httpx`.

What an upstream cannot do through it:

* answer a later request: bytes that arrive when no request is waiting, or after the end of a
  response, close the connection (no response desync between agents sharing a connection);
* reuse a connection it asked to close, whose response was not read to its end, whose body
  ended with the connection, or that answered a ``HEAD``;
* send an interim ``101`` (protocol switch), a status outside 100-599, a head over 100 KB, or
  what llhttp's strict parsing refuses: a header value with a control character or a bare CR
  or LF (a second header, or a second response, smuggled into one), both ``Content-Length``
  and ``Transfer-Encoding`` (RFC 9112 6.3); each is a :class:`RemoteProtocolError` (502 to
  the client, nothing of that answer forwarded) and the connection is closed;
* make the gateway buffer without bound: past 256 KB of unread body, reading from its socket
  pauses (TCP then holds it back) until the client has taken the bytes.

TLS: the context of ``httpx.create_ssl_context`` (certifi's roots, or ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` of the gateway host), so certificates and host names are verified exactly as
before; ALPN offers ``http/1.1`` only. Sessions are not resumed across connections (asyncio
has no way to pass a TLS session); a kept-alive connection needs no second handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import AsyncGenerator
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

from trailguard.capture.upstream.base import (
    ConnectError,
    ConnectTimeout,
    LocalProtocolError,
    PoolTimeout,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    Timeouts,
    UpstreamError,
    WriteTimeout,
    check_request_headers,
    safe_url,
)

__all__ = ["HTTP1Upstream"]

MAX_HEAD_BYTES = 100 * 1024
"""The most a response head may hold (names and values), as httpcore allows."""
READ_PAUSE_BYTES = 256 * 1024
"""Unread body bytes past which the socket is not read until the consumer catches up."""
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
"""Bytes of a request target written as they are; any other byte is percent-encoded."""


def _target_part(raw: bytes) -> bytes:
    """``raw`` with every byte outside visible ASCII percent-encoded: a target can hold no
    space, CR, LF or control character, whatever the agent's path or query was."""
    if all(0x21 <= byte < 0x7F for byte in raw):
        return raw
    return quote(raw, safe=_TARGET_SAFE).encode("ascii")


class _Response:
    """One exchange on a connection: the response head, then its body as it arrives."""

    def __init__(self, connection: _Connection, read_timeout: float, head_only: bool) -> None:
        self._connection = connection
        self._read_timeout = read_timeout
        self.head_only = head_only
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.head_received = False
        self.informational = False
        self.ends_with_close = False
        """The body is delimited by the end of the connection (no length, not chunked)."""
        self.done = False
        self.error: UpstreamError | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    # -- fed by the connection --

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, data: bytes) -> None:
        if self.done:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > READ_PAUSE_BYTES:
            self._connection.pause_reading()
        self._wake()

    def head(self, status: int) -> None:
        self.status = status
        self.head_received = True
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def fail(self, error: UpstreamError) -> None:
        if not self.done and self.error is None:
            self.error = error
        self._wake()

    # -- read by the proxy --

    async def _wait(self) -> None:
        self._waiter = self._connection.loop.create_future()
        try:
            async with asyncio.timeout(self._read_timeout):
                await self._waiter
        except TimeoutError:
            raise ReadTimeout(f"no data from the upstream for {self._read_timeout:g} s") from None
        finally:
            self._waiter = None

    async def wait_head(self) -> None:
        while not self.head_received:
            if self.error is not None:
                raise self.error
            await self._wait()

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        while True:
            if self._chunks:
                data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks.clear()
                self._buffered = 0
                self._connection.resume_reading()
                yield data
            elif self.error is not None:
                raise self.error
            elif self.done:
                return
            else:
                await self._wait()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._connection.release(self)


class _Connection(asyncio.Protocol):
    """One keep-alive connection to the upstream and its response parser."""

    def __init__(self, pool: HTTP1Upstream, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.response: _Response | None = None
        self.closed = False
        self.forgotten = False
        """No longer counted by the pool."""
        self.reusable = False
        self.idle_since = 0.0
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._read_paused = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's is not a subclass)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):  # uvloop/asyncio set it too
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or response.done:
            self._unsolicited()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            response.fail(RemoteProtocolError("the upstream switched protocols"))
            self.close()
        except httptools.HttpParserError as exc:
            if response.done:  # the bytes after a complete response: see on_message_begin
                self._unsolicited()
                return
            cause = exc.__context__  # what a callback below raised, when one did
            response.fail(
                cause
                if isinstance(cause, UpstreamError)
                else RemoteProtocolError(f"malformed response ({str(exc)[:120]})")
            )
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self.response
        if response is not None and not response.done:
            if response.head_received and response.ends_with_close and exc is None:
                response.finish()
            elif response.head_received:
                response.fail(ReadError("the upstream connection ended before the response did"))
            else:
                response.fail(
                    RemoteProtocolError("the upstream closed the connection without answering")
                )
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)
        self._pool._lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        response = self.response
        if response is None or response.done:
            raise RemoteProtocolError("a second response to one request")

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        assert response is not None
        response.head_bytes += len(name) + len(value)
        if response.head_bytes > MAX_HEAD_BYTES:
            raise RemoteProtocolError("response head too large")
        response.headers.append((name, value))

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise RemoteProtocolError("the upstream switched protocols")
            response.headers.clear()  # 103 Early Hints and the like: not the answer
            response.head_bytes = 0
            response.informational = True
            return
        if not 200 <= status < 600:
            raise RemoteProtocolError(f"status {status} is not an HTTP status")
        names = {name.lower() for name, _ in response.headers}
        chunked = any(
            name.lower() == b"transfer-encoding" and value.lower().rstrip().endswith(b"chunked")
            for name, value in response.headers
        )
        response.ends_with_close = (
            b"content-length" not in names
            and not chunked
            and status not in (204, 304)
            and not response.head_only
        )
        response.head(status)
        if response.head_only:  # llhttp cannot be told the request was HEAD
            self.reusable = False
            response.finish()

    def on_body(self, body: bytes) -> None:
        response = self.response
        assert response is not None
        response.push(body)

    def on_message_complete(self) -> None:
        response = self.response
        assert response is not None
        if response.informational:
            response.informational = False
            return
        if response.done:
            return
        self.reusable = self._parser.should_keep_alive() and not response.head_only
        response.finish()

    # -- used by the pool and the response --

    def _unsolicited(self) -> None:
        """Bytes no request asked for: this connection can answer nothing any more."""
        self.reusable = False
        self.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = False
            self.transport.resume_reading()

    def usable(self, loop: asyncio.AbstractEventLoop, now: float, expiry: float) -> bool:
        return (
            self.loop is loop
            and not self.closed
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < expiry
        )

    async def exchange(
        self, head: bytes, body: bytes, timeouts: Timeouts, *, head_only: bool
    ) -> _Response:
        assert self.transport is not None
        response = _Response(self, timeouts.read, head_only)
        self.response = response
        self.reusable = False
        if len(body) <= 64 * 1024:
            self.transport.write(head + body)  # one write: head and body in one segment
        else:
            self.transport.writelines((head, body))
        if self._write_paused and not self.closed:
            self._drained = self.loop.create_future()
            try:
                async with asyncio.timeout(timeouts.write):
                    await self._drained
            except TimeoutError:
                raise WriteTimeout(
                    f"the upstream did not take the request in {timeouts.write:g} s"
                ) from None
            finally:
                self._drained = None
        await response.wait_head()
        return response

    def release(self, response: _Response) -> None:
        if response is self.response:
            self.response = None
        keep = response.done and response.error is None and self.reusable and not self.closed
        self._pool._release(self, keep=keep)


class HTTP1Upstream:
    """Keep-alive HTTP/1.1 connections to one upstream origin (``http`` or ``https``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts | None = None,
        max_connections: int = 1000,
        max_idle: int = 200,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) upstream URL: {safe_url(base_url)}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("an upstream URL with user info goes through httpx (via_httpx)")
        self.label = safe_url(base_url.rstrip("/"))
        self._host = parts.hostname
        default_port = 443 if parts.scheme == "https" else 80
        self._port = parts.port or default_port
        host = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None and parts.port != default_port:
            host = f"{host}:{parts.port}"
        self._host_header = host.encode("idna" if not host.isascii() else "ascii")
        self._base_path = _target_part(parts.path.rstrip("/").encode("utf-8"))
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            if ssl_context is None:
                import httpx  # its context: the same roots and checks as before

                ssl_context = httpx.create_ssl_context(trust_env=True)
                ssl_context.set_alpn_protocols(["http/1.1"])
            self._ssl = ssl_context
        self.timeouts = timeouts or Timeouts()
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._idle: list[_Connection] = []
        self._count = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self.connections_opened = 0
        """Connections made so far (the tests see reuse through it)."""

    # -- the request --

    def _head(
        self, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bytes:
        check_request_headers(method, headers)
        target = self._base_path + b"/" + _target_part(path.encode("latin-1"))
        if query:
            target += b"?" + _target_part(query)
        parts = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ", self._host_header]
        for name, value in headers:
            parts += (b"\r\n", name, b": ", value)
        if body or method in _BODY_METHODS:
            parts += (b"\r\ncontent-length: ", b"%d" % len(body))
        parts.append(b"\r\n\r\n")
        return b"".join(parts)

    async def send(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> _Response:
        if self._closed:
            raise LocalProtocolError("the upstream client is closed")
        head = self._head(method, path, query, headers, body)
        connection = await self._acquire()
        try:
            return await connection.exchange(head, body, self.timeouts, head_only=method == "HEAD")
        except BaseException:
            connection.response = None
            connection.close()
            self._release(connection, keep=False)
            raise

    # -- the pool --

    async def _acquire(self) -> _Connection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.pool
        while True:
            now = loop.time()
            while self._idle:
                connection = self._idle.pop()
                if connection.usable(loop, now, self._keepalive_expiry):
                    return connection
                self._forget(connection)
            if self._count < self._max_connections:
                self._count += 1
                try:
                    return await self._connect(loop)
                except BaseException:
                    self._count -= 1
                    self._wake_one()
                    raise
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise PoolTimeout(
                    f"no free connection to the upstream in {self.timeouts.pool:g} s"
                ) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        try:
            async with asyncio.timeout(self.timeouts.connect):
                _transport, connection = await loop.create_connection(
                    lambda: _Connection(self, loop),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(
                f"no connection to the upstream in {self.timeouts.connect:g} s"
            ) from None
        except OSError as exc:  # refused, unreachable, a certificate that does not verify
            raise ConnectError(str(exc)[:200] or type(exc).__name__) from None
        self.connections_opened += 1
        return connection

    def _release(self, connection: _Connection, *, keep: bool) -> None:
        loop = connection.loop
        if keep and not self._closed and len(self._idle) < self._max_idle:
            connection.idle_since = loop.time()
            self._idle.append(connection)
            self._wake_one()
        else:
            connection.close()
            self._forget(connection)

    def _lost(self, connection: _Connection) -> None:
        if connection in self._idle:
            self._idle.remove(connection)
        if connection.response is None:
            self._forget(connection)
        # else: the response's aclose() releases (and so forgets) it

    def _forget(self, connection: _Connection) -> None:
        if connection.forgotten:
            return
        connection.forgotten = True
        self._count -= 1
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is connection.loop:
            connection.close()
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._forget(self._idle.pop())
