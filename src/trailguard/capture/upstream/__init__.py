"""The API proxy's upstream HTTP clients (see :mod:`.base` for what they share)."""

from __future__ import annotations

import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from trailguard.capture.upstream.base import (
    ConnectError,
    ConnectTimeout,
    LocalProtocolError,
    PoolTimeout,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    Timeouts,
    Upstream,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
    WriteTimeout,
    safe_url,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
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
    "environment_proxy",
    "open_upstream",
    "safe_url",
]


def environment_proxy(url: str) -> bool:
    """Whether the gateway host's environment routes ``url`` through a proxy: a
    ``<scheme>_proxy`` or ``all_proxy`` variable (either case) that ``no_proxy`` does not
    exempt. Erring towards yes costs only speed (httpx then decides, with its own rules)."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    host = parts.hostname or ""
    return not urllib.request.proxy_bypass_environment(host, proxies)  # type: ignore[attr-defined]


def open_upstream(
    base_url: str,
    *,
    client: httpx.AsyncClient | None = None,
    timeouts: Timeouts | None = None,
) -> Upstream:
    """The client for ``base_url``: :class:`.http1.HTTP1Upstream`, unless a proxy of the
    environment applies, the URL has user info, or ``client`` is given (then httpx)."""
    parts = urlsplit(base_url)
    userinfo = parts.username is not None or parts.password is not None
    if client is not None or userinfo or environment_proxy(base_url):
        from trailguard.capture.upstream.via_httpx import HttpxUpstream

        return HttpxUpstream(base_url, client=client, timeouts=timeouts)
    from trailguard.capture.upstream.http1 import HTTP1Upstream

    return HTTP1Upstream(base_url, timeouts=timeouts)
