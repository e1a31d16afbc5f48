"""What every route of the gateway shares, on ``app.state.gateway``: the ledger, the gateway
state, the hook handler, authentication, and how to record an event from a route.

Routes get it with the ``gateway`` dependency; nothing lives in module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, TypeVar

from fastapi import Request

from trailguard.events import Alert, Event
from trailguard.gateway.auth import AlertLimiter, Authenticator, HookLimiter
from trailguard.gateway.costs import CostRecorder
from trailguard.gateway.hooks import HookHandler
from trailguard.gateway.pipeline import redact_event
from trailguard.gateway.readers import ReadProcesses
from trailguard.gateway.reaper import Reaper
from trailguard.gateway.sessions import SessionRegistry
from trailguard.ledger.log import EventLog
from trailguard.ledger.writer import LedgerError, Receipt
from trailguard.policy.store import PolicyStore
from trailguard.redact import Redactor
from trailguard.store.base import Store
from trailguard.store.state import GatewayStateStore, Identity, Role

log = logging.getLogger("trailguard.gateway")
_T = TypeVar("_T")

MAX_BODY_BYTES: Final = 32 * 1024 * 1024
"""Larger request bodies are refused (413); tool outputs inside are truncated far below this."""


INLINE_BODY_BYTES: Final = 16 * 1024
"""Requests up to this size run the pipeline on the event loop: for them the hop to a thread
costs more than the work (profiled: docs/throughput.md)."""

HEAVY_BODY_BYTES: Final = 256 * 1024
"""Requests larger than this take a slot of the heavy-request gate before any work is done."""


class HeavyRequestGate:
    """Large requests (megabyte tool inputs or outputs) queue for a few slots: one at a time
    per token and ``overall`` at a time in all, so one agent's large requests slow its own
    calls, not another developer's. Small requests never wait here."""

    def __init__(self, overall: int = 2, per_token: int = 1) -> None:
        self._overall = asyncio.Semaphore(overall)
        self._per_token_slots = per_token
        self._per_token: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def slot(self, token_id: str) -> AsyncIterator[None]:
        semaphore, users = self._per_token.get(token_id, (None, 0))
        if semaphore is None:
            semaphore = asyncio.Semaphore(self._per_token_slots)
        self._per_token[token_id] = (semaphore, users + 1)
        try:
            async with semaphore, self._overall:
                yield
        finally:
            semaphore, users = self._per_token[token_id]
            if users <= 1:
                del self._per_token[token_id]
            else:
                self._per_token[token_id] = (semaphore, users - 1)


@dataclass
class Gateway:
    ledger: EventLog
    state: GatewayStateStore
    sessions: SessionRegistry
    policies: PolicyStore
    costs: CostRecorder
    handler: HookHandler
    reaper: Reaper
    redactor: Redactor
    auth: Authenticator
    alert_limiter: AlertLimiter = field(default_factory=AlertLimiter)
    hook_rate: HookLimiter | None = None
    cpu: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="trailguard-pipeline")
    )
    """Runs the CPU-bound stages off the event loop."""
    heavy: HeavyRequestGate = field(default_factory=HeavyRequestGate)
    local_state: bool = False
    """The gateway state is a local SQLite file: token look-ups run on the event loop."""
    readers: ReadProcesses = field(init=False)
    """Large reads of the record, in their own processes (gateway/readers.py)."""

    def __post_init__(self) -> None:
        self.readers = ReadProcesses(self.ledger.backend)

    async def off_loop(self, work: Callable[[], _T]) -> _T:
        """Run CPU-bound ``work`` on the pipeline threads, not the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.cpu, work)

    async def record(self, events: Sequence[Event]) -> list[Receipt]:
        """Append ``events`` (already built and redacted) and wait until they are durable."""
        return await asyncio.wrap_future(self.ledger.submit_many(list(events)))

    async def record_alert(self, alert: Alert, *, client: str, also: Sequence[Event] = ()) -> None:
        """Append an alert about a request (and ``also``, e.g. the refused read), at most so
        many per client and overall: a flood of bad requests must not fill the disk with
        alerts. Never raises (it reports a failure)."""
        admitted, suppressed = self.alert_limiter.admit(client)
        if not admitted:
            return
        if suppressed:
            details = dict(alert.details or {}) | {"suppressedSinceLastAlert": suppressed}
            alert = alert.model_copy(update={"details": details})
        try:
            await self.record([redact_event(self.redactor, e) for e in (alert, *also)])
        except LedgerError as exc:
            log.error("trailguard: could not record a %s alert: %s", alert.alert_type, exc)

    def open_reader(self) -> Store:
        """A read-only store connection (for a worker thread, never the event loop)."""
        return self.ledger.backend.open_reader()


def gateway(request: Request) -> Gateway:
    """The shared services of the app serving ``request``."""
    found: Gateway = request.app.state.gateway
    return found


async def gateway_services(request: Request) -> Gateway:
    """``gateway`` as the FastAPI dependency routes use. It is a coroutine function because
    FastAPI runs a plain function dependency on its thread pool: a thread hop per request
    for an attribute read."""
    return gateway(request)


async def authenticate(request: Request, allowed: frozenset[Role], what: str) -> Identity:
    """The identity of the request's bearer token, if its role is one of ``allowed``; the
    refusal is raised and the app's error handler records it."""
    services = gateway(request)
    token = services.auth.bearer_token(request)
    if services.local_state:  # an indexed read of a local file: cheaper than a thread hop
        identity = services.auth.identify(token)
    else:
        identity = await asyncio.to_thread(services.auth.identify, token)
    request.state.identity = identity  # for the error handler's record of a refusal
    return services.auth.authorize(identity, allowed, what)


def require(*roles: Role, what: str) -> Callable[[Request], Awaitable[Identity]]:
    """``authenticate`` as a dependency for routes."""
    allowed = frozenset(roles)

    async def dependency(request: Request) -> Identity:
        return await authenticate(request, allowed, what)

    return dependency
