"""Who is looking: console sign-in sessions, their cookies, and CSRF protection.

A console session is made only by signing in with an auditor or admin token; the token is
checked once, never stored (only its id), and never put in a URL, a cookie or a page. The
session id is a fresh 256-bit random value issued at sign-in (a session id chosen before
sign-in is never adopted: no fixation), kept server-side under its SHA-256, with an idle and an
absolute lifetime. Its cookie is HttpOnly, SameSite=Strict, limited to ``/ui`` and Secure over
TLS. Every state-changing form carries the session's CSRF token (synchronizer pattern) and is
refused when the browser says it comes from another site. The token behind a session is looked
up on every request: a revoked token ends its console sessions at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request

from trailguard.errors import ForbiddenError, InvalidInputError, PayloadTooLargeError
from trailguard.gateway.auth import TrustedProxies
from trailguard.store.gateway_state import Identity, Role

__all__ = [
    "CONSOLE_ROLES",
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "ConsoleSession",
    "ConsoleSessions",
    "CsrfRefused",
    "SignInRequired",
    "check_csrf",
    "check_same_origin",
    "is_tls",
    "read_form",
]

SESSION_COOKIE: Final = "tg_console"
LOGIN_COOKIE: Final = "tg_console_login"
COOKIE_PATH: Final = "/ui"
CONSOLE_ROLES: Final[frozenset[Role]] = frozenset({"auditor", "admin"})
MAX_FORM_BYTES: Final = 64 * 1024


class SignInRequired(Exception):
    """No valid console session: the browser is sent to the sign-in page."""

    def __init__(self, next_path: str, message: str | None = None) -> None:
        super().__init__(message or "sign in to continue")
        self.next_path = next_path
        self.message = message


class CsrfRefused(ForbiddenError):
    """A state-changing request without this session's CSRF token, or from another site."""

    alert_type = "console_csrf_refused"
    severity = "high"


@dataclass
class ConsoleSession:
    session_hash: str
    """SHA-256 of the cookie value: the value itself is kept only by the browser."""
    csrf_token: str
    developer_id: str
    role: Role
    token_id: str
    created: float
    last_seen: float

    @property
    def identity(self) -> Identity:
        return Identity(self.developer_id, self.role, self.token_id)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class ConsoleSessions:
    """Signed-in console sessions, in the gateway's memory (a restart signs everyone out).

    At most ``max_sessions`` are kept (the oldest go first), each for ``idle_seconds`` without
    a request and ``lifetime_seconds`` in all."""

    def __init__(
        self,
        *,
        idle_seconds: float = 30 * 60,
        lifetime_seconds: float = 8 * 3600,
        max_sessions: int = 10_000,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.lifetime_seconds = lifetime_seconds
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()
        self._lock = threading.Lock()

    def _now(self) -> float:
        return time.monotonic()

    def create(self, identity: Identity) -> tuple[str, ConsoleSession]:
        """A new session for ``identity``: (the cookie value, the session)."""
        cookie = secrets.token_urlsafe(32)
        now = self._now()
        session = ConsoleSession(
            digest(cookie),
            secrets.token_urlsafe(32),
            identity.developer_id,
            identity.role,
            identity.token_id,
            now,
            now,
        )
        self._keep(session)
        return cookie, session

    def _keep(self, session: ConsoleSession) -> None:
        with self._lock:
            self._sessions[session.session_hash] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    def expired(self, session: ConsoleSession, now: float) -> bool:
        return (
            now - session.last_seen > self.idle_seconds
            or now - session.created > self.lifetime_seconds
        )

    def get(self, cookie: str | None) -> ConsoleSession | None:
        """The live session a cookie value names (touching it), or None."""
        if not cookie or len(cookie) > 128:
            return None
        key = digest(cookie)
        now = self._now()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if self.expired(session, now):
                del self._sessions[key]
                return None
            session.last_seen = now
            return session

    def end(self, session: ConsoleSession) -> None:
        with self._lock:
            self._sessions.pop(session.session_hash, None)

    def end_for_token(self, token_id: str) -> int:
        """End every session signed in with ``token_id`` (revoked); how many ended."""
        with self._lock:
            ended = [k for k, s in self._sessions.items() if s.token_id == token_id]
            for key in ended:
                del self._sessions[key]
        return len(ended)

    def __len__(self) -> int:
        return len(self._sessions)


def is_tls(request: Request, proxies: TrustedProxies) -> bool:
    """Whether the browser reached us over TLS: directly, or through a trusted proxy that says
    so (``X-Forwarded-Proto`` from anyone else is ignored)."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else ""
    return (
        bool(proxies)
        and proxies.trusts(peer)
        and (request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https")
    )


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the console's forms), at most 64 KiB;
    a repeated field keeps its first value."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type and request.headers.get("content-length", "0") == "0":
        return {}  # an empty form (its CSRF check refuses it)
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidInputError(
            f"console forms are application/x-www-form-urlencoded, got {content_type or 'none'!r}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLargeError(f"a console form is at most {MAX_FORM_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"form is not valid UTF-8 (byte {exc.start})") from None
    form: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True, max_num_fields=200):
        form.setdefault(name, value)
    return form


def check_same_origin(request: Request) -> None:
    """Refuse a state-changing request the browser marks as coming from another site
    (``Sec-Fetch-Site``) or whose ``Origin`` is not this server (OWASP's origin check)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfRefused(f"a {site} request may not change anything here")
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser (or a very old one): the CSRF token decides
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    parts = urlsplit(origin)
    if f"{parts.scheme}://{parts.netloc}" != own:
        raise CsrfRefused(f"a request from origin {origin[:100]!r} may not change anything here")


def check_csrf(request: Request, form: dict[str, str], expected: str) -> None:
    """The form's ``csrf`` field must equal ``expected`` (compared in constant time)."""
    check_same_origin(request)
    given = form.get("csrf", "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRefused("the form's CSRF token is missing or wrong: reload the page and retry")


def safe_next(path: str | None) -> str:
    """Where to go after sign-in: a console path only (never another site)."""
    if not path or not path.startswith("/ui/") or path.startswith("//") or "\\" in path:
        return "/ui/sessions"
    if any(ord(ch) < 0x20 for ch in path):
        return "/ui/sessions"
    return path
