"""The auditor console: server-rendered pages under ``/ui/`` for people who read the record.

Sign-in with auditor or admin tokens, sessions and their timelines, denials, infrastructure,
alerts, cost, integrity, the access log, and admin actions; every asset is vendored in this
package (no CDN), every view is recorded as ``audit_access``. :func:`mount_console` adds it to
the gateway's app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from trailguard.console.auth import ConsoleSessions
from trailguard.console.integrity import VerifyJob
from trailguard.console.pages import Renderer
from trailguard.console.routes import router
from trailguard.console.shared_sessions import SharedConsoleSessions
from trailguard.console.templating import environment
from trailguard.console.web import Console, load_static
from trailguard.events import Event
from trailguard.gateway.pipeline import redact_event
from trailguard.gateway.services import Gateway

__all__ = ["mount_console"]


def mount_console(app: FastAPI, services: Gateway, *, shared_sessions: Path | None = None) -> None:
    """Serve the console under ``/ui/`` (its renderer process stops with the app).
    ``shared_sessions``: the data directory whose sign-ins several worker processes share."""

    def record(events: list[Event]) -> None:
        redacted = [redact_event(services.redactor, event) for event in events]
        services.ledger.submit_many(redacted).result()

    console = Console(
        templates=environment(),
        sessions=SharedConsoleSessions(shared_sessions) if shared_sessions else ConsoleSessions(),
        verify=VerifyJob(services.ledger, record),
        static=load_static(),
        renderer=Renderer(),
    )
    app.state.console = console
    app.include_router(router)
    _stop_with_the_app(app, console.renderer)


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
