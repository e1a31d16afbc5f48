"""Small helpers every part of the hook client uses: exception wording, the clock, hashing.

Standard library only, and only modules the interpreter has loaded already or built-in ones.
"""

from __future__ import annotations

import time


def describe_exception(exc: BaseException) -> str:
    """An exception as a short sentence fragment (``no such file or directory: /x``)."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror[:1].lower() + exc.strerror[1:]
        return f"{text}: {exc.filename}" if exc.filename else text
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with milliseconds (``2026-04-15T14:32:07.123Z``)."""
    now_ns = time.time_ns()
    seconds, rest = divmod(now_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}Z"


def is_header_safe(value: str) -> bool:
    """Whether ``value`` can go in an HTTP header as it is (visible ASCII, no spaces)."""
    return bool(value) and all(0x21 <= ord(ch) <= 0x7E for ch in value)


def sha256_hex(data: bytes) -> str:
    # The built-in module, not hashlib: hashlib loads OpenSSL, a few ms on every tool call.
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # Python 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # Python 3.12+
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())
