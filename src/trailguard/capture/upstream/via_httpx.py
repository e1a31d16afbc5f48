"""The upstream through httpx: used when the gateway host's environment puts an HTTP(S) proxy
between the gateway and the upstream (``HTTPS_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY``), when the
upstream URL carries user info (httpx sends it as Basic auth), or when the caller hands over its
own ``httpx.AsyncClient``. Behaves as the proxy did before :mod:`.http1` existed."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncGenerator

import httpx

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

__all__ = ["HttpxUpstream", "translate"]

_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200)


_ERRORS: tuple[tuple[type[httpx.HTTPError], type[UpstreamError]], ...] = (
    # Subclasses before their bases: the first match names the error.
    (httpx.ConnectTimeout, ConnectTimeout),
    (httpx.PoolTimeout, PoolTimeout),
    (httpx.WriteTimeout, WriteTimeout),
    (httpx.TimeoutException, ReadTimeout),
    (httpx.ConnectError, ConnectError),
    (httpx.LocalProtocolError, LocalProtocolError),
    (httpx.RemoteProtocolError, RemoteProtocolError),
    (httpx.ReadError, ReadError),
)


def translate(exc: httpx.HTTPError) -> UpstreamError:
    """The :mod:`.base` error for an httpx one, with httpx's text."""
    text = str(exc)[:200]
    kind = next((ours for theirs, ours in _ERRORS if isinstance(exc, theirs)), UpstreamError)
    return kind(text or type(exc).__name__)


def _skip_missing_sniffio() -> None:
    """httpcore runs ``import sniffio`` on every lock and cancellation shield, several times per
    request. When sniffio is not installed, each failing import searches ``sys.path`` again
    (about 0.2 ms apiece, measured): marking it absent makes the import fail at once, with the
    same outcome (httpcore then assumes asyncio, which is what uvicorn runs). A no-op when
    sniffio is installed."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


class _HttpxResponse:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = list(response.headers.raw)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise translate(exc) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxUpstream:
    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        _skip_missing_sniffio()
        self._base = base_url.rstrip("/")
        self.label = safe_url(self._base)
        self._given = client
        self._timeouts = timeouts or Timeouts()
        self._owned: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        if self._owned is None or self._owned.is_closed:
            t = self._timeouts
            self._owned = httpx.AsyncClient(
                timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
                limits=_LIMITS,
                follow_redirects=False,
                trust_env=True,  # HTTPS_PROXY / NO_PROXY / SSL_CERT_FILE of the gateway host
            )
        return self._owned

    async def send(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> _HttpxResponse:
        check_request_headers(method, headers)
        client = self._client()
        url = httpx.URL(f"{self._base}/{path}")
        if query:
            url = url.copy_with(query=query)
        outgoing = client.build_request(method, url, headers=headers, content=body or None)
        sent = {name.lower() for name, _ in headers}
        for default in (b"accept", b"user-agent"):  # httpx's defaults, not the client's headers
            if default not in sent:
                outgoing.headers.pop(default.decode(), None)
        try:
            return _HttpxResponse(await client.send(outgoing, stream=True))
        except httpx.HTTPError as exc:
            raise translate(exc) from exc

    async def aclose(self) -> None:
        if self._owned is not None:
            await self._owned.aclose()
            self._owned = None
