"""The integrity page's facts: the latest signed checkpoint, the key, and ``verify`` run from
the console (one run at a time, in a worker thread, recorded in the ledger when it ends).

A verify run here uses the gateway's own key and this host's ledger: it catches corruption and
edits by anyone without the signing key. What only an off-host checkpoint catches (truncation,
a rewrite re-signed with the real key) needs that checkpoint: the page takes one to check
against, and says so when none was given.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trailguard.events import Alert, AuditAccess, Event, utc_now
from trailguard.ledger import checkpoint as checkpoints
from trailguard.ledger.log import EventLog
from trailguard.ledger.proof import ProofBundleError, latest_tree_head
from trailguard.ledger.verify import VerificationReport, verify_ledger
from trailguard.store.base import Store, StoreError

__all__ = ["IntegrityStatus", "VerifyJob", "VerifyRun", "integrity_status"]

MAX_SHOWN_FINDINGS = 100


@dataclass
class VerifyRun:
    started_at: str
    requested_by: str
    trusted_checkpoint: bool
    finished_at: str | None = None
    seconds: float | None = None
    report: VerificationReport | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def intact(self) -> bool | None:
        if self.report is None:
            return None
        return self.report.intact

    def summary(self) -> dict[str, Any]:
        """What the run found, as recorded in the ledger."""
        report = self.report
        return {
            "result": "error" if report is None else ("intact" if report.intact else "not intact"),
            "trustedCheckpoint": self.trusted_checkpoint,
            "events": report.events if report else None,
            "failures": len(report.failures) if report else None,
            "signedHeadSize": report.signed_head_size if report else None,
            "seconds": round(self.seconds or 0.0, 3),
            **({"error": self.error[:256]} if self.error else {}),
        }


@dataclass
class VerifyJob:
    """At most one ``verify`` at a time: a second request while one runs joins it."""

    ledger: EventLog
    record: Callable[[list[Event]], None]
    """Appends events durably from a worker thread (the gateway's ledger)."""
    last: VerifyRun | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(
        self, requested_by: str, developer_id: str, trusted_checkpoint: str | None
    ) -> tuple[VerifyRun, bool]:
        """Start a run unless one is running: (the run, whether this call started it)."""
        with self._lock:
            if self.last is not None and self.last.running:
                return self.last, False
            run = VerifyRun(utc_now(), requested_by, trusted_checkpoint is not None)
            self.last = run
        thread = threading.Thread(
            target=self._run,
            args=(run, developer_id, trusted_checkpoint),
            name="trailguard-console-verify",
            daemon=True,
        )
        thread.start()
        return run, True

    def _run(self, run: VerifyRun, developer_id: str, trusted_checkpoint: str | None) -> None:
        began = time.monotonic()
        opener = self.ledger.backend.open_reader
        try:
            store = opener()
            try:
                run.report = verify_ledger(
                    store,
                    opener,
                    self.ledger.verifier,
                    trusted_checkpoint=trusted_checkpoint,
                    workers=1,  # the gateway's cores answer hooks first
                    writer_running=True,
                )
            finally:
                store.close()
        except (StoreError, OSError) as exc:
            run.error = str(exc)
        run.seconds = time.monotonic() - began
        finished_at = utc_now()
        events: list[Event] = [
            AuditAccess(
                developer_id=developer_id,
                action="console verify",
                outcome="allowed",
                query=run.summary(),
                result_count=run.report.events if run.report else None,
                source="console",
            )
        ]
        if run.report is not None and not run.report.intact:
            failures = run.report.failures
            events.append(
                Alert(
                    alert_type="verify_failed",
                    severity="critical",
                    message=f"verify run from the console found {len(failures)} failure(s); "
                    f"first: {failures[0]}"[:1000],
                    details={"requestedBy": run.requested_by, "failures": len(failures)},
                    developer_id=developer_id,
                    source="console",
                )
            )
        try:
            self.record(events)
        except Exception:  # the run's result is still shown; the failure is the ledger's
            run.error = (run.error or "") + " (its record could not be written to the ledger)"
        # Finished only once recorded: whoever sees the result can find the run in the ledger.
        run.finished_at = finished_at


def check_trusted_checkpoint(text: str) -> str:
    """A pasted checkpoint, normalised to end with one newline; CheckpointError says what is
    wrong with its form (its signature is checked by verify)."""
    normalised = text.replace("\r\n", "\n").strip("\n") + "\n"
    checkpoints.read_unverified(normalised)
    return normalised


@dataclass
class IntegrityStatus:
    tree_size: int
    checkpoint_note: str | None
    checkpoint_size: int | None
    checkpoint_problem: str | None
    key_name: str
    key_fingerprint: str
    verifier_key: str
    writer_healthy: bool
    write_outage: str | None
    quarantined: int


def integrity_status(store: Store, ledger: EventLog) -> IntegrityStatus:
    """The latest signed tree head (checked against the stored tree before it is shown), the
    key that signs it, and the writer's health."""
    verifier = ledger.verifier
    note = size = problem = None
    try:
        head = latest_tree_head(store, verifier)
        note, size = head.note, head.tree_size
    except ProofBundleError as exc:
        problem = str(exc)
    return IntegrityStatus(
        tree_size=store.tree_size(),
        checkpoint_note=note,
        checkpoint_size=size,
        checkpoint_problem=problem,
        key_name=verifier.name,
        key_fingerprint=verifier.key_id.hex(),
        verifier_key=verifier.to_string(),
        writer_healthy=ledger.healthy,
        write_outage=ledger.write_outage,
        quarantined=len(store.quarantined()),
    )
