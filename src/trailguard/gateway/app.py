"""The gateway's HTTP app (FastAPI): the shared services, the routers, and one error model.

Every hook is committed to the ledger before it is answered. Errors follow trailguard.errors:
what the client sent is a 4xx naming the problem; a refused credential or role is also recorded
as an alert; trailguard's own faults are a 5xx and an alert, never a 400.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import JsonValue

from trailguard import __version__
from trailguard.capture.anthropic_proxy import (
    DEFAULT_UPSTREAM,
    AnthropicProxy,
    ModelRequestRecord,
    mount_proxy,
)
from trailguard.completeness.live import HookRequirement, ProxySightings
from trailguard.completeness.report import DEFAULT_RULES, Rules
from trailguard.completeness.watcher import CompletenessWatcher
from trailguard.console import mount_console
from trailguard.cost.accounting import CostAccountant
from trailguard.cost.budgets import BudgetConfig, BudgetTracker
from trailguard.cost.loops import LoopDetector
from trailguard.cost.prices import load_price_table
from trailguard.errors import (
    AuthenticationError,
    FaultError,
    ForbiddenError,
    RateLimitedError,
    TrailguardError,
)
from trailguard.events import Alert, AuditAccess, PolicyChange
from trailguard.gateway.auth import (
    Authenticator,
    HookLimiter,
    RateLimiter,
    TrustedProxies,
    hook_burst,
)
from trailguard.gateway.costs import CostRecorder, preload_budgets
from trailguard.gateway.fact_ids import FactIds
from trailguard.gateway.hooks import HookHandler
from trailguard.gateway.pipeline import redact_event
from trailguard.gateway.proxy_usage import identify_agent, record_model_request
from trailguard.gateway.reaper import Reaper
from trailguard.gateway.routes import (
    completeness,
    correlate,
    health,
    hooks,
    incident,
    records,
    telemetry,
)
from trailguard.gateway.routes.docs import install_docs
from trailguard.gateway.services import Gateway
from trailguard.gateway.sessions import SessionRegistry
from trailguard.gateway.shared_changes import ChangeWatch, SharedChanges
from trailguard.gateway.shared_spend import SharedSpend
from trailguard.gateway.warmup import warm_up
from trailguard.ledger.keys import REDACTION_KEY_FILE, redaction_key
from trailguard.ledger.log import EventLog
from trailguard.policy.store import PolicyStore
from trailguard.redact import Redactor
from trailguard.siem import routes as siem_routes
from trailguard.siem.config import SinkConfig, SinkConfigError
from trailguard.siem.manager import SinkManager
from trailguard.store.gateway_state import GatewayState

log = logging.getLogger("trailguard.gateway")


def _client(services: Gateway, request: Request) -> str:
    return services.auth.client_address(request)


_READ_ROUTES = (
    "/v1/events",
    "/v1/reports",
    "/v1/evidence",
    "/v1/sessions",
    "/v1/completeness",
    "/ui/",
)


def _refused_read(request: Request, reason: str) -> list[AuditAccess]:
    """A refused read of the record is itself part of the record (PCI DSS 10.2)."""
    if request.method != "GET" or not request.url.path.startswith(_READ_ROUTES):
        return []
    identity = getattr(request.state, "identity", None)
    query: dict[str, JsonValue] = {k: v[:256] for k, v in list(request.query_params.items())[:20]}
    return [
        AuditAccess(
            action=f"GET {request.url.path}"[:512],
            outcome="refused",
            developer_id=identity.developer_id if identity else None,
            query=query | {"refusedBecause": reason[:256]},
            source="gateway",
        )
    ]


def _refusal_details(client: str, request: Request, exc: ForbiddenError) -> dict[str, JsonValue]:
    details: dict[str, JsonValue] = {"client": client, "path": request.url.path, "reason": str(exc)}
    details.update((k, v) for k, v in exc.details.items() if isinstance(v, str | int | None))
    return details


def _install_error_handlers(app: FastAPI) -> None:
    async def on_trailguard_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TrailguardError)  # registered for TrailguardError only
        services: Gateway = request.app.state.gateway
        client = _client(services, request)
        status = exc.http_status
        headers: dict[str, str] = {}
        detail = str(exc)
        if isinstance(exc, AuthenticationError):
            headers["WWW-Authenticate"] = "Bearer"
            detail = (
                f"{exc}. Send 'Authorization: Bearer <token>' with a token from "
                "`trailguard token create`."
            )
            await services.record_alert(
                Alert(
                    alert_type="authentication_failed",
                    severity="high",
                    message=f"request to {request.url.path} from {client} refused: {exc}",
                    details={"client": client, "path": request.url.path, "reason": str(exc)},
                    source="gateway",
                ),
                client=client,
                also=_refused_read(request, str(exc)),
            )
        elif isinstance(exc, ForbiddenError):
            identity = getattr(request.state, "identity", None)
            await services.record_alert(
                Alert(
                    alert_type=exc.alert_type,
                    severity=exc.severity,  # type: ignore[arg-type]
                    message=f"{request.method} {request.url.path} from {client} refused: {exc}",
                    details=_refusal_details(client, request, exc),
                    developer_id=identity.developer_id if identity else None,
                    source="gateway",
                ),
                client=client,
                also=_refused_read(request, str(exc)),
            )
        elif isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        elif isinstance(exc, FaultError):
            log.error("trailguard: %s %s failed: %s", request.method, request.url.path, exc)
            await services.record_alert(
                Alert(
                    alert_type="gateway_fault",
                    severity="high",
                    message=f"{request.method} {request.url.path} failed: {exc}",
                    details={"path": request.url.path, "error": type(exc).__name__},
                    source="gateway",
                ),
                client="gateway",
            )
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # A bug: said loudly, recorded, and answered 500 — never "your payload was bad".
        log.exception("trailguard: internal error on %s %s", request.method, request.url.path)
        services: Gateway = request.app.state.gateway
        await services.record_alert(
            Alert(
                alert_type="internal_error",
                severity="high",
                message=f"{request.method} {request.url.path} failed with an internal error "
                f"({type(exc).__name__}); nothing of the request was recorded",
                details={"path": request.url.path, "error": type(exc).__name__},
                source="gateway",
            ),
            client="gateway",
        )
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); this is a bug in trailguard"},
            status_code=500,
        )

    app.add_exception_handler(TrailguardError, on_trailguard_error)
    app.add_exception_handler(Exception, on_unexpected_error)


def create_app(
    ledger: EventLog,
    *,
    idle_timeout: float | None = None,
    policy_dir: Path | None = None,
    budgets: BudgetConfig | None = None,
    prices_file: Path | None = None,
    anthropic_upstream: str = DEFAULT_UPSTREAM,
    stop_reason: str = "shutdown",
    trusted_proxies: tuple[str, ...] = (),
    hook_rate_per_second: float | None = None,
    require_hooks: bool = False,
    completeness_rules: Rules | None = None,
    sinks: Sequence[SinkConfig] = (),
    lead_jobs: bool = True,
    hook_limiter: HookLimiter | None = None,
    share_state: bool = False,
    changes: SharedChanges | None = None,
) -> FastAPI:
    """The gateway app over an open ``ledger``. Its lifespan runs the session reaper and, at
    shutdown, closes the ledger (``gateway_stop`` and a final checkpoint).

    ``completeness_rules``: the grace periods of the completeness watcher.
    ``require_hooks``: the proxy refuses model requests of sessions no hook has reported.

    Raises PolicyError when ``policy_dir`` (default: the shipped pack) does not load.
    ``sinks`` are SIEM forwarders (trailguard.siem), started and stopped with the app.

    For one of several worker processes (``serve --workers N``): ``lead_jobs`` is false in all
    but one (it records the policy in force, runs the completeness watcher and the sinks),
    ``hook_limiter`` is the rate limit they share, ``share_state`` makes session starts,
    ends and kills go through the state file as for replicas of a shared ledger, and
    ``changes`` (this worker's ``SharedChanges``) tells every worker of a kill, an exhausted
    budget or a new policy before it answers its next request.
    """
    state = ledger.backend.open_state()
    if share_state and isinstance(state, GatewayState):
        state.shared = True
    sessions = SessionRegistry(state)
    policies = PolicyStore(policy_dir)
    budget_tracker = BudgetTracker(budgets or BudgetConfig())
    reader = ledger.backend.open_reader()
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
    if sessions.shared:  # replicas of a shared ledger: budgets count every replica's spend
        costs.shared_spend = SharedSpend(
            budget_tracker, ledger.backend.open_reader, costs.accountant
        )
    secret = ledger.backend.redaction_key()
    redactor = Redactor(secret)
    facts = FactIds(secret)
    costs.facts = facts
    costs.changes = changes
    handler = HookHandler(ledger, sessions, policies, redactor, costs)
    watch = None
    if changes is not None:
        watch = handler.watch = ChangeWatch(changes, sessions, policies, costs.shared_spend)
    reaper = Reaper(
        ledger,
        sessions,
        state,
        policies,
        redactor=redactor,
        shared_spend=costs.shared_spend,
        changes=changes,
        facts=facts,
        **({"idle_timeout": idle_timeout} if idle_timeout else {}),
    )
    services = Gateway(
        ledger=ledger,
        state=state,
        sessions=sessions,
        policies=policies,
        costs=costs,
        handler=handler,
        reaper=reaper,
        redactor=redactor,
        auth=Authenticator(state.identify, trusted_proxies=TrustedProxies(trusted_proxies)),
        hook_rate=hook_limiter
        or (
            RateLimiter(hook_rate_per_second, hook_burst(hook_rate_per_second))
            if hook_rate_per_second
            else None
        ),
    )
    handler.executor = services.cpu
    services.local_state = isinstance(state, GatewayState)
    watcher = CompletenessWatcher(
        ledger, sessions, redactor, rules=completeness_rules or DEFAULT_RULES
    )
    requirement = HookRequirement(sessions, required=require_hooks)
    sightings = ProxySightings(sessions)

    def record_sink_alert(alert: Alert) -> None:
        ledger.submit(redact_event(redactor, alert))

    sink_manager = None
    if sinks and lead_jobs:
        data_dir = getattr(ledger.backend, "data_dir", None)
        if not isinstance(data_dir, Path):
            raise SinkConfigError(
                "SIEM sinks stream from a data-directory ledger; a shared ledger cannot have "
                "sinks yet (their cursors would have to be shared too)"
            )
        sink_manager = SinkManager(
            data_dir,
            sinks,
            verifier_key=ledger.verifier.to_string(),
            record_alert=record_sink_alert,
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Before the first request: what the first tool call of a session would pay otherwise.
        await asyncio.get_running_loop().run_in_executor(services.cpu, warm_up, policies, redactor)
        if lead_jobs:
            await services.record(
                [
                    PolicyChange(
                        policy_version=policies.current.version,
                        description=f"in force at gateway start: {policies.current.source}",
                        source="gateway",
                    )
                ]
            )
            if changes is not None:  # recorded: the other workers enforce exactly this set
                await asyncio.to_thread(changes.publish_policy, policies.current)
        if watch is not None:  # the lead's policy and the state as they are, before serving
            await asyncio.to_thread(watch.refresh)
        reaper.start()
        if lead_jobs:
            watcher.start()
        if sink_manager is not None:
            sink_manager.start()
        try:
            yield
        finally:
            if lead_jobs:
                watcher.stop()
            reaper.stop()
            services.cpu.shutdown(wait=True)
            services.readers.shutdown()
            if costs.shared_spend is not None:
                costs.shared_spend.close()
            ledger.close(reason=stop_reason)
            if sink_manager is not None:  # after the close: gateway_stop and its checkpoint go too
                sink_manager.stop()
            state.close()

    app = FastAPI(
        title="trailguard",
        version=__version__,
        summary="Audit trail gateway for AI coding agents",
        lifespan=lifespan,
        docs_url=None,  # their defaults load Swagger UI / ReDoc from a CDN: see routes/docs.py
        redoc_url=None,
    )
    install_docs(app)
    app.state.gateway = services
    app.state.sinks = sink_manager
    _install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(hooks.router)
    app.include_router(records.router)
    app.include_router(incident.router)
    app.include_router(telemetry.router)
    app.include_router(completeness.router)
    app.include_router(correlate.router)
    app.include_router(siem_routes.router)
    sessions_dir = getattr(ledger.backend, "data_dir", None) if share_state else None
    mount_console(app, services, shared_sessions=sessions_dir)

    async def on_model_request(record: ModelRequestRecord) -> None:
        if record.refused and requirement.refusal(record.session_id) is not None:
            alerts = requirement.refusal_alert(record.session_id)
            if alerts:
                await services.record([redactor.redact_event(a) for a in alerts])
        elif not record.provisional:
            sighting = sightings.event_for(record)
            if sighting is not None:
                await services.record([redactor.redact_event(sighting)])
        await record_model_request(services, record)

    async def identify(token: str | None) -> str | None:
        return await identify_agent(services, token)

    def refuse(session_id: str | None) -> str | None:
        if watch is not None:
            watch.refresh_if_stale()
        return requirement.refusal(session_id) or costs.refusal(session_id)

    # The pass-through to the model API (documented in the OpenAPI spec as one operation; its
    # requests skip FastAPI's routing, see capture/anthropic_proxy.py).
    mount_proxy(
        app,
        AnthropicProxy(anthropic_upstream, on_model_request, refuse=refuse, identify=identify),
    )
    app.add_middleware(hooks.HookDispatch)  # the hook route, past FastAPI's routing
    return app


__all__ = ["REDACTION_KEY_FILE", "create_app", "redaction_key"]
