"""Incident export from the gateway: ``GET /v1/reports`` (HTML, Markdown or JSON) and
``GET /v1/evidence`` (an evidence bundle), for auditor and admin tokens. Built in a worker
thread from a read-only connection; every request is recorded as ``audit_access``."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from trailguard.errors import NotFoundError
from trailguard.events import AuditAccess
from trailguard.gateway.services import Gateway, gateway_services, require
from trailguard.incident.records import Scope
from trailguard.retrieval import parse_time
from trailguard.store.base import Store
from trailguard.store.gateway_state import Identity

router = APIRouter(tags=["incident"])
Reader = Annotated[Identity, Depends(require("auditor", "admin", what="export the record"))]
Services = Annotated[Gateway, Depends(gateway_services)]
KEY_SOURCE = "the gateway's own signing key (the one its ledger is pinned to)"
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
}
SessionsQuery = Annotated[
    list[str] | None, Query(description="session id (exact); repeat for several")
]


def _scope(
    store: Store,
    sessions: list[str] | None,
    developer: str | None,
    project: str | None,
    since: str | None,
    until: str | None,
) -> Scope:
    for session in sessions or ():
        if session not in store.session_ids(session, limit=1):
            raise NotFoundError(f"session: no session {session[:100]!r} in this ledger")
    return Scope(
        sessions=tuple(sessions or ()),
        developer=developer,
        project=project,
        since=parse_time(since, name="since") if since else None,
        until=parse_time(until, name="until") if until else None,
    )


async def _record(
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


@router.get(
    "/v1/reports",
    response_class=Response,
    responses={
        200: {
            "description": "the report",
            "content": {
                media: {"schema": {"type": "object" if form == "json" else "string"}}
                for form, media in MEDIA_TYPES.items()
            },
        }
    },
)
async def reports(
    identity: Reader,
    services: Services,
    session: SessionsQuery = None,
    developer: Annotated[str | None, Query(description="developer id")] = None,
    project: Annotated[str | None, Query(description="project id")] = None,
    since: Annotated[str | None, Query(description="RFC 3339 time or date, inclusive")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 time or date, exclusive")] = None,
    format: Annotated[Literal["html", "md", "json"], Query(description="report form")] = "html",
) -> Response:
    """The incident report of the sessions (or the developer's or project's events), each
    event verified against the latest signed tree head; recorded as ``audit_access``."""
    from trailguard.incident.html import render_html
    from trailguard.incident.markdown import render_markdown
    from trailguard.incident.report import build_report

    def build() -> tuple[str, int, str]:
        store = services.open_reader()
        try:
            scope = _scope(store, session, developer, project, since, until)
            report = build_report(
                store,
                scope,
                services.ledger.verifier,
                key_source=KEY_SOURCE,
                key_pinned=False,
                generated_by=f"{identity.developer_id} ({identity.role} token, GET /v1/reports)",
            )
        finally:
            store.close()
        if format == "html":
            text = render_html(report)
        elif format == "md":
            text = render_markdown(report)
        else:
            text = json.dumps(report.to_json(), ensure_ascii=False)
        return text, len(report.timeline), report.header.verification.to_json()["result"]

    text, count, result = await asyncio.to_thread(build)
    query = {"sessions": session, "developer": developer, "project": project, "since": since,
             "until": until, "format": format, "verification": result}  # fmt: skip
    await _record(services, identity, "GET /v1/reports", query, count)
    return Response(text, media_type=MEDIA_TYPES[format])


@router.get(
    "/v1/evidence",
    response_class=Response,
    responses={
        200: {
            "description": "the evidence bundle",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def evidence(
    identity: Reader,
    services: Services,
    session: SessionsQuery = None,
    developer: Annotated[str | None, Query(description="developer id")] = None,
    project: Annotated[str | None, Query(description="project id")] = None,
    since: Annotated[str | None, Query(description="RFC 3339 time or date, inclusive")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 time or date, exclusive")] = None,
) -> Response:
    """An evidence bundle (zip) of the scope's events with their proofs, to verify offline
    with `trailguard evidence verify` or the script inside it; recorded as ``audit_access``
    with the manifest's SHA-256."""
    from trailguard.incident.bundle import export_bundle

    def build() -> Any:
        store = services.open_reader()
        try:
            return export_bundle(
                store,
                _scope(store, session, developer, project, since, until),
                services.ledger.verifier,
                key_source=KEY_SOURCE,
                key_pinned=False,
                generated_by=f"{identity.developer_id} ({identity.role} token, GET /v1/evidence)",
            )
        finally:
            store.close()

    exported = await asyncio.to_thread(build)
    query = {"sessions": session, "developer": developer, "project": project, "since": since,
             "until": until, "manifestSha256": exported.manifest_sha256}  # fmt: skip
    await _record(services, identity, "GET /v1/evidence", query, exported.events)
    return Response(
        exported.data,
        media_type="application/zip",
        headers={
            "Content-Disposition": 'attachment; filename="trailguard-evidence.zip"',
            "X-Trailguard-Manifest-Sha256": exported.manifest_sha256,
        },
    )
