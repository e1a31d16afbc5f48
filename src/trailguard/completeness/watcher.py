"""The gateway's completeness watcher: follows the ledger (its own read-only connection) and
raises, as durable ``alert`` events, ``hook_gap`` (a tool call another source saw that no hook
reported), ``hook_mismatch`` (a hook reported another input than the model emitted),
``unaudited_session`` (model traffic or telemetry for a session no hook ever reported) and
``hooks_disabled`` (trailguard's hooks removed or weakened between sessions or by a change).

Following the ledger rather than the routes means every way in (hooks, spool replays, ingest,
proxy, telemetry) is reconciled the same way, and a restart loses nothing: the watcher re-reads
the last ``lookback`` of the ledger, and the alerts it already raised are in it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import JsonValue

from trailguard.capture.claude_code import cap_value
from trailguard.completeness.reconcile import Call, Reconciler, SessionState
from trailguard.completeness.report import DEFAULT_RULES, Rules
from trailguard.events import Alert, Event, format_timestamp, parse_timestamp
from trailguard.gateway.sessions import SessionRegistry
from trailguard.ledger.log import EventLog
from trailguard.ledger.writer import LedgerError
from trailguard.redact import Redactor
from trailguard.store.base import EventFilter, Store, StoreError

log = logging.getLogger("trailguard.completeness")

ALERT_INPUT_CAP = 16 * 1024
DEFAULT_LOOKBACK = timedelta(hours=6)
IDLE_FORGET = timedelta(hours=2)


def _capped(value: Any) -> JsonValue:
    capped = cap_value(value, ALERT_INPUT_CAP)
    result: JsonValue = capped.value
    return result


def gap_alert(state: SessionState, call: Call) -> Alert:
    sources = call.others
    return Alert(
        session_id=state.session_id,
        developer_id=state.developer_id,
        project_id=state.project_id,
        alert_type="hook_gap",
        severity="high",
        message=f"tool call {call.tool_use_id} ({call.tool or 'tool unknown'}) was seen by "
        f"{', '.join(sources)} in session {state.session_id}, but no hook reported it: it may "
        "have run without a policy decision or a record",
        details={
            "toolUseId": call.tool_use_id,
            "tool": call.tool,
            "input": _capped(call.input),
            "inputSource": call.input_source,
            "sources": list[JsonValue](sources),
            "seenAt": dict[str, JsonValue](call.seen_by),
            "agentId": call.agent_id,
        },
        source="gateway",
    )


def mismatch_alert(state: SessionState, call: Call, keys: list[str]) -> Alert:
    return Alert(
        session_id=state.session_id,
        developer_id=state.developer_id,
        project_id=state.project_id,
        alert_type="hook_mismatch",
        severity="high",
        message=f"the hook for tool call {call.tool_use_id} ({call.tool}) reported "
        f"{', '.join(keys)} differently from the model's own tool_use: the decision was made on "
        "another input than the one the model asked for",
        details={
            "toolUseId": call.tool_use_id,
            "tool": call.tool,
            "keys": list[JsonValue](keys),
            "modelInput": _capped(call.input),
            "hookInput": _capped(call.hook_input),
        },
        source="gateway",
    )


def unaudited_alert(
    session_id: str,
    sources: list[str],
    *,
    first_at: str | None,
    refused: bool = False,
    developer_id: str | None = None,
    project_id: str | None = None,
) -> Alert:
    seen = ", ".join(sources) or "the proxy"
    action = (
        "its model requests are refused (--require-hooks)"
        if refused
        else "it runs without policy decisions or a tool record"
    )
    return Alert(
        session_id=session_id,
        developer_id=developer_id,
        project_id=project_id,
        alert_type="unaudited_session",
        severity="high",
        message=f"session {session_id} is active ({seen}) but no hook has ever reported it: "
        f"trailguard's hooks are missing, disabled or bypassed; {action}",
        details={
            "sources": list[JsonValue](sources),
            "firstSeenAt": first_at,
            "refused": refused,
        },
        source="gateway",
    )


def disabled_alert(state: SessionState, finding: Any) -> Alert:
    compared = (
        f" (compared with session {finding.compared_with})"
        if finding.compared_with and finding.compared_with != state.session_id
        else ""
    )
    when = "at the start of" if finding.what == "session_start" else "by a configuration change in"
    return Alert(
        session_id=state.session_id,
        developer_id=state.developer_id,
        project_id=state.project_id,
        alert_type="hooks_disabled",
        severity="high",
        message=f"trailguard's hooks were weakened {when} session {state.session_id}"
        f"{compared}: {'; '.join(finding.weakenings)}",
        details={
            "findingKey": finding.key,
            "weakenings": list[JsonValue](finding.weakenings),
            "comparedWithSession": finding.compared_with,
            "cwd": state.cwd,
        },
        source="gateway",
    )


def due_alerts(
    reconciler: Reconciler,
    now: datetime,
    rules: Rules,
    waiting: set[str],
    *,
    known: Callable[[str], bool],
) -> list[Event]:
    """The alerts due at ``now``, judging only the sessions events were added to since the
    last call and those still ``waiting`` (updated in place). ``known(session)`` says whether
    the gateway's session registry knows the session (from hooks older than the ledger read)."""
    alerts: list[Event] = []
    for owner, finding in reconciler.new_findings:
        if not finding.alerted:
            finding.alerted = True
            alerts.append(disabled_alert(owner, finding))
    reconciler.new_findings.clear()
    judged = reconciler.touched | waiting
    reconciler.touched = set()
    for session_id in judged:
        state = reconciler.sessions.get(session_id)
        if state is None:
            waiting.discard(session_id)
            continue
        still_waiting = False
        if not state.hooked and not state.unaudited_alerted and state.first_other_at:
            if not state.unaudited(now, rules.unaudited_grace):
                still_waiting = True
            elif not known(session_id):
                state.unaudited_alerted = True
                alerts.append(
                    unaudited_alert(
                        state.session_id,
                        sorted(state.other_sources),
                        first_at=state.first_other_at,
                        developer_id=state.developer_id,
                        project_id=state.project_id,
                    )
                )
        for call in state.calls.values():
            if call.invoked_at is None:
                if call.gap_alerted or not call.others:
                    continue
                if state.missing_hook(call, now, grace=rules.grace, max_wait=rules.max_wait):
                    call.gap_alerted = True
                    alerts.append(gap_alert(state, call))
                else:
                    still_waiting = True
            elif not call.mismatch_checked and call.input_source == "proxy":
                call.mismatch_checked = True
                keys = call.mismatched_keys()
                if keys and not call.mismatch_alerted:
                    call.mismatch_alerted = True
                    alerts.append(mismatch_alert(state, call, keys))
        if still_waiting:
            waiting.add(session_id)
        else:
            waiting.discard(session_id)
    return alerts


CATCH_UP_ROWS_PER_TICK = 5000
"""About 50 ms of reading a tick (every 0.5 s): a 1 M-event lookback is read in under two
minutes, using a tenth of a core, while the hooks keep their latency (bench_scaling.py)."""


class CompletenessWatcher:
    def __init__(
        self,
        ledger: EventLog,
        sessions: SessionRegistry,
        redactor: Redactor,
        *,
        rules: Rules = DEFAULT_RULES,
        interval: float = 0.5,
        lookback: timedelta = DEFAULT_LOOKBACK,
        rows_per_tick: int | None = None,
    ) -> None:
        self.ledger = ledger
        self.rows_per_tick = rows_per_tick or CATCH_UP_ROWS_PER_TICK
        """At most this many events are read per tick: a start on a big recent ledger catches
        up over several ticks instead of holding the interpreter (and the hooks) for seconds."""
        self.sessions = sessions
        self.redactor = redactor
        self.rules = rules
        self.interval = interval
        self.lookback = lookback
        self.reconciler = Reconciler()
        self.waiting: set[str] = set()
        """Sessions with something not yet due (a call the hooks may still report, an
        unaudited session within its grace): judged again every tick."""
        self.cursor: int | None = None
        self._store: Store | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="trailguard-completeness", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._store is not None:
            self._store.close()
            self._store = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except (LedgerError, StoreError) as exc:
                log.error("trailguard completeness watcher: %s", exc)
            except Exception:  # a bug must not stop the watcher for good
                log.exception("trailguard completeness watcher failed; retrying")

    def _open(self) -> Store:
        if self._store is None:
            self._store = self.ledger.backend.open_reader()
        return self._store

    def _prime(self, store: Store, now: datetime) -> int:
        """Where to start reading: the first event of the last ``lookback``. Earlier sessions'
        hook configurations are read (session starts only) for later comparisons."""
        since = format_timestamp(now - self.lookback)
        first = next(iter(store.query(EventFilter(since=since, limit=1))), None)
        start = first.seq if first is not None else store.tree_size()
        for row in store.query(EventFilter(event_type="session_start", until=since)):
            self.reconciler.add(orjson.loads(row.body))
        self.reconciler.new_findings.clear()  # old findings were alerted (or not) back then
        for state in self.reconciler.sessions.values():
            for finding in state.findings:
                finding.alerted = True
        return start

    def tick(self, now: datetime | None = None) -> list[Event]:
        """Read what is new, raise what is due. Returns the alerts appended (for tests)."""
        now = now or datetime.now(UTC)
        store = self._open()
        if self.cursor is None:
            self.cursor = self._prime(store, now)
        read = 0
        for row in store.rows(self.cursor):
            self.reconciler.add(orjson.loads(row.body))
            self.cursor = row.seq + 1
            read += 1
            if read >= self.rows_per_tick:
                break
        if read >= self.rows_per_tick:
            return []  # still catching up: judged once every event so far is read
        alerts = self._due(now)
        if alerts:
            self.ledger.append_many([self.redactor.redact_event(alert) for alert in alerts])
        self._forget(now)
        return alerts

    def _due(self, now: datetime) -> list[Event]:
        return due_alerts(
            self.reconciler,
            now,
            self.rules,
            self.waiting,
            known=lambda session_id: self.sessions.get(session_id) is not None,
        )

    def _forget(self, now: datetime) -> None:
        """Sessions quiet for long, with nothing left to decide, leave memory (the ledger keeps
        them; reports read it)."""
        cutoff = now - max(IDLE_FORGET, self.rules.max_wait * 2)
        stale = [
            session_id
            for session_id, state in self.reconciler.sessions.items()
            if state.last_at is not None and parse_timestamp(state.last_at) < cutoff
        ]
        for session_id in stale:
            del self.reconciler.sessions[session_id]
            self.waiting.discard(session_id)
