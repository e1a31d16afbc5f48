"""The gateway's operational state, as types and one small interface: tokens, session
summaries, kill requests. SQLite implements it in ``store/gateway_state.py``; a shared store
(PostgreSQL) implements the same protocol.

This state is mutable and unsigned: it speeds up authentication and session listing, and what
an auditor relies on (a session's start, end and why; a token's creation and revocation) is
also recorded as events in the ledger. ``trailguard verify`` never reads it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "ROLES",
    "TOKEN_PREFIX",
    "GatewayStateStore",
    "Identity",
    "KillRequest",
    "Role",
    "SessionSummary",
    "TokenRecord",
    "hash_token",
    "new_token",
]

Role = Literal["agent", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("agent", "auditor", "admin")
TOKEN_PREFIX = "tg_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Identity:
    """Who a request is from, as decided by its token."""

    developer_id: str
    role: Role
    token_id: str
    projects: tuple[str, ...] = ()
    """Projects the token is bound to (``token create --project``); empty: not bound."""
    created_at: str | None = None


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    developer_id: str
    role: Role
    created_at: str
    revoked_at: str | None
    projects: tuple[str, ...] = ()


def new_token(
    developer_id: str, role: Role, projects: Sequence[str], created_at: str
) -> tuple[str, TokenRecord]:
    """A fresh token and its record, after checking what an admin asked for (every state store
    creates tokens through this, so the rules are the same on SQLite and PostgreSQL)."""
    import secrets

    from trailguard.errors import InvalidInputError

    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not developer_id or any(ch.isspace() or ord(ch) < 0x20 for ch in developer_id):
        raise InvalidInputError(
            "developer id must be non-empty, without spaces or control characters"
        )
    if len(developer_id) > 256:
        raise InvalidInputError("developer id must be at most 256 characters")
    for project in projects:
        if not project or not project.isprintable() or len(project) > 256:
            raise InvalidInputError(f"project {project!r} is not a usable project id")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(
        "tok_" + secrets.token_hex(6), developer_id, role, created_at, None, tuple(projects)
    )
    return token, record


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    developer_id: str | None
    project_id: str | None
    started_at: str | None
    last_event_at: str
    ended_at: str | None
    end_reason: str | None
    raw_end_reason: str | None
    never_started: bool


@dataclass(frozen=True)
class KillRequest:
    session_id: str
    requested_at: str
    requested_by: str | None
    reason: str | None


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so a plain SHA-256 is a safe stored form."""
    return hashlib.sha256(token.encode()).hexdigest()


class GatewayStateStore(Protocol):
    """What the gateway and the CLI need from the operational state, whichever database."""

    # tokens
    def create_token(
        self, developer_id: str, role: Role, projects: Sequence[str] = ()
    ) -> tuple[str, TokenRecord]:
        """A new token: returns (the token, shown once; its record). Only a hash is kept."""
        ...

    def identify(self, token: str) -> Identity | None:
        """The identity of an active token; None for unknown or revoked (checked every call)."""
        ...

    def revoke_token(self, token_id: str) -> TokenRecord | None:
        """Revoke an active token; None when there is no such active token."""
        ...

    def tokens(self) -> list[TokenRecord]: ...

    # sessions
    def save_session(self, summary: SessionSummary) -> None: ...

    def session(self, session_id: str) -> SessionSummary | None: ...

    def sessions(
        self,
        *,
        developer_id: str | None = None,
        project_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        active: bool | None = None,
    ) -> Iterator[SessionSummary]: ...

    def session_ids_starting_with(self, prefix: str, limit: int = 20) -> list[str]:
        """Session ids beginning with ``prefix`` (for unambiguous prefixes and suggestions)."""
        ...

    # kill requests
    def request_kill(self, session_id: str, requested_by: str | None, reason: str | None) -> bool:
        """Ask the gateway to kill a session; False if it was already asked."""
        ...

    def pending_kills(self) -> list[KillRequest]: ...

    def killed_sessions(self) -> dict[str, KillRequest]: ...

    def mark_kill_recorded(self, session_id: str) -> None: ...

    # events for the ledger from processes that are not its writer (the CLI)
    def enqueue_events(self, documents: Sequence[str]) -> None:
        """Queue events (their JSON) for the gateway to append: the ledger has one writer."""
        ...

    def pending_events(self, limit: int = 500) -> list[tuple[int, str]]:
        """(queue id, event JSON) of queued events, oldest first."""
        ...

    def remove_pending_events(self, queue_ids: Sequence[int]) -> None: ...

    def close(self) -> None: ...
