"""What the API proxy needs from an upstream HTTP client: one request out, the answer's status and
raw headers, its body as the bytes arrive; and the errors it maps to HTTP answers.

Two clients implement it: :mod:`.http1` (the default: keep-alive HTTP/1.1 connections written and
parsed here) and :mod:`.via_httpx` (httpx, for what the first does not do: an HTTP(S) proxy
between the gateway and the upstream, credentials in the upstream URL, a caller's own client).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "BAD_HEADER_VALUE",
    "ConnectError",
    "ConnectTimeout",
    "LocalProtocolError",
    "PoolTimeout",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Timeouts",
    "Upstream",
    "UpstreamError",
    "UpstreamResponse",
    "UpstreamTimeout",
    "WriteTimeout",
    "check_request_headers",
    "safe_url",
]


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``read`` is between two reads (Anthropic sends ``ping`` events in long streams,
    so a slow generation is never cut); ``pool`` is the wait for a free connection."""

    connect: float = 10.0
    read: float = 600.0
    write: float = 600.0
    pool: float = 30.0


class UpstreamError(Exception):
    """The upstream could not be used. The class name goes into the client's error message; the
    text never holds a header or the upstream URL's user info."""


class UpstreamTimeout(UpstreamError):
    pass


class ConnectTimeout(UpstreamTimeout):
    pass


class ReadTimeout(UpstreamTimeout):
    pass


class WriteTimeout(UpstreamTimeout):
    pass


class PoolTimeout(UpstreamTimeout):
    pass


class ConnectError(UpstreamError):
    pass


class ReadError(UpstreamError):
    """The connection broke (or closed) before the end of the response."""


class RemoteProtocolError(UpstreamError):
    """The upstream's answer is not HTTP/1.1 as this client accepts it."""


class LocalProtocolError(UpstreamError):
    """The request cannot be written as it is (a header name or value, the method, the target):
    never sent."""


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]
    """As received (names in their case), hop-by-hop ones included: the caller filters."""

    def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives, undecoded (a ``content-encoding`` is left to the caller).
        Raises :class:`UpstreamError` when the body breaks or stalls."""
        ...

    async def aclose(self) -> None:
        """Done with the response (read to its end or not); idempotent."""
        ...


class Upstream(Protocol):
    label: str
    """The upstream URL without user info, query or fragment: fit for an error message."""

    async def send(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> UpstreamResponse:
        """``method <base path>/<path>?<query>`` with ``headers`` (no ``Host``,
        ``Content-Length``, ``Transfer-Encoding`` or hop-by-hop header: the client writes those)
        and ``body``; returns once the response head is in."""
        ...

    async def aclose(self) -> None: ...


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
BAD_HEADER_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
"""What a header value may not hold (RFC 9110 5.5: CR, LF, NUL and the other controls but HTAB);
the same rule uvicorn applies to the headers it writes."""
_CLIENT_WRITES = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


def check_request_headers(method: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Raise :class:`LocalProtocolError` for a method or header that cannot go out as it is: a
    name that is not an RFC 9110 token, a value with CR, LF or another control character (what
    would let a header smuggle a second header or a second request), or a header only the client
    may write (``Host``, ``Content-Length``, ``Transfer-Encoding``, ``Connection``)."""
    if not _TOKEN.fullmatch(method.encode("latin-1", "replace")):
        raise LocalProtocolError("the method is not an HTTP token")
    for name, _value in headers:
        if not _TOKEN.fullmatch(name):
            raise LocalProtocolError("a header name is not an HTTP token")
        if name.lower() in _CLIENT_WRITES:
            raise LocalProtocolError(f"header {name.decode()!r} is the client's to write")
    # One pass over all values, joined with HTAB (allowed in a value): exact, and the loop
    # below runs only to name the culprit.
    if BAD_HEADER_VALUE.search(b"\t".join(value for _name, value in headers)):
        for name, value in headers:
            if BAD_HEADER_VALUE.search(value):
                raise LocalProtocolError(
                    f"the value of header {name.decode()!r} holds a control character"
                )


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment: fit for an error message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
