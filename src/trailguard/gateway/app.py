"""The gateway's HTTP API (FastAPI): Claude Code hooks in, the record out to auditors.

Every hook is committed to the ledger before it is answered. Requests without a valid token are
refused with 401 and recorded as an ``alert``; bad payloads get a 4xx naming the problem.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from trailguard import __version__
from trailguard.capture.anthropic_proxy import (
    DEFAULT_UPSTREAM,
    ModelRequestRecord,
    create_proxy_router,
)
from trailguard.capture.claude_code import HookPayloadError
from trailguard.capture.otlp import TelemetryRecord, api_request_usage, create_otlp_router
from trailguard.cost.accounting import CostAccountant
from trailguard.cost.budgets import BudgetConfig, BudgetTracker
from trailguard.cost.loops import LoopDetector
from trailguard.cost.prices import load_price_table
from trailguard.events import (
    AgentEvent,
    Alert,
    AuditAccess,
    EventValidationError,
    PolicyChange,
)
from trailguard.gateway.costs import (
    CostRecorder,
    from_proxy,
    from_telemetry,
    preload_budgets,
)
from trailguard.gateway.hooks import HookHandler
from trailguard.gateway.reaper import Reaper
from trailguard.gateway.sessions import SessionRegistry
from trailguard.ledger.keys import write_private_file
from trailguard.ledger.proof import ProofBundleError, latest_checkpoint_note
from trailguard.ledger.writer import EventRejectedError, Ledger
from trailguard.policy.store import PolicyStore
from trailguard.redact import Redactor
from trailguard.retrieval import EventQuery, QueryError, query_events
from trailguard.store.gateway_state import GatewayState, Identity
from trailguard.store.sqlite import SQLiteStore

MAX_BODY_BYTES = 32 * 1024 * 1024
"""Larger hook payloads are refused (413); tool outputs inside are truncated far below this."""
MAX_QUERY_LIMIT = 10_000
TELEMETRY_KEPT = frozenset({"tool_decision", "tool_result"})
"""Telemetry records kept as agent_event (api_request records become cost events)."""
_BEARER = re.compile(r"^Bearer\s+(\S+)\s*$", re.IGNORECASE)

HOOK_BODY_SCHEMA = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["session_id", "hook_event_name"],
                "properties": {
                    "session_id": {"type": "string", "minLength": 1},
                    "hook_event_name": {"type": "string", "minLength": 1},
                    "tool_name": {"type": "string"},
                    "tool_input": {},
                    "tool_response": {},
                    "tool_use_id": {"type": "string"},
                },
                "additionalProperties": True,
            }
        }
    },
    "required": True,
}


@dataclass
class _FailedAuthLimiter:
    """At most ``per_minute`` auth-failure alerts per client; the rest are counted into the next.
    A client hammering the gateway with bad tokens must not fill the disk with alerts."""

    per_minute: int = 30
    window_start: float = 0.0
    counts: dict[str, int] | None = None
    suppressed: dict[str, int] | None = None

    def admit(self, client: str) -> tuple[bool, int]:
        now = time.monotonic()
        if self.counts is None or now - self.window_start > 60:
            self.window_start, self.counts = now, {}
            self.suppressed = self.suppressed or {}
        assert self.suppressed is not None
        self.counts[client] = self.counts.get(client, 0) + 1
        if self.counts[client] > self.per_minute:
            self.suppressed[client] = self.suppressed.get(client, 0) + 1
            return False, 0
        return True, self.suppressed.pop(client, 0)


class _TokenCache:
    """Token → identity, remembered for ``ttl`` seconds so a hook does not cost a database read.
    A revoked token stops working within ``ttl``; an unknown token is always looked up."""

    def __init__(self, state: GatewayState, ttl: float = 5.0) -> None:
        self._state = state
        self._ttl = ttl
        self._known: dict[str, tuple[float, Identity]] = {}

    def identify(self, token: str) -> Identity | None:
        now = time.monotonic()
        cached = self._known.get(token)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        identity = self._state.identify(token)
        if identity is None:
            self._known.pop(token, None)
        else:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[token] = (now, identity)
        return identity


REDACTION_KEY_FILE = "redaction.key"


def redaction_key(data_dir: Path) -> bytes:
    """The key of the redaction tags' keyed hash: created once per data directory (0600), so
    equal secrets get equal tags across restarts but the tags reveal nothing elsewhere."""
    path = data_dir / REDACTION_KEY_FILE
    if not path.exists():
        write_private_file(path, secrets.token_hex(32) + "\n")
    return bytes.fromhex(path.read_text().strip())


def create_app(
    ledger: Ledger,
    *,
    idle_timeout: float | None = None,
    policy_dir: Path | None = None,
    budgets: BudgetConfig | None = None,
    prices_file: Path | None = None,
    anthropic_upstream: str = DEFAULT_UPSTREAM,
    stop_reason: str = "shutdown",
) -> FastAPI:
    """The gateway app over an open ``ledger``. Its lifespan runs the session reaper and, at
    shutdown, closes the ledger (``gateway_stop`` and a final checkpoint).

    Raises PolicyError when ``policy_dir`` (default: the shipped pack) does not load.
    """
    state = GatewayState(ledger.data_dir)
    sessions = SessionRegistry(state)
    policies = PolicyStore(policy_dir)
    budget_tracker = BudgetTracker(budgets or BudgetConfig())
    reader = SQLiteStore.in_data_dir(ledger.data_dir, read_only=True)
    try:
        preload_budgets(reader, budget_tracker)
    finally:
        reader.close()
    costs = CostRecorder(
        ledger,
        sessions,
        CostAccountant(load_price_table(prices_file)),
        budget_tracker,
        LoopDetector(),
    )
    handler = HookHandler(
        ledger, sessions, policies, Redactor(redaction_key(ledger.data_dir)), costs
    )
    reaper = Reaper(
        ledger,
        sessions,
        state,
        policies,
        **({"idle_timeout": idle_timeout} if idle_timeout else {}),
    )
    limiter = _FailedAuthLimiter()
    tokens = _TokenCache(state)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await _append(
            ledger,
            PolicyChange(
                policy_version=policies.current.version,
                description=f"in force at gateway start: {policies.current.source}",
                source="gateway",
            ),
        )
        reaper.start()
        try:
            yield
        finally:
            reaper.stop()
            ledger.close(reason=stop_reason)
            state.close()

    app = FastAPI(
        title="trailguard",
        version=__version__,
        summary="Audit trail gateway for AI coding agents",
        lifespan=lifespan,
    )

    async def refuse(request: Request, reason: str, payload: Any = None) -> JSONResponse:
        """401, and an alert in the ledger (rate-limited per client address)."""
        client = request.client.host if request.client else "unknown"
        admitted, suppressed = limiter.admit(client)
        if admitted:
            details: dict[str, Any] = {"client": client, "path": request.url.path, "reason": reason}
            if suppressed:
                details["suppressedSinceLastAlert"] = suppressed
            claimed_session = payload.get("session_id") if isinstance(payload, dict) else None
            await _append(
                ledger,
                Alert(
                    alert_type="authentication_failed",
                    severity="high",
                    message=f"request to {request.url.path} from {client} refused: {reason}",
                    details=details,
                    session_id=claimed_session
                    if isinstance(claimed_session, str)
                    and 0 < len(claimed_session) <= 256
                    and claimed_session.isprintable()
                    else None,
                    source="gateway",
                ),
            )
        return JSONResponse(
            {
                "detail": f"{reason}. Send 'Authorization: Bearer <token>' with a token from "
                "`trailguard token create`."
            },
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    def identify(request: Request) -> tuple[Identity | None, str]:
        header = request.headers.get("authorization")
        if not header:
            return None, "no Authorization header"
        match = _BEARER.match(header)
        if match is None:
            return None, "the Authorization header is not 'Bearer <token>'"
        identity = tokens.identify(match.group(1))
        if identity is None:
            return None, "the token is unknown or revoked"
        return identity, ""

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness and the ledger's size; 503 when the ledger writer has stopped."""
        if not ledger.healthy:
            raise HTTPException(status_code=503, detail="the ledger writer is not running")
        return {"status": "ok", "version": __version__, "treeSize": ledger.tree_size}

    @app.get("/v1/checkpoint", response_class=PlainTextResponse)
    def checkpoint() -> str:
        """The latest signed checkpoint (C2SP tlog-checkpoint), to keep off this host."""
        store = SQLiteStore.in_data_dir(ledger.data_dir, read_only=True)
        try:
            return latest_checkpoint_note(store, ledger.verifier)
        except ProofBundleError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        finally:
            store.close()

    @app.post(
        "/hooks/claude-code",
        openapi_extra={"requestBody": HOOK_BODY_SCHEMA},
        responses={
            400: {"description": "Malformed payload"},
            401: {"description": "Missing or invalid token"},
            409: {"description": "Event id already recorded"},
            413: {"description": "Payload too large"},
        },
    )
    async def claude_code_hook(request: Request) -> JSONResponse:
        """Record one Claude Code hook event and answer with the hook output it expects."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _problem(413, f"payload of {declared} bytes exceeds {MAX_BODY_BYTES} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _problem(413, f"payload exceeds {MAX_BODY_BYTES} bytes")
        payload = _parse_json_object(bytes(body))
        identity, reason = identify(request)
        if identity is None:
            return await refuse(request, reason, payload if isinstance(payload, dict) else None)
        if isinstance(payload, JSONResponse):
            return payload
        if identity.role == "auditor":
            return _problem(403, "auditor tokens read the record; hooks need an agent token")
        event_id = request.headers.get("x-trailguard-event-id")
        if event_id is not None:
            try:
                event_id = str(uuid.UUID(event_id))
            except ValueError:
                return _problem(400, "X-Trailguard-Event-Id must be a UUID")
        try:
            reply = await handler.handle(payload, identity, event_id)
        except (HookPayloadError, EventValidationError, EventRejectedError, ValueError) as exc:
            return _problem(400, f"hook payload rejected: {exc}")
        except RecursionError:
            return _problem(400, "hook payload rejected: nested too deeply to examine")
        return JSONResponse(reply.body, status_code=reply.status)

    @app.get("/v1/events")
    async def events(
        request: Request,
        session: str | None = None,
        developer: str | None = None,
        project: str | None = None,
        since: str | None = None,
        until: str | None = None,
        date: Annotated[str | None, Query(description="UTC day, YYYY-MM-DD")] = None,
        type: Annotated[str | None, Query(description="event type")] = None,
        tool: str | None = None,
        decision: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_QUERY_LIMIT)] = 1000,
        offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    ) -> JSONResponse:
        """Events in chronological order, with the CLI's filters. Auditor and admin tokens only;
        every query is itself recorded as an ``audit_access`` event."""
        identity, reason = identify(request)
        if identity is None:
            return await refuse(request, reason)
        if identity.role not in ("auditor", "admin"):
            return _problem(
                403, f"role {identity.role!r} cannot read the record; use an auditor token"
            )
        filters = {
            "session": session,
            "developer": developer,
            "project": project,
            "since": since,
            "until": until,
            "date": date,
            "type": type,
            "tool": tool,
            "decision": decision,
        }
        try:
            event_query = EventQuery.build(
                session=session,
                developer=developer,
                project=project,
                since=since,
                until=until,
                day=date,
                event_type=type,
                tool=tool,
                decision=decision,
                limit=limit,
                offset=offset,
            )
        except QueryError as exc:
            return _problem(400, str(exc))
        store = SQLiteStore.in_data_dir(ledger.data_dir, read_only=True)
        try:
            found = list(query_events(store, event_query))
        finally:
            store.close()
        await _append(
            ledger,
            AuditAccess(
                developer_id=identity.developer_id,
                action="GET /v1/events",
                query={k: v for k, v in filters.items() if v is not None}
                | {"limit": limit, "offset": offset},
                result_count=len(found),
                source="gateway",
            ),
        )
        return JSONResponse({"count": len(found), "events": found})

    async def on_model_request(record: ModelRequestRecord) -> None:
        observation = from_proxy(record)
        if observation is not None:
            await costs.record([observation])

    # A pass-through to the model API: not trailguard's own API, so not in its OpenAPI spec.
    app.include_router(
        create_proxy_router(anthropic_upstream, on_model_request, refuse=costs.refusal),
        include_in_schema=False,
    )

    async def on_telemetry(records: list[TelemetryRecord]) -> None:
        usages = [api_request_usage(record) for record in records]
        await costs.record([from_telemetry(usage) for usage in usages if usage is not None])
        # The agent's own account of its tool decisions and results, kept beside the hooks'.
        kept = [
            AgentEvent(
                session_id=record.session_id,
                name=f"telemetry.{record.event_name}",
                payload=dict(record.attributes),
                source="otlp",
            )
            for record in records
            if record.event_name in TELEMETRY_KEPT and record.session_id
        ]
        if kept:
            await asyncio.wrap_future(ledger.submit_many(kept))

    async def require_agent_token(request: Request) -> None:
        identity, reason = identify(request)
        if identity is None:
            raise HTTPException(
                status_code=401,
                detail=f"{reason}; send OTLP with "
                "OTEL_EXPORTER_OTLP_HEADERS='Authorization=Bearer <token>'",
            )

    app.include_router(
        create_otlp_router(on_telemetry), dependencies=[Depends(require_agent_token)]
    )
    return app


async def _append(ledger: Ledger, event: Any) -> None:
    await asyncio.wrap_future(ledger.submit_many([event]))


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _parse_json_object(body: bytes) -> dict[str, Any] | JSONResponse:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _problem(400, f"payload is not valid UTF-8 (byte {exc.start})")
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return _problem(400, f"payload is not JSON: {exc}")
    if not isinstance(payload, dict):
        return _problem(400, "payload must be a JSON object (a Claude Code hook event)")
    return payload
