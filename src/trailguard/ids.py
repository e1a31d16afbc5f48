"""Time-ordered event identifiers (UUIDv7, RFC 9562 §5.7), standard library only.

The hook client imports this module too, once per tool call: it must import nothing outside
the standard library, and nothing slow to load (``uuid`` and ``threading`` load ``enum`` and
more; the ``uuid.UUID`` form is built only when asked for).
"""

from __future__ import annotations

import sys
import time
from _thread import allocate_lock

if sys.platform == "win32":
    from os import urandom
else:  # the built-in module: ``import os`` would cost the hook client 1.4 ms per tool call
    from posix import urandom

TYPE_CHECKING = False
if TYPE_CHECKING:
    import uuid

_lock = allocate_lock()
_last_ms = 0
_counter = 0


def _uuid7_int() -> int:
    """A UUIDv7 as an integer: 48-bit Unix milliseconds, then a 12-bit counter (RFC 9562 §6.2
    method 1), then 62 random bits. Identifiers from one process sort in creation order."""
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = int.from_bytes(urandom(2), "big") & 0x3FF  # room to count up
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
    rand = int.from_bytes(urandom(8), "big") & ((1 << 62) - 1)
    return (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand


def uuid7() -> uuid.UUID:
    """A UUIDv7 (see :func:`_uuid7_int`)."""
    import uuid

    return uuid.UUID(int=_uuid7_int())


def new_event_id() -> str:
    """A UUIDv7 in its canonical text form (``str(uuid7())``)."""
    digits = f"{_uuid7_int():032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
