"""Every error trailguard raises on purpose, rooted in ``TrailguardError``.

Two branches decide what a caller sees. ``InvalidInputError`` means what the client, the agent
or the operator sent is wrong: a 4xx from the API (``http_status``), exit 2 from the CLI, and
nothing of it stored. ``FaultError`` means trailguard itself, or something it depends on (the
disk, the database), failed: a 5xx and an alert, never a 400, because "your payload was bad"
would hide our own bug from the people who must fix it. ``VerificationError`` is a third kind:
the data was well-formed but a check of it failed (a signature, a proof, a checkpoint).

Messages say what failed, on which input, and what to do; they never contain secret text or a
verbatim copy of agent-controlled input longer than a short excerpt.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "FaultError",
    "ForbiddenError",
    "InvalidInputError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "SessionOwnershipError",
    "StorageUnavailableError",
    "TrailguardError",
    "VerificationError",
    "excerpt",
]


class TrailguardError(Exception):
    """The root of every error trailguard raises on purpose."""

    http_status: ClassVar[int] = 500


class InvalidInputError(TrailguardError):
    """What the caller sent cannot be used (a malformed payload, a bad option, a bad file).

    The message names the field or option and what was expected."""

    http_status: ClassVar[int] = 400


class AuthenticationError(InvalidInputError):
    """No credential, or one that is unknown or revoked."""

    http_status: ClassVar[int] = 401


class ForbiddenError(InvalidInputError):
    """A known identity asked for something its role or ownership does not allow. The gateway
    records every refusal as an alert of ``alert_type`` with ``details``."""

    http_status: ClassVar[int] = 403
    alert_type: ClassVar[str] = "access_refused"
    severity: ClassVar[str] = "medium"

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class SessionOwnershipError(ForbiddenError):
    """Events for a session from an identity other than the one that opened it."""

    alert_type: ClassVar[str] = "session_hijack"
    severity: ClassVar[str] = "high"


class NotFoundError(InvalidInputError):
    """The thing asked for (a session, an event, a checkpoint) does not exist."""

    http_status: ClassVar[int] = 404


class ConflictError(InvalidInputError):
    """The request repeats or contradicts what is already recorded (a replayed event id)."""

    http_status: ClassVar[int] = 409


class PayloadTooLargeError(InvalidInputError):
    http_status: ClassVar[int] = 413


class RateLimitedError(InvalidInputError):
    """Too many requests from one identity; ``retry_after`` seconds is a fair wait."""

    http_status: ClassVar[int] = 429

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FaultError(TrailguardError):
    """trailguard's own fault, or a dependency's: answered 5xx and raised as an alert."""

    http_status: ClassVar[int] = 500


class StorageUnavailableError(FaultError):
    """The ledger or the gateway state cannot be written now (disk full, read-only, locked)."""

    http_status: ClassVar[int] = 503


class VerificationError(TrailguardError):
    """Well-formed data failed a check: a signature, a Merkle proof, a checkpoint, a manifest."""

    http_status: ClassVar[int] = 422


def excerpt(value: object, limit: int = 64) -> str:
    """A short, printable excerpt of agent-controlled input, fit for an error message or a log
    line: control characters escaped, at most ``limit`` characters, and said when cut."""
    text = value if isinstance(value, str) else repr(value)
    more = f" (+{len(text) - limit} more characters)" if len(text) > limit else ""
    return repr(text[:limit]) + more
