"""Who a request is from: one authentication layer for every route, with roles.

A token decides the identity (``agent`` posts hooks and telemetry, ``auditor`` reads the record,
``admin`` does both and manages tokens and sessions). Every refusal — no token, an unknown or
revoked one, a role that may not use the route — is raised here and recorded the same way by the
app's error handler (``authentication_failed`` / ``access_refused`` alerts, rate-limited per
client and overall, so a flood of bad requests cannot fill the disk). Tokens are looked up on
every request: a revoked token stops working at once.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

from fastapi import Request

from trailguard.errors import AuthenticationError, ForbiddenError, RateLimitedError
from trailguard.store.gateway_state import Identity, Role

__all__ = [
    "AlertLimiter",
    "Authenticator",
    "RateLimiter",
    "TrustedProxies",
]

_BEARER: Final = re.compile(r"^Bearer\s+(\S+)\s*$", re.IGNORECASE)
TOKEN_HEADER: Final = "x-trailguard-token"  # noqa: S105 - a header name
"""Where the API proxy takes the trailguard token (Claude Code sends it with
``ANTHROPIC_CUSTOM_HEADERS="X-Trailguard-Token: <token>"``); ``Authorization`` is the model
API's own there."""


class TrustedProxies:
    """Addresses whose ``X-Forwarded-For`` is believed (``--trusted-proxy``). Anyone else's is
    ignored: a client must not be able to choose the address its refusals are recorded under."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_address(self, request: Request) -> str:
        """The peer's address, or — only when the peer is a trusted proxy — the nearest
        untrusted address in its ``X-Forwarded-For``."""
        peer = request.client.host if request.client else "unknown"
        if not self._networks or not self.trusts(peer):
            return peer
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # a malformed hop: the proxy's own address is all we know
        return peer


@dataclass
class AlertLimiter:
    """At most ``per_client`` refusal alerts per client and ``overall`` in all per window;
    the rest are counted and reported with the next alert that is admitted."""

    per_client: int = 30
    overall: int = 120
    window_seconds: float = 60.0
    _window_start: float = -math.inf  # monotonic time may start at boot
    _counts: dict[str, int] = field(default_factory=dict)
    _total: int = 0
    _suppressed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, client: str) -> tuple[bool, int]:
        """Whether to record an alert for this refusal, and how many were suppressed since the
        last one recorded."""
        now = time.monotonic()
        with self._lock:
            if now - self._window_start > self.window_seconds:
                self._window_start, self._counts, self._total = now, {}, 0
            count = self._counts[client] = self._counts.get(client, 0) + 1
            if len(self._counts) > 10_000:  # a flood of distinct addresses: keep memory bounded
                self._counts = {client: count}
            self._total += 1
            if count > self.per_client or self._total > self.overall:
                self._suppressed += 1
                return False, 0
            suppressed, self._suppressed = self._suppressed, 0
            return True, suppressed


class HookLimiter(Protocol):
    """What the hook route needs of a rate limit (this process's, or one shared by workers)."""

    def check(self, key: str) -> None: ...


def hook_burst(rate: float) -> float:
    """The burst allowed with a hook rate of ``rate`` per second."""
    return max(10.0, rate * 2)


class RateLimiter:
    """A token bucket per identity: ``rate`` requests per second with bursts of ``burst``, so
    one agent flooding the gateway cannot take the others' latency with it."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one request from ``key``'s bucket; raise RateLimitedError when it is empty."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimitedError(
                    f"too many requests for this token (limit {self.rate:g}/s, burst "
                    f"{self.burst:g}); retry in {wait:.2f} s",
                    retry_after=wait,
                )
            self._buckets[key] = (tokens - 1.0, now)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)


class Authenticator:
    """Turns a request's credentials into an Identity, or raises the refusal."""

    def __init__(
        self,
        identify_token: Callable[[str], Identity | None],
        *,
        trusted_proxies: TrustedProxies | None = None,
    ) -> None:
        self._identify_token = identify_token
        self.proxies = trusted_proxies or TrustedProxies()

    def client_address(self, request: Request) -> str:
        return self.proxies.client_address(request)

    def bearer_token(self, request: Request) -> str:
        header = request.headers.get("authorization")
        if not header:
            raise AuthenticationError("no Authorization header")
        match = _BEARER.match(header)
        if match is None:
            raise AuthenticationError("the Authorization header is not 'Bearer <token>'")
        return match.group(1)

    def identify(self, token: str) -> Identity:
        identity = self._identify_token(token)
        if identity is None:
            raise AuthenticationError("the token is unknown or revoked")
        return identity

    def authorize(self, identity: Identity, roles: frozenset[Role], what: str) -> Identity:
        if identity.role not in roles:
            wanted = " or ".join(sorted(roles))
            raise ForbiddenError(
                f"a token of role {identity.role!r} cannot {what}; this needs an {wanted} token"
            )
        return identity
