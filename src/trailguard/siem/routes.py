"""``GET /metrics``: the sinks' cursors, lag and deliveries in Prometheus' text format.

An auditor or admin token is required (Prometheus: ``authorization: {credentials_file: ...}``):
sink names, destinations and event volumes say who is watched and how busy the agents are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from trailguard.gateway.services import require
from trailguard.store.gateway_state import Identity

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "OK"}},
)
def metrics(
    request: Request,
    _: Annotated[Identity, Depends(require("auditor", "admin", what="read metrics"))],
) -> Response:
    """Prometheus metrics: ``trailguard_sink_cursor``, ``_lag_events``, ``_lag_seconds``,
    ``_delivered_events_total``, ``_delivery_failures_total``, ``_state`` per sink."""
    manager = getattr(request.app.state, "sinks", None)
    body = b"" if manager is None else generate_latest(manager.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
