"""The console's plumbing: templates, security headers, vendored static files, the signed-in
viewer, and how a page's reads are run off the event loop and recorded as ``audit_access``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment
from pydantic import JsonValue

from trailguard.console.auth import (
    CONSOLE_ROLES,
    SESSION_COOKIE,
    ConsoleSession,
    ConsoleSessions,
    SignInRequired,
    is_tls,
)
from trailguard.console.integrity import VerifyJob
from trailguard.console.pages import PageJob, Renderer, ViewerInfo
from trailguard.errors import ForbiddenError, InvalidInputError, NotFoundError
from trailguard.events import Alert, AuditAccess, Event
from trailguard.gateway.pipeline import redact_event
from trailguard.gateway.services import gateway
from trailguard.store.base import Store
from trailguard.store.state import GatewayStateStore

_T = TypeVar("_T")

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""No inline script or style, nothing from anywhere but this server, no framing."""

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send Origin: null
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cache-Control": "no-store",
}


# -- static files ---------------------------------------------------------------------------------

STATIC_TYPES: Final = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
STATIC_FILES: Final = (
    "console.css",
    "console.js",
    "favicon.svg",
)


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def load_static() -> dict[str, StaticFile]:
    """Every file the console serves, read once from the package: nothing from a CDN."""
    root = resources.files("trailguard.console") / "static"
    loaded = {}
    for name in STATIC_FILES:
        body = (root / name).read_bytes()
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name.rsplit("/", 1)[-1] else ".txt"
        loaded[name] = StaticFile(
            body,
            STATIC_TYPES.get(suffix, "text/plain; charset=utf-8"),
            '"' + hashlib.sha256(body).hexdigest()[:20] + '"',
        )
    return loaded


# -- the console's shared state -------------------------------------------------------------------


@dataclass
class Console:
    """What every console route shares, on ``app.state.console``."""

    templates: Environment
    sessions: ConsoleSessions
    verify: VerifyJob
    static: dict[str, StaticFile]
    renderer: Renderer
    live_interval_ms: int = 5000

    def asset(self, name: str) -> str:
        """A static file's URL, versioned by its content (cached safely by browsers)."""
        return f"/ui/static/{name}?v={self.static[name].etag.strip(chr(34))[:12]}"

    def asset_urls(self) -> tuple[tuple[str, str], ...]:
        return tuple((name, self.asset(name)) for name in self.static)


def console_of(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


def respond(response: Response, request: Request) -> Response:
    """``response`` with the console's security headers (HSTS over TLS)."""
    response.headers.update(SECURITY_HEADERS)
    if is_tls(request, gateway(request).auth.proxies):
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


def render(
    request: Request,
    template: str,
    *,
    viewer: ConsoleSession | None,
    status: int = 200,
    nav: str = "",
    **context: Any,
) -> HTMLResponse:
    console = console_of(request)
    html = console.templates.get_template(template).render(
        viewer=viewer,
        csrf=viewer.csrf_token if viewer else "",
        nav=nav,
        asset=console.asset,
        live_interval_ms=console.live_interval_ms,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    respond(response, request)
    return response


async def built_page(
    request: Request,
    viewer: ConsoleSession,
    page: str,
    *,
    session_id: str | None = None,
    live: bool = False,
) -> Response:
    """A page built by the renderer process, recorded as ``audit_access`` when it shows
    something (a live update with nothing new is a 204, not recorded)."""
    console = console_of(request)
    services = gateway(request)
    job = PageJob(
        page=page,
        backend=services.ledger.backend,
        params=tuple(request.query_params.multi_items()),
        viewer=ViewerInfo(viewer.developer_id, viewer.role, viewer.token_id, viewer.csrf_token),
        assets=console.asset_urls(),
        live_interval_ms=console.live_interval_ms,
        budgets=services.costs.budgets.config,
        session_id=session_id,
        fingerprint=request.query_params.get("fp") if live else None,
    )
    try:
        result = await console.renderer.run(job)
    except NotFoundError:
        if session_id is not None:  # looking for a session is a read, found or not
            await record_view(request, viewer, "GET /ui/sessions/{id}", {"session": session_id}, 0)
        raise
    if result.html is None:
        return respond(Response(status_code=204), request)
    await record_view(request, viewer, result.action, result.query, result.shown)
    response = HTMLResponse(result.html)
    if live and result.fingerprint is not None:
        response.headers["X-Live-Fingerprint"] = result.fingerprint
    return respond(response, request)


async def read(request: Request, work: Callable[[Store, GatewayStateStore], _T]) -> _T:
    """Run ``work`` over a read-only ledger connection and the gateway state, off the loop."""
    services = gateway(request)

    def run() -> _T:
        store = services.open_reader()
        try:
            return work(store, services.state)
        finally:
            store.close()

    return await asyncio.to_thread(run)


async def record(request: Request, events: list[Event]) -> None:
    services = gateway(request)
    await services.record([redact_event(services.redactor, event) for event in events])


async def record_view(
    request: Request,
    viewer: ConsoleSession,
    action: str,
    query: dict[str, Any],
    result_count: int | None,
) -> None:
    """Record what a viewer was shown: every page, search, export and live update."""
    shown: dict[str, JsonValue] = {k: v for k, v in query.items() if v is not None}
    await record(
        request,
        [
            AuditAccess(
                developer_id=viewer.developer_id,
                action=action,
                outcome="allowed",
                query=shown | {"tokenId": viewer.token_id},
                result_count=result_count,
                source="console",
            )
        ],
    )


async def record_refusal(
    request: Request, exc: ForbiddenError, developer_id: str | None, action: str
) -> None:
    """A refused console request: an alert (rate-limited per client) and the refused access."""
    services = gateway(request)
    client = services.auth.client_address(request)
    await services.record_alert(
        Alert(
            alert_type=exc.alert_type,
            severity=exc.severity,  # type: ignore[arg-type]
            message=f"{request.method} {request.url.path} from {client} refused: {exc}",
            details={"client": client, "path": request.url.path, "reason": str(exc)},
            developer_id=developer_id,
            source="console",
        ),
        client=client,
        also=[
            AuditAccess(
                action=action,
                outcome="refused",
                developer_id=developer_id,
                query={"refusedBecause": str(exc)[:256]},
                source="console",
            )
        ],
    )


# -- who is looking -------------------------------------------------------------------------------


def _next_of(request: Request) -> str:
    if request.method != "GET":
        return "/ui/sessions"
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def signed_in(request: Request) -> ConsoleSession:
    """The dependency of every console page: the viewer's session, whose token must still be
    active and of a console role (checked on every request, never cached)."""
    console = console_of(request)
    session = console.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired(_next_of(request))
    services = gateway(request)
    tokens = await asyncio.to_thread(services.state.tokens)
    record = next((t for t in tokens if t.token_id == session.token_id), None)
    if record is None or record.revoked_at is not None or record.role not in CONSOLE_ROLES:
        console.sessions.end(session)
        raise SignInRequired(
            _next_of(request), "The token you signed in with was revoked: sign in again."
        )
    request.state.console_viewer = session
    return session


async def signed_in_admin(request: Request) -> ConsoleSession:
    session = await signed_in(request)
    if session.role != "admin":
        raise ForbiddenError(
            f"a token of role {session.role!r} cannot {request.method} {request.url.path}; "
            "this needs an admin token"
        )
    return session


def same_viewer(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# -- errors as pages ------------------------------------------------------------------------------


class ConsoleRoute(APIRoute):
    """Console routes answer problems as pages: no session is a redirect to the sign-in page,
    a refusal is a recorded 403 page, a bad filter is a 4xx page naming it. Trailguard's own
    faults go on to the app's error model (5xx and an alert)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                target = "/ui/login?" + urlencode(
                    {"next": exc.next_path, **({"why": "revoked"} if exc.message else {})}
                )
                return respond(RedirectResponse(target, status_code=303), request)
            except ForbiddenError as exc:
                viewer: ConsoleSession | None = getattr(request.state, "console_viewer", None)
                await record_refusal(
                    request,
                    exc,
                    viewer.developer_id if viewer else None,
                    f"{request.method} {request.url.path}",
                )
                return render(
                    request, "problem.html", viewer=viewer, status=exc.http_status, problem=exc
                )
            except InvalidInputError as exc:
                viewer = getattr(request.state, "console_viewer", None)
                return render(
                    request, "problem.html", viewer=viewer, status=exc.http_status, problem=exc
                )

        return console_handler
