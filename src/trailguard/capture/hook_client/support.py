"""Small helpers every part of the hook client uses: exception wording, the clock, hashing,
and the operating-system calls on the way to a PreToolUse answer.

Standard library only, and only modules the interpreter has loaded already or built-in ones.
That rules out ``os``: importing it costs about 1.4 ms in a fresh ``python -I -S`` here (it
imports ``_collections_abc``, which builds some 25 abstract base classes), a sixth of a bare
interpreter's start-up, on every tool call in command mode. The built-in ``posix`` module has
what an answer needs (the environment, one directory listing, joined paths); the spool, the
transcript reader and the SessionStart context, which run on other events or when the gateway
could not take one, use ``os`` as usual. Where there is no ``posix`` (Windows) these are ``os``'s
own.
"""

from __future__ import annotations

import sys
import time

if sys.platform == "win32":
    from os import environ as _text_environ
    from os import listdir
    from os.path import join

    def environment() -> dict[str, str]:
        """The process environment."""
        return dict(_text_environ)

else:
    from posix import environ as _byte_environ
    from posix import listdir

    def environment() -> dict[str, str]:
        """The process environment as ``os.environ`` decodes it (``os.fsdecode``: the
        file-system encoding and its error handler, undecodable bytes kept as surrogates)."""
        encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
        return {
            name.decode(encoding, errors): value.decode(encoding, errors)
            for name, value in _byte_environ.items()
        }

    def join(directory: str, *names: str) -> str:
        """``os.path.join`` for POSIX paths: an absolute name starts over, and one ``/`` goes
        between parts unless the path so far ends with one."""
        path = directory
        for name in names:
            if name.startswith("/"):
                path = name
            elif not path or path.endswith("/"):
                path += name
            else:
                path += "/" + name
        return path


__all__ = [
    "describe_exception",
    "environment",
    "is_header_safe",
    "join",
    "listdir",
    "now_rfc3339",
    "sha256_hex",
]


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
