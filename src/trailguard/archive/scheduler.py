"""The gateway's archive job: every minute the newest signed checkpoints go to the archive,
and every ``--archive-every`` the ledger is sealed into it and the hot store pruned (only what
the archive verified). Failures become alerts in the ledger; the job retries at its next turn."""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from trailguard.archive.backends import Archive
from trailguard.archive.layout import format_time
from trailguard.archive.seal import SealConfig, archive_ledger, export_checkpoints
from trailguard.archive.state import write_state
from trailguard.errors import InvalidInputError, TrailguardError
from trailguard.events import Alert
from trailguard.ledger.writer import Ledger, LedgerError
from trailguard.store.sqlite import SQLiteStore

log = logging.getLogger("trailguard.archive")

CHECKPOINT_EXPORT_SECONDS = 60.0
_INTERVAL = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """``30s``, ``10m``, ``1h``, ``1d``, ``7d`` as seconds; InvalidInputError otherwise."""
    match = _INTERVAL.match(text.strip())
    if not match or int(match[1]) == 0:
        raise InvalidInputError(
            f"--archive-every {text!r}: a number and a unit, like 1h, 1d or 7d (s, m, h, d)"
        )
    return int(match[1]) * _UNIT_SECONDS[match[2]]


@dataclass(frozen=True)
class ScheduleConfig:
    every_seconds: float
    hot_days: int
    seal: SealConfig
    prune: bool = True


class ArchiveScheduler:
    def __init__(
        self, ledger: Ledger, data_dir: Path, archive: Archive, config: ScheduleConfig
    ) -> None:
        self.ledger = ledger
        self.data_dir = data_dir
        self.archive = archive
        self.config = config
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trailguard-archive", daemon=True)
        self.next_run = time.monotonic()
        self.runs = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if time.monotonic() >= self.next_run:
                    self.run_once()
                else:
                    self.export_once()
            except Exception as exc:  # a bug must not end the job silently
                log.exception("trailguard archive job")
                self._alert("archive_failed", "high", f"the archive job failed: {exc}")
            wait = min(CHECKPOINT_EXPORT_SECONDS, max(0.0, self.next_run - time.monotonic()))
            self._stop.wait(max(wait, 0.05))

    def _alert(self, alert_type: str, severity: str, message: str, **details: Any) -> None:
        try:
            self.ledger.append(
                Alert(
                    alert_type=alert_type,
                    severity=severity,  # type: ignore[arg-type]
                    message=message,
                    details={"archive": self.archive.url, **details},
                    source="gateway",
                )
            )
        except LedgerError as exc:
            log.error("trailguard archive: could not record %s: %s", alert_type, exc)

    def export_once(self) -> None:
        store = SQLiteStore.in_data_dir(self.data_dir, read_only=True)
        try:
            export_checkpoints(
                store, self.ledger.verifier, self.archive, self.config.seal, datetime.now(UTC)
            )
        except TrailguardError as exc:
            log.warning("trailguard archive: checkpoint export failed: %s", exc)
        finally:
            store.close()

    def run_once(self) -> None:
        """Seal, read back, verify, then prune; the next run is scheduled either way."""
        from trailguard.archive.prune import prune_hot_store
        from trailguard.archive.verify import check_uploaded_segment

        started = datetime.now(UTC)
        self.next_run = time.monotonic() + self.config.every_seconds
        next_at = format_time(started + timedelta(seconds=self.config.every_seconds))
        self.runs += 1
        try:
            self.ledger.checkpoint()  # everything acknowledged so far becomes sealable
        except LedgerError as exc:
            log.warning("trailguard archive: no checkpoint before the run: %s", exc)
        store = SQLiteStore.in_data_dir(self.data_dir, read_only=True)
        try:
            result = archive_ledger(
                store,
                self.ledger.verifier,
                self.archive,
                self.config.seal,
                now=started,
                read_back=check_uploaded_segment,
            )
        except TrailguardError as exc:
            write_state(
                self.data_dir,
                archive=self.archive.url,
                lastRunAt=format_time(started),
                lastError=str(exc),
                nextRunAt=next_at,
            )
            self._alert("archive_refused", "critical", f"archiving stopped: {exc}")
            return
        finally:
            store.close()
        write_state(
            self.data_dir,
            archive=self.archive.url,
            lastRunAt=format_time(started),
            lastError=None,
            archivedSize=result.archived_size,
            retention=self.config.seal.retention.describe(),
            nextRunAt=next_at,
        )
        if not self.config.prune or not self.archive.write_once:
            return  # a local directory is never left as the only copy by the gateway
        writable = SQLiteStore.in_data_dir(self.data_dir)
        try:
            pruned = prune_hot_store(
                writable, self.archive, self.ledger.verifier, hot_days=self.config.hot_days
            )
        except TrailguardError as exc:
            self._alert("archive_prune_refused", "critical", f"prune refused: {exc}")
            return
        finally:
            writable.close()
        if pruned.removed:
            plan = pruned.plan
            self._alert(
                "hot_events_pruned",
                "info",
                f"events seq {plan.pruned_before}..{plan.boundary - 1} were removed from the "
                f"hot store after their segments were read back and verified",
                prunedFrom=plan.pruned_before,
                prunedBefore=plan.boundary,
                removed=pruned.removed,
            )
