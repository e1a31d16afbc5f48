"""Event ids for facts the gateway itself records and that more than one process may notice: a
session killed, a session ended by an exhausted budget. Each id is a keyed hash of the fact, so
whichever process records it first wins and every later attempt is a duplicate the ledger
answers as such (recorded once, by event id). The key is secret (derived from the data
directory's redaction key), so an agent cannot compute the id and claim it first with an event
of its own to suppress the gateway's record.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import Final

_PURPOSE: Final = b"trailguard fact event id v1"


class FactIds:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _PURPOSE, hashlib.sha256).digest()

    def _id(self, *parts: str) -> str:
        """A UUIDv8 (RFC 9562 section 5.8) holding 122 bits of HMAC-SHA256 of ``parts``."""
        digest = hmac.new(self._key, "\0".join(parts).encode(), hashlib.sha256).digest()
        value = int.from_bytes(digest[:16], "big")
        value = (value & ~(0xF << 76)) | (0x8 << 76)  # version 8
        value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant 10
        digits = f"{value:032x}"
        return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"

    def kill(self, session_id: str, requested_at: str) -> str:
        """The ``session_end`` (killed) of one kill request (a session is killed at most once)."""
        return self._id("kill", session_id, requested_at)

    def budget_end(self, session_id: str, scope: str, key: str, limit: Decimal) -> str:
        """The ``session_end`` (budget_exhausted) for one budget (scope, key and limit: a raised
        limit exhausted again after a restart is another fact)."""
        return self._id("budget_end", session_id, scope, key, str(limit))
