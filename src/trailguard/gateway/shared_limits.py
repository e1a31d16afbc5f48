"""The per-token hook rate limit shared by every worker process of one gateway: the token
buckets live in an anonymous shared memory map created before the workers are forked, so a
token gets ``rate`` requests per second in all, whichever worker each request reaches.
"""

from __future__ import annotations

import hashlib
import mmap
import multiprocessing
import struct
import time
from typing import Final

from trailguard.errors import RateLimitedError

_SLOT: Final = struct.Struct("<Qdd")
"""key hash (0: free), tokens, time.monotonic() of the last update (system-wide on Linux)."""
_PROBE: Final = 16


class SharedRateLimiter:
    """A token bucket per identity, like ``gateway.auth.RateLimiter``, in shared memory. Create
    it in the parent before forking; every child then sees the same buckets. ``slots`` bounds
    the identities tracked at once: when the neighbourhood of a key is full, the bucket idle
    longest is reused (that identity starts again with a full burst)."""

    def __init__(self, rate: float, burst: float, *, slots: int = 8192) -> None:
        self.rate = rate
        self.burst = burst
        self._slots = slots
        self._memory = mmap.mmap(-1, slots * _SLOT.size)  # MAP_SHARED | MAP_ANONYMOUS
        self._lock = multiprocessing.get_context("fork").Lock()

    @staticmethod
    def _hash(key: str) -> int:
        value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
        return value or 1

    def check(self, key: str) -> None:
        """Take one request from ``key``'s bucket; raise RateLimitedError when it is empty."""
        wanted = self._hash(key)
        start = wanted % self._slots
        memory = self._memory
        with self._lock:
            now = time.monotonic()
            chosen, tokens, last = -1, self.burst, now
            oldest, oldest_at = start, float("inf")
            for step in range(_PROBE):
                slot = (start + step) % self._slots
                stored, stored_tokens, stored_at = _SLOT.unpack_from(memory, slot * _SLOT.size)
                if stored == wanted:
                    chosen, tokens, last = slot, stored_tokens, stored_at
                    break
                if stored == 0:
                    chosen = slot
                    break
                if stored_at < oldest_at:
                    oldest, oldest_at = slot, stored_at
            if chosen < 0:
                chosen = oldest
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            left = tokens - 1.0 if allowed else tokens
            _SLOT.pack_into(memory, chosen * _SLOT.size, wanted, left, now)
        if not allowed:
            wait = (1.0 - tokens) / self.rate
            raise RateLimitedError(
                f"too many requests for this token (limit {self.rate:g}/s, burst "
                f"{self.burst:g}); retry in {wait:.2f} s",
                retry_after=wait,
            )
