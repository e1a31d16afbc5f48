"""Live session state in the gateway: who a session belongs to, when it was last active, whether
it has ended or been killed.

Hook handlers only touch memory; the reaper thread persists changes (``flush``) to the gateway
state, so no request ever waits on a database write that is not its own ledger append.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from trailguard.store.state import GatewayStateStore, KillRequest, SessionSummary


@dataclass
class LiveSession:
    summary: SessionSummary
    last_seen: float
    """time.monotonic() of the last event, for the idle reaper."""


class SessionRegistry:
    """Thread-safe: hook handlers and the reaper thread both use it."""

    def __init__(self, state: GatewayStateStore) -> None:
        self._state = state
        self.shared = bool(getattr(state, "shared", False))
        """Replicas share the state: starts are written at once, ends and kills adopted."""
        self._lock = threading.Lock()
        self._live: dict[str, LiveSession] = {}
        self._ended: dict[str, SessionSummary] = {}
        """Sessions that ended since the last flush (kept so late events do not revive them)."""
        self._dirty: set[str] = set()
        self._killed = state.killed_sessions()
        now = time.monotonic()
        for summary in state.sessions(active=True):
            self._live[summary.session_id] = LiveSession(summary, now)

    def get(self, session_id: str) -> SessionSummary | None:
        with self._lock:
            live = self._live.get(session_id)
            if live is not None:
                return live.summary
            if session_id in self._ended:
                return self._ended[session_id]
        return self._state.session(session_id)

    def kill_request(self, session_id: str) -> KillRequest | None:
        with self._lock:
            return self._killed.get(session_id)

    def touch(
        self, session_id: str, developer_id: str, timestamp: str
    ) -> tuple[SessionSummary, bool]:
        """Note activity in ``session_id``; returns its summary and whether it was unknown
        (an event for a session that never started: the session is flagged)."""
        known = None
        with self._lock:
            live = self._live.get(session_id)
            ended = self._ended.get(session_id)
        if live is None and ended is None:
            known = self._state.session(session_id)  # outside the lock: a read, may be slow
        with self._lock:
            live = self._live.get(session_id)
            ended = ended or self._ended.get(session_id)
            if live is None:
                if ended is not None or (known is not None and known.ended_at is not None):
                    # Ended: late events are recorded, the session is not revived.
                    return (ended or known), False  # type: ignore[return-value]
                unknown = known is None
                summary = known or SessionSummary(
                    session_id, developer_id, None, None, timestamp, None, None, None, True
                )
                live = self._live[session_id] = LiveSession(summary, time.monotonic())
                self._dirty.add(session_id)
                if unknown:
                    return summary, True
            live.summary = replace(live.summary, last_event_at=timestamp)
            live.last_seen = time.monotonic()
            self._dirty.add(session_id)
            return live.summary, False

    def start(
        self, session_id: str, developer_id: str, project_id: str | None, timestamp: str
    ) -> SessionSummary:
        summary = SessionSummary(
            session_id, developer_id, project_id, timestamp, timestamp, None, None, None, False
        )
        with self._lock:
            self._live[session_id] = LiveSession(summary, time.monotonic())
            self._ended.pop(session_id, None)
            self._dirty.add(session_id)
        if self.shared:  # the session's next hook may reach another replica
            self._state.save_session(summary)
        return summary

    def end(self, session_id: str, reason: str, raw_reason: str | None, timestamp: str) -> None:
        with self._lock:
            live = self._live.pop(session_id, None)
        summary = live.summary if live else self.get(session_id)
        if summary is None:
            summary = SessionSummary(
                session_id, None, None, None, timestamp, None, None, None, True
            )
        ended = replace(
            summary,
            last_event_at=timestamp,
            ended_at=timestamp,
            end_reason=reason,
            raw_end_reason=raw_reason,
        )
        with self._lock:
            self._ended[session_id] = ended
            self._dirty.add(session_id)

    def mark_killed(self, request: KillRequest) -> None:
        with self._lock:
            self._killed[request.session_id] = request

    def adopt_shared(self, recent_seconds: float = 120.0) -> None:
        """Take in what other replicas recorded (run by the reaper, for a shared state):
        every kill request, and the recent ends of sessions this replica holds open."""
        killed = self._state.killed_sessions()
        since = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - recent_seconds))
        ended = [s for s in self._state.sessions(active=False, since=since) if s.ended_at]
        with self._lock:
            self._killed.update(killed)
            for summary in ended:
                live = self._live.get(summary.session_id)
                if live is None or summary.ended_at is None:
                    continue
                started = live.summary.started_at
                if started is not None and started > summary.ended_at:
                    continue  # started again here after that end (a resumed session)
                del self._live[summary.session_id]
                latest = max(summary.last_event_at, live.summary.last_event_at)
                self._ended[summary.session_id] = replace(summary, last_event_at=latest)

    def persist(self, session_id: str) -> None:
        """Write this process's view of ``session_id`` to a shared state now, not at the next
        flush: an end other workers must see before they answer (gateway/shared_changes.py)."""
        if not self.shared:
            return
        with self._lock:
            live = self._live.get(session_id)
            summary = live.summary if live is not None else self._ended.get(session_id)
        if summary is not None:
            self._state.save_session(summary)

    def idle_since(self, seconds: float) -> list[SessionSummary]:
        """Open sessions with no event for ``seconds``."""
        cutoff = time.monotonic() - seconds
        with self._lock:
            return [live.summary for live in self._live.values() if live.last_seen < cutoff]

    def flush(self) -> None:
        """Persist what changed since the last flush (run by the reaper thread only)."""
        with self._lock:
            changed = []
            for session_id in self._dirty:
                if session_id in self._live:
                    changed.append(self._live[session_id].summary)
                elif session_id in self._ended:
                    changed.append(self._ended[session_id])
            self._dirty.clear()
            flushed_ended = [s.session_id for s in changed if s.ended_at is not None]
        for summary in changed:
            self._state.save_session(summary)
        with self._lock:
            for session_id in flushed_ended:
                if session_id not in self._dirty:
                    self._ended.pop(session_id, None)
