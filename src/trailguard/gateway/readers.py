"""Large reads of the record run in their own processes, so they cannot take the interpreter
from the event loop that answers PreToolUse.

A thread is not enough for a read of thousands of events: fetching rows builds Python objects
under the GIL, and the hooks' p99 rose ~5x while two 10,000-event reads ran in threads
(benchmarks/bench_interference.py). A small pool of spawned processes (not forked: the gateway
has threads) opens its own read-only connection, joins the stored canonical bytes, and hands
back one ``bytes`` object; the gateway only sends it. Small reads stay in a thread, where the
hop costs less than the process round trip.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Final

from trailguard.retrieval import EventQuery, query_event_bodies
from trailguard.store.backend import Backend

__all__ = ["LARGE_READ_EVENTS", "ReadProcesses", "read_event_page"]

LARGE_READ_EVENTS: Final = 2_000
"""Reads that may return more events than this run in a read process."""


def read_event_page(location: Backend, query: EventQuery) -> tuple[int, bytes]:
    """``(count, {"count": n, "events": [...]})`` for ``query``: the stored bytes joined, never
    decoded. Runs in a read process or a worker thread (``location`` pickles: a data
    directory or a database URL)."""
    store = location.open_reader()
    try:
        found = list(query_event_bodies(store, query))
    finally:
        store.close()
    return len(found), b'{"count":%d,"events":[' % len(found) + b",".join(found) + b"]}"


class ReadProcesses:
    """A lazily started pool of read processes (``workers`` at most), shut down with the app."""

    def __init__(self, location: Backend, workers: int = 2) -> None:
        self._location = location
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self._workers, mp_context=multiprocessing.get_context("spawn")
                )
            return self._pool

    async def event_page(self, query: EventQuery) -> tuple[int, bytes]:
        """Read one page of events: in a read process when it may be large, else a thread."""
        if query.filter.limit is not None and query.filter.limit <= LARGE_READ_EVENTS:
            return await asyncio.to_thread(read_event_page, self._location, query)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), read_event_page, self._location, query)

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
