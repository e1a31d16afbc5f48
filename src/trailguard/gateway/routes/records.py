"""Reading the record: ``GET /v1/events`` for auditors and ``GET /v1/checkpoint`` for anyone.

Store reads run off the event loop that answers PreToolUse — large ones in a read process
(gateway/readers.py) — and return the stored canonical bytes without decoding them, so a large
read does not hold up a tool call.
Every read by a person is itself recorded as ``audit_access``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, Response

from trailguard.errors import NotFoundError
from trailguard.events import AuditAccess
from trailguard.gateway.services import Gateway, gateway_services, require
from trailguard.ledger.proof import ProofBundleError, latest_checkpoint_note
from trailguard.retrieval import EventQuery
from trailguard.store.gateway_state import Identity

MAX_QUERY_LIMIT = 10_000

router = APIRouter(tags=["record"])
Reader = Annotated[Identity, Depends(require("auditor", "admin", what="read the record"))]
Services = Annotated[Gateway, Depends(gateway_services)]


@router.get("/v1/events")
async def events(
    identity: Reader,
    services: Services,
    session: Annotated[str | None, Query(description="session id")] = None,
    developer: Annotated[str | None, Query(description="developer id")] = None,
    project: Annotated[str | None, Query(description="project id")] = None,
    since: Annotated[str | None, Query(description="RFC 3339 time or date, inclusive")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 time or date, exclusive")] = None,
    date: Annotated[str | None, Query(description="UTC day, YYYY-MM-DD")] = None,
    type: Annotated[str | None, Query(description="event type")] = None,
    tool: Annotated[str | None, Query(description="tool name (exact)")] = None,
    decision: Annotated[str | None, Query(description="allowed or denied")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_QUERY_LIMIT)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> Response:
    """Events in chronological order, with the CLI's filters. Auditor and admin tokens only;
    every query is itself recorded as an ``audit_access`` event."""
    filters: dict[str, Any] = {
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
    query = EventQuery.build(
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

    count, body = await services.readers.event_page(query)
    await services.record(
        [
            AuditAccess(
                developer_id=identity.developer_id,
                action="GET /v1/events",
                outcome="allowed",
                query={k: v for k, v in filters.items() if v is not None}
                | {"limit": limit, "offset": offset},
                result_count=count,
                source="gateway",
            )
        ]
    )
    return Response(body, media_type="application/json")


@router.get("/v1/checkpoint", response_class=PlainTextResponse)
async def checkpoint(services: Services) -> str:
    """The latest signed checkpoint (C2SP tlog-checkpoint), to keep off this host."""

    def read() -> str:
        store = services.open_reader()
        try:
            return latest_checkpoint_note(store, services.ledger.verifier)
        except ProofBundleError as exc:
            raise NotFoundError(str(exc)) from None
        finally:
            store.close()

    return await asyncio.to_thread(read)
