"""The auditor console: server-rendered pages under ``/ui/`` for people who read the record.

Sign-in with auditor or admin tokens, sessions and their timelines, denials, infrastructure,
alerts, cost, integrity, the access log, and admin actions; every asset is vendored in this
package (no CDN), every view is recorded as ``audit_access``. :func:`mount_console` adds it to
the gateway's app, together with a Swagger UI at ``/docs`` served from the same vendored files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from trailguard.console.auth import ConsoleSessions
from trailguard.console.integrity import VerifyJob
from trailguard.console.pages import Renderer
from trailguard.console.routes import router
from trailguard.console.templating import environment
from trailguard.console.web import Console, console_of, load_static
from trailguard.events import Event
from trailguard.gateway.pipeline import redact_event
from trailguard.gateway.services import Gateway

__all__ = ["DOCS_CONTENT_SECURITY_POLICY", "mount_console"]

DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
"""Swagger UI sets styles from its script; it still runs no inline or foreign script."""


def mount_console(app: FastAPI, services: Gateway) -> None:
    """Serve the console under ``/ui/`` and replace FastAPI's ``/docs`` (which loads Swagger UI
    from a CDN) with the same page built from the vendored copy."""

    def record(events: list[Event]) -> None:
        redacted = [redact_event(services.redactor, event) for event in events]
        services.ledger.submit_many(redacted).result()

    console = Console(
        templates=environment(),
        sessions=ConsoleSessions(),
        verify=VerifyJob(services.ledger, record),
        static=load_static(),
        renderer=Renderer(),
    )
    app.state.console = console
    app.include_router(router)
    _stop_with_the_app(app, console.renderer)
    docs = app.docs_url or "/docs"
    kept: list[BaseRoute] = [
        route
        for route in app.router.routes
        if not (isinstance(route, Route) and route.path == docs)
    ]
    app.router.routes[:] = kept
    app.add_route(docs, _docs_page, include_in_schema=False)


def _stop_with_the_app(app: FastAPI, renderer: Renderer) -> None:
    """Stop the renderer process when the app's lifespan ends (after the gateway's own)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[Any]:
        try:
            async with inner(running) as state:
                yield state
        finally:
            renderer.close()

    app.router.lifespan_context = lifespan


async def _docs_page(request: Request) -> HTMLResponse:
    console = console_of(request)
    html = console.templates.get_template("docs.html").render(
        asset=console.asset, openapi_url=request.app.openapi_url or "/openapi.json"
    )
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
        },
    )
