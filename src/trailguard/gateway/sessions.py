"""Live session state in the gateway: who a session belongs to, when it was last active, whether
it has ended or been killed. Persisted to the gateway state so the CLI can list sessions."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from trailguard.store.gateway_state import GatewayState, KillRequest, SessionSummary


@dataclass
class LiveSession:
    summary: SessionSummary
    last_seen: float
    """time.monotonic() of the last event, for the idle reaper."""
    killed: KillRequest | None = None


class SessionRegistry:
    """Thread-safe: hook handlers and the reaper thread both use it."""

    def __init__(self, state: GatewayState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._live: dict[str, LiveSession] = {}
        self._dirty: set[str] = set()
        self._killed = state.killed_sessions()
        now = time.monotonic()
        for summary in state.sessions(active=True):
            self._live[summary.session_id] = LiveSession(
                summary, now, self._killed.get(summary.session_id)
            )

    def get(self, session_id: str) -> SessionSummary | None:
        with self._lock:
            live = self._live.get(session_id)
        if live is not None:
            return live.summary
        return self._state.session(session_id)

    def kill_request(self, session_id: str) -> KillRequest | None:
        with self._lock:
            return self._killed.get(session_id)

    def touch(
        self, session_id: str, developer_id: str, timestamp: str
    ) -> tuple[SessionSummary, bool]:
        """Note activity in ``session_id``; returns its summary and whether it was unknown
        (an event for a session that never started: the session is flagged)."""
        with self._lock:
            live = self._live.get(session_id)
            if live is None:
                known = self._state.session(session_id)
                if known is not None and known.ended_at is not None:
                    return known, False  # ended: late events are recorded, it is not revived
                unknown = known is None
                summary = known or SessionSummary(
                    session_id, developer_id, None, None, timestamp, None, None, None, True
                )
                live = self._live[session_id] = LiveSession(
                    summary, time.monotonic(), self._killed.get(session_id)
                )
                if unknown:
                    self._state.save_session(summary)
                    return summary, True
            live.summary = replace(live.summary, last_event_at=timestamp)
            live.last_seen = time.monotonic()
            self._dirty.add(session_id)
            return live.summary, False

    def start(
        self, session_id: str, developer_id: str, project_id: str | None, timestamp: str
    ) -> SessionSummary:
        with self._lock:
            summary = SessionSummary(
                session_id, developer_id, project_id, timestamp, timestamp, None, None, None, False
            )
            self._live[session_id] = LiveSession(
                summary, time.monotonic(), self._killed.get(session_id)
            )
            self._dirty.discard(session_id)
        self._state.save_session(summary)
        return summary

    def end(self, session_id: str, reason: str, raw_reason: str | None, timestamp: str) -> None:
        with self._lock:
            live = self._live.pop(session_id, None)
            self._dirty.discard(session_id)
        summary = live.summary if live else self._state.session(session_id)
        if summary is None:
            summary = SessionSummary(
                session_id, None, None, None, timestamp, None, None, None, True
            )
        self._state.save_session(
            replace(
                summary,
                last_event_at=timestamp,
                ended_at=timestamp,
                end_reason=reason,
                raw_end_reason=raw_reason,
            )
        )

    def mark_killed(self, request: KillRequest) -> None:
        with self._lock:
            self._killed[request.session_id] = request
            live = self._live.get(request.session_id)
            if live is not None:
                live.killed = request

    def idle_since(self, seconds: float) -> list[SessionSummary]:
        """Open sessions with no event for ``seconds``."""
        cutoff = time.monotonic() - seconds
        with self._lock:
            return [live.summary for live in self._live.values() if live.last_seen < cutoff]

    def flush(self) -> None:
        """Persist last-activity times (kept in memory between flushes)."""
        with self._lock:
            dirty = [self._live[s].summary for s in self._dirty if s in self._live]
            self._dirty.clear()
        for summary in dirty:
            self._state.save_session(summary)
