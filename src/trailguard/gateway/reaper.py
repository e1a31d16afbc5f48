"""The gateway's background job for session endings it must notice itself: kill requests made
with `trailguard sessions kill` (from any process) and sessions idle past the timeout."""

from __future__ import annotations

import logging
import threading
import time

from trailguard.events import (
    Alert,
    Checkpoint,
    Event,
    EventValidationError,
    GatewayStart,
    GatewayStop,
    PolicyChange,
    SessionEnd,
    parse_event,
    utc_now,
)
from trailguard.gateway.fact_ids import FactIds
from trailguard.gateway.pipeline import redact_event
from trailguard.gateway.sessions import SessionRegistry
from trailguard.gateway.shared_changes import SESSIONS, SharedChanges
from trailguard.gateway.shared_spend import SharedSpend
from trailguard.ledger.log import EventLog
from trailguard.ledger.writer import LedgerError
from trailguard.policy.loader import PolicySet
from trailguard.policy.store import PolicyStore
from trailguard.redact import Redactor
from trailguard.store.base import StoreError
from trailguard.store.state import GatewayStateStore, KillRequest, SessionSummary

log = logging.getLogger("trailguard.reaper")

DEFAULT_IDLE_TIMEOUT = 30 * 60.0


class Reaper:
    def __init__(
        self,
        ledger: EventLog,
        sessions: SessionRegistry,
        state: GatewayStateStore,
        policies: PolicyStore | None = None,
        *,
        redactor: Redactor | None = None,
        shared_spend: SharedSpend | None = None,
        changes: SharedChanges | None = None,
        facts: FactIds | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        interval: float = 0.5,
    ) -> None:
        """``changes``: the workers of ``serve --workers N`` (kills, ends and the policy in
        force are announced to the other workers at once). ``facts``: ids for the ends it
        records, so one noticed by two processes is recorded once."""
        self.ledger = ledger
        self.sessions = sessions
        self.state = state
        self.policies = policies
        self.redactor = redactor
        self.shared_spend = shared_spend
        self.changes = changes
        self.facts = facts
        self._unpublished: PolicySet | None = None
        """A set in force here that the other workers were not yet told of."""
        self._unrecorded: PolicyChange | None = None
        """The policy_change of a set already in force, whose append failed: retried first
        (the same event id, so a retry of one that was stored after all is a duplicate)."""
        self.idle_timeout = idle_timeout
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trailguard-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except (LedgerError, StoreError) as exc:  # said loudly, retried next tick
                log.error("trailguard reaper: %s", exc)

    def tick(self) -> None:
        if self.policies is not None and (self.changes is None or self.ledger.leads):
            # With several workers only the lead reloads (and records the change once); the
            # others take the set it put in force (gateway/shared_changes.py).
            self._reload_policies(self.policies)
        if self.sessions.shared:
            self.sessions.adopt_shared()
        if self.shared_spend is not None:
            self.shared_spend.catch_up()
        if not self.ledger.leads:  # another replica (the sequencer) records kills and timeouts
            self.sessions.flush()
            return
        self._append_queued_events()
        for request in self.state.pending_kills():
            self.record_kill(request)
        ended = []
        for summary in self._idle():
            self.ledger.append(
                SessionEnd(
                    session_id=summary.session_id,
                    developer_id=summary.developer_id,
                    project_id=summary.project_id,
                    reason="timed_out",
                    raw_reason=f"no event for {self.idle_timeout:g} s "
                    f"(last at {summary.last_event_at})",
                    source="gateway",
                )
            )
            self.sessions.end(summary.session_id, "timed_out", None, utc_now())
            ended.append(summary.session_id)
        self.sessions.flush()
        if ended and self.changes is not None:
            self.changes.bump(SESSIONS)

    def record_kill(self, request: KillRequest) -> None:
        """Stop ``request``'s session and record its end (``session_end``, killed), unless it
        had ended already. Run by the lead's tick for kills requested elsewhere (the CLI) and
        at once by the worker that took a kill request (the console): the end's id is the
        kill's fact id, so when both record it the ledger keeps one. The other workers are
        told when the end is durable, or, if it cannot be recorded now, that the kill request
        is (they deny the session either way; the lead's tick records the end later).

        The kill request is durable in the state before this runs, so the other workers are
        told at once, before the end is appended: by the time anyone can read the end in the
        ledger, every worker denies the session."""
        session_id = request.session_id
        summary = self.sessions.get(session_id)
        self.sessions.mark_killed(request)
        if self.changes is not None:
            self.changes.bump(SESSIONS)
        try:
            if summary is None or summary.ended_at is None:
                end = SessionEnd(
                    session_id=session_id,
                    developer_id=summary.developer_id if summary else None,
                    project_id=summary.project_id if summary else None,
                    reason="killed",
                    raw_reason=request.reason,
                    source="gateway",
                    extra={
                        "requestedBy": request.requested_by,
                        "requestedAt": request.requested_at,
                    },
                )
                if self.facts is not None:
                    end = end.model_copy(
                        update={"event_id": self.facts.kill(session_id, request.requested_at)}
                    )
                self.ledger.append(end)
                self.sessions.end(session_id, "killed", request.reason, utc_now())
                self.sessions.persist(session_id)
            self.state.mark_kill_recorded(session_id)
        finally:
            if self.changes is not None:
                self.changes.bump(SESSIONS)

    def _idle(self) -> list[SessionSummary]:
        """Sessions with no event for the idle timeout: this process's own view, or for a
        shared state, every replica's (each flushes its latest activity there)."""
        if not self.sessions.shared:
            return self.sessions.idle_since(self.idle_timeout)
        self.sessions.flush()
        cutoff = time.strftime(
            "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - self.idle_timeout)
        )
        return [s for s in self.state.sessions(active=True) if s.last_event_at < cutoff]

    def _append_queued_events(self) -> None:
        """Append what CLI processes queued for the ledger (token changes, their own reads):
        the ledger has one writer. Each queued event is parsed strictly and redacted like any
        other route's; one that is not a valid event is dropped with an alert, never retried
        forever. A replay after a crash is recorded once (by event id)."""
        queued = self.state.pending_events()
        if not queued:
            return
        events: list[Event] = []
        for queue_id, document in queued:
            try:
                event = parse_event(document)
                if isinstance(event, Checkpoint | GatewayStart | GatewayStop):
                    raise EventValidationError([f"{event.event_type.value}: written by the ledger"])
                events.append(
                    event if self.redactor is None else redact_event(self.redactor, event)
                )
            except EventValidationError as exc:
                events.append(
                    Alert(
                        alert_type="queued_event_refused",
                        severity="medium",
                        message=f"an event queued by a CLI process (queue id {queue_id}) is not "
                        f"a valid event and was dropped: {exc}",
                        source="gateway",
                    )
                )
        self.ledger.append_many(events)
        self.state.remove_pending_events([queue_id for queue_id, _ in queued])

    def _reload_policies(self, policies: PolicyStore) -> None:
        """Hot reload: a changed policy set is put in force (on every worker: the others are
        told before the record is appended, so once policy_change can be read in the ledger
        every worker decides under it) and recorded as policy_change, retried until it is
        stored; one that does not load is recorded as an alert, and the set in force stays."""
        if self._unpublished is not None:
            self._publish(self._unpublished)
        if self._unrecorded is not None:
            self.ledger.append(self._unrecorded)
            self._unrecorded = None
        change = policies.changed()
        if change is None:
            return
        if change.policy_set is None:
            self.ledger.append(
                Alert(
                    alert_type="policy_reload_failed",
                    severity="high",
                    message=f"changed policies did not load; still enforcing "
                    f"{change.previous_version}: {change.error}",
                    source="gateway",
                )
            )
            policies.settle(change)
            return
        self._unrecorded = PolicyChange(
            policy_version=change.policy_set.version,
            previous_version=change.previous_version,
            description=f"reloaded from {change.policy_set.source}",
            source="gateway",
        )
        policies.settle(change)
        self._publish(change.policy_set)
        self.ledger.append(self._unrecorded)
        self._unrecorded = None

    def _publish(self, policy_set: PolicySet) -> None:
        if self.changes is None:
            return
        try:
            self.changes.publish_policy(policy_set)
        except OSError as exc:  # retried every tick; said loudly meanwhile
            self._unpublished = policy_set
            log.error(
                "trailguard reaper: policy %s is in force here but the other workers were not "
                "told (%s); retrying",
                policy_set.version,
                exc,
            )
        else:
            self._unpublished = None
