"""``GET /v1/sessions/{id}/completeness`` and ``GET /v1/completeness``: per session, how many
tool calls each source saw and the gaps; over sessions, the figure an auditor asks for first.
Auditor and admin tokens only; every read is recorded as ``audit_access``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from trailguard.completeness.report import figures, session_completeness
from trailguard.errors import NotFoundError
from trailguard.events import AuditAccess
from trailguard.gateway.services import Gateway, gateway_services, require
from trailguard.retrieval import parse_time
from trailguard.store.gateway_state import Identity

router = APIRouter(tags=["record"])
Reader = Annotated[Identity, Depends(require("auditor", "admin", what="read the record"))]
Services = Annotated[Gateway, Depends(gateway_services)]


async def _recorded(
    services: Gateway, identity: Identity, action: str, query: dict[str, Any], count: int
) -> None:
    await services.record(
        [
            AuditAccess(
                developer_id=identity.developer_id,
                action=action,
                outcome="allowed",
                query={k: v for k, v in query.items() if v is not None},
                result_count=count,
                source="gateway",
            )
        ]
    )


@router.get("/v1/sessions/{session_id}/completeness")
async def session(session_id: str, identity: Reader, services: Services) -> dict[str, Any]:
    """How many tool calls each source (hooks, API proxy, telemetry, transcript) saw in the
    session, how many were decided and ended, and every gap."""

    def read() -> dict[str, Any] | None:
        store = services.open_reader()
        try:
            found = session_completeness(store, session_id)
        finally:
            store.close()
        return found.to_json() if found is not None else None

    report = await asyncio.to_thread(read)
    await _recorded(
        services,
        identity,
        "GET /v1/sessions/{id}/completeness",
        {"session": session_id[:256]},
        0 if report is None else 1,
    )
    if report is None:
        raise NotFoundError(f"no events for session {session_id[:256]!r}")
    return report


@router.get("/v1/completeness")
async def overall(
    identity: Reader,
    services: Services,
    since: Annotated[str | None, Query(description="RFC 3339 time or date, inclusive")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 time or date, exclusive")] = None,
    developer: Annotated[str | None, Query(description="developer id")] = None,
    project: Annotated[str | None, Query(description="project id")] = None,
) -> dict[str, Any]:
    """Over the sessions active in the window: tool calls seen, by source, decided, ended,
    gaps, unaudited sessions; and each incomplete session."""
    since_at = parse_time(since, name="since") if since else None
    until_at = parse_time(until, name="until") if until else None

    def read() -> dict[str, Any]:
        store = services.open_reader()
        try:
            return figures(
                store, since=since_at, until=until_at, developer=developer, project=project
            ).to_json()
        finally:
            store.close()

    result = await asyncio.to_thread(read)
    await _recorded(
        services,
        identity,
        "GET /v1/completeness",
        {"since": since, "until": until, "developer": developer, "project": project},
        int(result["sessions"]),
    )
    return result
