"""``POST /v1/logs`` and ``POST /v1/metrics``: Claude Code's OTLP/HTTP telemetry, from agent
tokens only. ``api_request`` records become cost; ``tool_decision`` / ``tool_result`` records
are kept as ``agent_event`` beside the hooks' own record of the same calls."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from trailguard.capture.otlp import (
    OTLPEndpoint,
    TelemetryRecord,
    api_request_usage,
    openapi_of,
)
from trailguard.events import AgentEvent
from trailguard.gateway.costs import from_telemetry
from trailguard.gateway.pipeline import redact_event
from trailguard.gateway.services import Gateway, gateway, require
from trailguard.store.gateway_state import Identity

TELEMETRY_KEPT: Final = frozenset({"tool_decision", "tool_result"})
"""Telemetry records kept as agent_event (api_request records become cost events)."""

router = APIRouter(tags=["telemetry"])
Agent = Annotated[Identity, Depends(require("agent", "admin", what="post telemetry"))]
Services = Annotated[Gateway, Depends(gateway)]
_LOGS: Final = OTLPEndpoint.logs()
_METRICS: Final = OTLPEndpoint.metrics()


async def _on_logs(services: Gateway, identity: Identity, records: list[TelemetryRecord]) -> None:
    usages = [api_request_usage(record) for record in records]
    await services.costs.record([from_telemetry(usage) for usage in usages if usage is not None])
    kept = [
        redact_event(
            services.redactor,
            AgentEvent(
                session_id=record.session_id,
                developer_id=identity.developer_id,
                name=f"telemetry.{record.event_name}",
                payload=dict(record.attributes),
                source="otlp",
            ),
        )
        for record in records
        if record.event_name in TELEMETRY_KEPT and record.session_id
    ]
    if kept:
        await services.record(kept)


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
