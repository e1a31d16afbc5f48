"""The console's pages under ``/ui/``: sign-in, sessions, one session, denials, infrastructure,
alerts, cost, integrity, the access log, and (for admins) tokens and kills.

Every page view, search, export and live update that shows something is recorded as
``audit_access`` with the viewer's identity and what was shown, before it is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from trailguard.console.auth import (
    CONSOLE_ROLES,
    COOKIE_PATH,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    CsrfRefused,
    check_csrf,
    check_same_origin,
    is_tls,
    read_form,
    safe_next,
)
from trailguard.console.integrity import check_trusted_checkpoint, integrity_status
from trailguard.console.templating import session_href
from trailguard.console.web import (
    ConsoleRoute,
    built_page,
    console_of,
    read,
    record,
    record_refusal,
    record_view,
    render,
    respond,
    signed_in,
    signed_in_admin,
)
from trailguard.errors import (
    AuthenticationError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from trailguard.events import AuditAccess, TokenChange
from trailguard.gateway.services import gateway
from trailguard.ledger.checkpoint import CheckpointError
from trailguard.ledger.writer import LedgerError
from trailguard.retrieval import EventQuery, query_event_bodies
from trailguard.store.gateway_state import ROLES

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)
Viewer = Annotated[ConsoleSession, Depends(signed_in)]
Admin = Annotated[ConsoleSession, Depends(signed_in_admin)]

MAX_TOKEN_LENGTH: Final = 512
MAX_REASON_LENGTH: Final = 1000
LOGIN_COOKIE_SECONDS: Final = 600


def _set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int, path: str
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=is_tls(request, gateway(request).auth.proxies),
        httponly=True,
        samesite="strict",
    )


def _clear_cookie(response: Response, request: Request, name: str, path: str) -> None:
    response.delete_cookie(
        name,
        path=path,
        secure=is_tls(request, gateway(request).auth.proxies),
        httponly=True,
        samesite="strict",
    )


# -- sign-in --------------------------------------------------------------------------------------


def _login_page(
    request: Request, *, status: int = 200, message: str | None = None, next_path: str = ""
) -> Response:
    nonce = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        viewer=None,
        status=status,
        message=message,
        nonce=nonce,
        next_path=safe_next(next_path),
    )
    _set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_COOKIE_SECONDS, "/ui/login")
    return response


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/ui/sessions", status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    """The sign-in form (signing in again replaces the browser's current session)."""
    console_of(request).renderer.warm(gateway(request).ledger.backend)
    why = request.query_params.get("why")
    return _login_page(
        request,
        message="The token you signed in with was revoked: sign in again."
        if why == "revoked"
        else None,
        next_path=request.query_params.get("next", ""),
    )


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in with an auditor or admin token (from the form's body, never a URL). A fresh
    session id is issued whatever cookie the browser had; agent tokens are refused and the
    refusal recorded."""
    form = await read_form(request)
    next_path = safe_next(form.get("next"))
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    try:
        check_same_origin(request)
        if not nonce or not hmac.compare_digest(form.get("csrf", "").encode(), nonce.encode()):
            raise CsrfRefused("the sign-in form expired or came from elsewhere: sign in again")
    except CsrfRefused as exc:
        await record_refusal(request, exc, None, "POST /ui/login")
        return _login_page(request, status=403, message=str(exc), next_path=next_path)
    token = form.get("token", "").strip()
    services = gateway(request)
    identity = (
        await asyncio.to_thread(services.state.identify, token)
        if token and len(token) <= MAX_TOKEN_LENGTH
        else None
    )
    if identity is None:
        refusal = AuthenticationError("the token is unknown or revoked")
        await record_refusal(request, _as_alert(refusal), None, "POST /ui/login")
        return _login_page(
            request,
            status=401,
            message="That token is unknown or revoked. Use an auditor or admin token "
            "(trailguard token create --role auditor).",
            next_path=next_path,
        )
    if identity.role not in CONSOLE_ROLES:
        refused = ForbiddenError(
            f"a token of role {identity.role!r} cannot sign in to the console; "
            "this needs an auditor or admin token",
            {"tokenId": identity.token_id},
        )
        await record_refusal(request, refused, identity.developer_id, "POST /ui/login")
        return _login_page(
            request,
            status=403,
            message="Agent tokens cannot sign in to the console: they post hooks and "
            "telemetry only. Use an auditor or admin token. This attempt was recorded.",
            next_path=next_path,
        )
    console = console_of(request)
    old = console.sessions.get(request.cookies.get(SESSION_COOKIE))
    if old is not None:
        console.sessions.end(old)
    cookie, _ = console.sessions.create(identity)
    await record(
        request,
        [
            AuditAccess(
                developer_id=identity.developer_id,
                action="console sign-in",
                outcome="allowed",
                query={"tokenId": identity.token_id, "role": identity.role},
                source="console",
            )
        ],
    )
    response = respond(RedirectResponse(next_path, status_code=303), request)
    _set_cookie(
        response,
        request,
        SESSION_COOKIE,
        cookie,
        int(console.sessions.lifetime_seconds),
        COOKIE_PATH,
    )
    _clear_cookie(response, request, LOGIN_COOKIE, "/ui/login")
    return response


class _AuthenticationRefused(ForbiddenError):
    """An unknown or revoked token at sign-in, recorded like the API's 401s."""

    alert_type = "authentication_failed"
    severity = "high"


def _as_alert(exc: AuthenticationError) -> ForbiddenError:
    return _AuthenticationRefused(str(exc))


@router.post("/logout")
async def logout(request: Request, viewer: Viewer) -> Response:
    form = await read_form(request)
    check_csrf(request, form, viewer.csrf_token)
    console_of(request).sessions.end(viewer)
    await record(
        request,
        [
            AuditAccess(
                developer_id=viewer.developer_id,
                action="console sign-out",
                outcome="allowed",
                query={"tokenId": viewer.token_id},
                source="console",
            )
        ],
    )
    response = respond(RedirectResponse("/ui/login", status_code=303), request)
    _clear_cookie(response, request, SESSION_COOKIE, COOKIE_PATH)
    return response


# -- sessions -------------------------------------------------------------------------------------


@router.get("/sessions")
async def sessions(request: Request, viewer: Viewer) -> Response:
    return await built_page(request, viewer, "sessions")


@router.get("/live/sessions")
async def sessions_live(request: Request, viewer: Viewer) -> Response:
    """The sessions table again when it changed (for the page's live updates), else 204.
    Only an answer that shows something is recorded."""
    return await built_page(request, viewer, "sessions_live", live=True)


@router.get("/sessions/{session_id:path}")
async def session_page(request: Request, viewer: Viewer, session_id: str) -> Response:
    return await built_page(request, viewer, "session", session_id=session_id)


@router.get("/session")
async def session_by_query(request: Request, viewer: Viewer) -> Response:
    """The same page for any session id, as a query parameter (ids like ``..``)."""
    session_id = request.query_params.get("id", "")
    return await built_page(request, viewer, "session", session_id=session_id)


@router.get("/live/session")
async def session_live(request: Request, viewer: Viewer) -> Response:
    session_id = request.query_params.get("id", "")
    return await built_page(request, viewer, "session_live", session_id=session_id, live=True)


@router.get("/export")
async def export(request: Request, viewer: Viewer) -> Response:
    """A session's events as JSON lines of their stored canonical bytes (what was hashed)."""
    session_id = request.query_params.get("session", "")
    if not session_id or len(session_id) > 256:
        raise InvalidInputError("session: a session id is 1 to 256 characters")

    def bodies(store: Any, _: Any) -> list[bytes]:
        return list(query_event_bodies(store, EventQuery.build(session=session_id)))

    found = await read(request, bodies)
    await record_view(
        request, viewer, "GET /ui/export", {"session": session_id, "format": "jsonl"}, len(found)
    )
    if not found:
        raise NotFoundError(f"no events for session {session_id!r} in this ledger")
    response = Response(
        b"\n".join(found) + b"\n",
        media_type="application/x-ndjson",
        headers={"Content-Disposition": _attachment("session", session_id, "jsonl")},
    )
    return respond(response, request)


# -- incident exports -----------------------------------------------------------------------------


def _export_session(request: Request) -> str:
    session_id = request.query_params.get("session", "")
    if not session_id or len(session_id) > 256:
        raise InvalidInputError("session: a session id is 1 to 256 characters")
    return session_id


def _attachment(name: str, session_id: str, suffix: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in session_id)[:80]
    return f'attachment; filename="{name}-{safe}.{suffix}"'


@router.get("/report")
async def incident_report(request: Request, viewer: Viewer) -> Response:
    """A session's incident report, as `trailguard report` and GET /v1/reports make it
    (each event verified against the latest signed tree head), as a download: it is a
    document to keep, not a console page."""
    from trailguard.gateway.routes.incident import KEY_SOURCE
    from trailguard.incident.html import render_html
    from trailguard.incident.markdown import render_markdown
    from trailguard.incident.records import Scope
    from trailguard.incident.report import build_report

    session_id = _export_session(request)
    form = request.query_params.get("format", "html")
    if form not in ("html", "md"):
        raise InvalidInputError(f"format: html or md, got {form[:20]!r}")
    services = gateway(request)

    def build(store: Any, _: Any) -> tuple[str, int, str] | None:
        if session_id not in store.session_ids(session_id, limit=1):
            return None
        report = build_report(
            store,
            Scope(sessions=(session_id,)),
            services.ledger.verifier,
            key_source=KEY_SOURCE,
            key_pinned=False,
            generated_by=f"{viewer.developer_id} ({viewer.role} token, console)",
        )
        text = render_html(report) if form == "html" else render_markdown(report)
        return text, len(report.timeline), report.header.verification.to_json()["result"]

    built = await read(request, build)
    if built is None:
        raise NotFoundError(f"no session {session_id!r} in this ledger")
    text, count, result = built
    await record_view(
        request,
        viewer,
        "GET /ui/report",
        {"session": session_id, "format": form, "verification": result},
        count,
    )
    response = Response(
        text,
        media_type="text/html; charset=utf-8" if form == "html" else "text/markdown; charset=utf-8",
        headers={"Content-Disposition": _attachment("incident-report", session_id, form)},
    )
    return respond(response, request)


@router.get("/evidence")
async def evidence_bundle(request: Request, viewer: Viewer) -> Response:
    """A session's evidence bundle (zip: canonical bytes, proofs, key), as `trailguard
    evidence export` and GET /v1/evidence make it, to verify offline."""
    from trailguard.gateway.routes.incident import KEY_SOURCE
    from trailguard.incident.bundle import export_bundle
    from trailguard.incident.records import Scope

    session_id = _export_session(request)
    services = gateway(request)

    def build(store: Any, _: Any) -> Any:
        if session_id not in store.session_ids(session_id, limit=1):
            return None
        return export_bundle(
            store,
            Scope(sessions=(session_id,)),
            services.ledger.verifier,
            key_source=KEY_SOURCE,
            key_pinned=False,
            generated_by=f"{viewer.developer_id} ({viewer.role} token, console)",
        )

    exported = await read(request, build)
    if exported is None:
        raise NotFoundError(f"no session {session_id!r} in this ledger")
    await record_view(
        request,
        viewer,
        "GET /ui/evidence",
        {"session": session_id, "manifestSha256": exported.manifest_sha256},
        exported.events,
    )
    response = Response(
        exported.data,
        media_type="application/zip",
        headers={
            "Content-Disposition": _attachment("trailguard-evidence", session_id, "zip"),
            "X-Trailguard-Manifest-Sha256": exported.manifest_sha256,
        },
    )
    return respond(response, request)


# -- kill (admins) --------------------------------------------------------------------------------


@router.get("/kill")
async def kill_form(request: Request, viewer: Admin) -> Response:
    session_id = request.query_params.get("session", "")
    summary = await read(request, lambda _, state: state.session(session_id))
    if summary is None:
        raise NotFoundError(f"no session {session_id!r} is known to this gateway")
    await record_view(request, viewer, "GET /ui/kill", {"session": session_id}, 1)
    return render(request, "kill.html", viewer=viewer, nav="sessions", summary=summary)


@router.post("/kill")
async def kill(request: Request, viewer: Admin) -> Response:
    """Kill a session as ``trailguard sessions kill`` does: the gateway records session_end
    (killed) with who asked and why, and denies every later hook with continue=false. Here
    both happen before the answer, on every worker: the kill request is durable in the state
    first, so when the end cannot be recorded now the session is still denied everywhere and
    the reaper records the end later (once: its id is the kill's fact id)."""
    form = await read_form(request)
    check_csrf(request, form, viewer.csrf_token)
    session_id = form.get("session", "")
    reason = form.get("reason", "").strip()
    if not reason:
        raise InvalidInputError("reason: say why the session is killed (it is recorded)")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInputError(f"reason: at most {MAX_REASON_LENGTH} characters")
    if form.get("confirm") != "yes":
        raise InvalidInputError("confirm: tick the box to confirm the kill")
    services = gateway(request)
    state = services.state
    summary = await asyncio.to_thread(state.session, session_id)
    if summary is None:
        raise NotFoundError(f"no session {session_id!r} is known to this gateway")
    by = f"{viewer.developer_id} (console, {viewer.token_id})"
    if await asyncio.to_thread(state.request_kill, session_id, by, reason):
        kill = (await asyncio.to_thread(state.killed_sessions)).get(session_id)
        if kill is not None:
            with contextlib.suppress(LedgerError):  # denied anyway; the reaper records the end
                await asyncio.to_thread(services.reaper.record_kill, kill)
    target = session_href(session_id)
    target += ("&" if "?" in target else "?") + "killed=1"
    return respond(RedirectResponse(target, status_code=303), request)


# -- across sessions ------------------------------------------------------------------------------


@router.get("/denials")
async def denials(request: Request, viewer: Viewer) -> Response:
    return await built_page(request, viewer, "denials")


@router.get("/infrastructure")
async def infrastructure(request: Request, viewer: Viewer) -> Response:
    return await built_page(request, viewer, "infrastructure")


@router.get("/alerts")
async def alerts(request: Request, viewer: Viewer) -> Response:
    return await built_page(request, viewer, "alerts")


@router.get("/access")
async def access(request: Request, viewer: Viewer) -> Response:
    return await built_page(request, viewer, "access")


@router.get("/cost")
async def cost(request: Request, viewer: Viewer) -> Response:
    return await built_page(request, viewer, "cost")


# -- integrity ------------------------------------------------------------------------------------


@router.get("/integrity")
async def integrity(request: Request, viewer: Viewer) -> Response:
    services = gateway(request)
    facts = await read(request, lambda store, _: integrity_status(store, services.ledger))
    run = console_of(request).verify.last
    await record_view(
        request,
        viewer,
        "GET /ui/integrity",
        {"checkpointSize": facts.checkpoint_size},
        facts.tree_size,
    )
    return render(request, "integrity.html", viewer=viewer, nav="integrity", facts=facts, run=run)


@router.get("/integrity/checkpoint")
async def checkpoint_download(request: Request, viewer: Viewer) -> Response:
    services = gateway(request)
    status = await read(request, lambda store, _: integrity_status(store, services.ledger))
    if status.checkpoint_note is None:
        raise NotFoundError(status.checkpoint_problem or "no signed checkpoint yet")
    await record_view(request, viewer, "GET /ui/integrity/checkpoint", {}, status.checkpoint_size)
    response = Response(
        status.checkpoint_note,
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="trailguard-{status.checkpoint_size}'
            '.checkpoint"'
        },
    )
    return respond(response, request)


@router.post("/integrity/verify")
async def run_verify(request: Request, viewer: Viewer) -> Response:
    """Start ``verify`` (one at a time), optionally against a checkpoint kept elsewhere."""
    form = await read_form(request)
    check_csrf(request, form, viewer.csrf_token)
    trusted = form.get("trusted_checkpoint", "").strip()
    try:
        checkpoint = check_trusted_checkpoint(trusted) if trusted else None
    except CheckpointError as exc:
        raise InvalidInputError(f"trusted checkpoint: {exc}") from None
    console_of(request).verify.start(
        f"{viewer.developer_id} (console, {viewer.token_id})", viewer.developer_id, checkpoint
    )
    return respond(RedirectResponse("/ui/integrity", status_code=303), request)


# -- tokens (admins) ------------------------------------------------------------------------------


@router.get("/admin/tokens")
async def tokens(request: Request, viewer: Admin) -> Response:
    found = await asyncio.to_thread(gateway(request).state.tokens)
    await record_view(request, viewer, "GET /ui/admin/tokens", {}, len(found))
    return render(request, "tokens.html", viewer=viewer, nav="admin", tokens=found, roles=ROLES)


def _change(viewer: ConsoleSession, action: str, record: Any) -> TokenChange:
    return TokenChange(
        action=action,  # type: ignore[arg-type]
        token_id=record.token_id,
        role=record.role,
        subject_developer_id=record.developer_id,
        projects=list(record.projects),
        changed_by=f"{viewer.developer_id} (console, {viewer.token_id})",
        developer_id=viewer.developer_id,
        source="console",
    )


@router.post("/admin/tokens")
async def create_token(request: Request, viewer: Admin) -> Response:
    """Create a token, recorded as token_change; it is shown once, on this answer only."""
    form = await read_form(request)
    check_csrf(request, form, viewer.csrf_token)
    role = form.get("role", "")
    if role not in ROLES:
        raise InvalidInputError(f"role: one of {', '.join(ROLES)}, got {role[:20]!r}")
    projects = tuple(p.strip() for p in form.get("projects", "").replace(",", "\n").splitlines())
    state = gateway(request).state
    token, made = await asyncio.to_thread(
        state.create_token,
        form.get("developer", "").strip(),
        role,
        tuple(p for p in projects if p),
    )
    await record(request, [_change(viewer, "created", made)])
    return render(request, "token_created.html", viewer=viewer, nav="admin", token=token, made=made)


@router.post("/admin/tokens/revoke")
async def revoke_token(request: Request, viewer: Admin) -> Response:
    form = await read_form(request)
    check_csrf(request, form, viewer.csrf_token)
    token_id = form.get("token_id", "")
    revoked = await asyncio.to_thread(gateway(request).state.revoke_token, token_id)
    if revoked is None:
        raise NotFoundError(f"no active token {token_id[:40]!r}")
    await record(request, [_change(viewer, "revoked", revoked)])
    console_of(request).sessions.end_for_token(token_id)
    return respond(RedirectResponse("/ui/admin/tokens", status_code=303), request)


# -- static files ---------------------------------------------------------------------------------


@router.get("/static/{name:path}")
async def static(request: Request, name: str) -> Response:
    """The console's own CSS and script and the vendored Swagger UI; nothing else."""
    found = console_of(request).static.get(name)
    if found is None:
        raise NotFoundError(f"no console file {name[:80]!r}")
    if request.headers.get("if-none-match") == found.etag:
        response = Response(status_code=304)
    else:
        response = Response(found.body, media_type=found.media_type)
    response.headers["ETag"] = found.etag
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
