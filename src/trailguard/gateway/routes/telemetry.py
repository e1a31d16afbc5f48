"""``POST /v1/logs`` and ``POST /v1/metrics``: Claude Code's OTLP/HTTP telemetry, from agent
tokens only. ``api_request`` records become cost; ``tool_decision`` / ``tool_result`` records
are kept as ``agent_event`` beside the hooks' own record of the same calls."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import JsonValue

from trailguard.capture.otlp import (
    ApiRequestUsage,
    OTLPEndpoint,
    TelemetryRecord,
    api_request_usage,
    openapi_of,
    tool_call_of,
)
from trailguard.errors import InvalidInputError
from trailguard.events import AgentEvent, Alert, Event
from trailguard.gateway.costs import from_telemetry
from trailguard.gateway.pipeline import redact_event
from trailguard.gateway.services import Gateway, gateway_services, require
from trailguard.store.gateway_state import Identity

TELEMETRY_KEPT: Final = frozenset({"tool_decision", "tool_result"})
"""Telemetry records kept as agent_event (api_request records become cost events)."""

router = APIRouter(tags=["telemetry"])
Agent = Annotated[Identity, Depends(require("agent", "admin", what="post telemetry"))]
Services = Annotated[Gateway, Depends(gateway_services)]
_LOGS: Final = OTLPEndpoint.logs()
_METRICS: Final = OTLPEndpoint.metrics()


MAX_PLAUSIBLE_TOKENS: Final = 5_000_000
"""More tokens than any model takes in or puts out in one request: a claim not to be charged."""
MAX_PLAUSIBLE_REQUEST_USD: Final = 100.0


def _check_session_id(record: TelemetryRecord, index: int) -> None:
    session_id = record.session_id
    if session_id is not None and (len(session_id) > 256 or not session_id.isprintable()):
        raise InvalidInputError(
            f"log record {index}: session.id must be at most 256 printable characters "
            f"(got {len(session_id)})"
        )


def _implausible(usage: ApiRequestUsage) -> str | None:
    tokens = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_creation_tokens,
        usage.cache_creation_5m_tokens,
        usage.cache_creation_1h_tokens,
    )
    if any(count < 0 or count > MAX_PLAUSIBLE_TOKENS for count in tokens):
        return f"a token count outside 0..{MAX_PLAUSIBLE_TOKENS:,}"
    if usage.cost_usd is not None and not 0 <= usage.cost_usd <= MAX_PLAUSIBLE_REQUEST_USD:
        return f"a reported cost of ${usage.cost_usd:g} for one request"
    return None


async def _on_logs(services: Gateway, identity: Identity, records: list[TelemetryRecord]) -> None:
    """Telemetry is a claim of the agent's machine, taken through the same checks as hooks:
    records for another developer's session are refused (and alerted), usage is charged only to
    sessions of the reporting token, implausible usage is recorded as an alert and not charged,
    and everything stored is redacted."""
    for index, record in enumerate(records):
        _check_session_id(record, index)
    alerts: list[Alert] = []
    owned: list[TelemetryRecord] = []
    refused_sessions: set[str] = set()
    for record in records:
        session = services.sessions.get(record.session_id) if record.session_id else None
        if session is not None and session.developer_id not in (None, identity.developer_id):
            refused_sessions.add(record.session_id or "")
            continue
        owned.append(record)
    if refused_sessions:
        alerts.append(
            Alert(
                alert_type="session_hijack",
                severity="high",
                message=f"telemetry from token {identity.token_id} named {len(refused_sessions)} "
                "session(s) of another developer; those records were refused",
                details={
                    "targetSessionIds": list[JsonValue](sorted(refused_sessions)[:20]),
                    "tokenId": identity.token_id,
                    "path": "/v1/logs",
                },
                developer_id=identity.developer_id,
                source="gateway",
            )
        )
    observations = []
    for record in owned:
        usage = api_request_usage(record)
        if usage is None:
            continue
        problem = _implausible(usage)
        if problem is None:
            observations.append(from_telemetry(usage))
            continue
        alerts.append(
            Alert(
                alert_type="implausible_usage",
                severity="high",
                message=f"telemetry reported {problem}: recorded here, not charged to any budget",
                details={
                    "requestId": usage.request_id,
                    "model": usage.model,
                    "inputTokens": usage.input_tokens,
                    "outputTokens": usage.output_tokens,
                    "costUsd": usage.cost_usd,
                },
                session_id=record.session_id,
                developer_id=identity.developer_id,
                source="otlp",
            )
        )
    named: dict[tuple[str | None, str], list[str]] = {}
    for record in owned:
        call = tool_call_of(record)
        if call is not None:
            named.setdefault((record.session_id, call[0]), []).append(call[1])
    tool_calls = [
        (session, request, tuple(dict.fromkeys(ids))) for (session, request), ids in named.items()
    ]
    await services.costs.record(observations, tool_calls)
    kept: list[Event] = [
        AgentEvent(
            session_id=record.session_id,
            developer_id=identity.developer_id,
            project_id=_project_of(services, record.session_id),
            name=f"telemetry.{record.event_name}",
            payload=dict(record.attributes),
            source="otlp",
        )
        for record in owned
        if record.event_name in TELEMETRY_KEPT and record.session_id
    ]
    events = [redact_event(services.redactor, event) for event in (*kept, *alerts)]
    if events:
        await services.record(events)


def _project_of(services: Gateway, session_id: str | None) -> str | None:
    session = services.sessions.get(session_id) if session_id else None
    return session.project_id if session else None


@router.post("/v1/logs", summary="OTLP/HTTP logs export", **openapi_of("ExportLogsService"))
async def otlp_logs(request: Request, identity: Agent, services: Services) -> Response:
    """Claude Code's telemetry events (``api_request``, ``tool_result``, ...)."""

    async def deliver(records: list[Any]) -> None:
        await _on_logs(services, identity, records)

    return await _LOGS.respond(request, deliver)


@router.post(
    "/v1/metrics", summary="OTLP/HTTP metrics export", **openapi_of("ExportMetricsService")
)
async def otlp_metrics(request: Request, identity: Agent) -> Response:
    """Claude Code's metrics (``claude_code.cost.usage``, ...): decoded and checked, not stored
    (the same figures arrive as ``api_request`` log records)."""
    return await _METRICS.respond(request, None)
