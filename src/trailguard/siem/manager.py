"""The gateway's side of its sinks: the sink worker process (``worker``) started and stopped
with the gateway, restarted if it dies, and the Prometheus metrics ``/metrics`` serves."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from trailguard.events import Alert
from trailguard.siem.config import SinkConfig, check_unique
from trailguard.siem.cursors import CursorStore
from trailguard.siem.forwarder import SinkStatus
from trailguard.siem.status import sink_statuses
from trailguard.siem.worker import specs
from trailguard.store.base import StoreError
from trailguard.store.sqlite import SQLiteStore

log = logging.getLogger("trailguard.siem")

STATES = ("starting", "running", "retrying", "paused", "stopped")
RESTART_DELAY = 5.0
MAX_RESTART_DELAY = 300.0
STABLE_SECONDS = 60.0
"""A worker that ran this long before exiting is restarted after ``RESTART_DELAY`` again."""


class SinkManager:
    """Runs the sink worker for ``configs`` over ``data_dir``; ``record_alert`` appends to the
    ledger (for the worker's own failures, which the worker cannot report itself)."""

    def __init__(
        self,
        data_dir: Path,
        configs: Sequence[SinkConfig],
        *,
        verifier_key: str,
        record_alert: Callable[[Alert], None] | None = None,
        drain_seconds: float = 3.0,
    ) -> None:
        check_unique(configs)
        self.data_dir = data_dir
        self.configs = list(configs)
        self.verifier_key = verifier_key
        self.record_alert = record_alert
        self.drain_seconds = drain_seconds
        self.cursors = CursorStore(data_dir)  # created now: `sinks status` works at once
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(
            target=self._supervise, name="trailguard-sink-supervisor", daemon=True
        )
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(SinkCollector(self))

    def _spawn(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trailguard.siem.worker",
                "--data-dir",
                str(self.data_dir),
                "--parent-pid",
                str(os.getpid()),
                "--verifier-key",
                self.verifier_key,
                "--drain-seconds",
                str(self.drain_seconds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(specs(self.configs).encode())
        process.stdin.close()
        ready = threading.Event()
        threading.Thread(target=self._await_ready, args=(process, ready), daemon=True).start()
        self._ready = ready
        return process

    @staticmethod
    def _await_ready(process: subprocess.Popen[bytes], ready: threading.Event) -> None:
        """The worker says "ready" once SIGTERM means "drain" to it (before, it would die)."""
        assert process.stdout is not None
        if process.stdout.readline().strip() == b"ready":
            ready.set()
        process.stdout.close()

    def start(self) -> None:
        for config in self.configs:
            for warning in config.warnings:
                log.warning("trailguard sink %s: %s", config.name, warning)
        self._process = self._spawn()
        self._supervisor.start()

    def _supervise(self) -> None:
        """A worker that exits on its own is a fault: said in the ledger, and restarted after
        a delay that doubles while it keeps dying (up to ``MAX_RESTART_DELAY``), so a worker
        that cannot start (a secret file gone) is alerted about, not restarted in a loop."""
        delay = RESTART_DELAY
        started = time.monotonic()
        while not self._stopping.wait(1.0):
            process = self._process
            if process is None or process.poll() is None:
                continue
            code = process.returncode
            if time.monotonic() - started > STABLE_SECONDS:
                delay = RESTART_DELAY
            log.error("trailguard: the sink worker exited (%s); restarting it in %g s", code, delay)
            if self.record_alert is not None:
                with contextlib.suppress(Exception):
                    self.record_alert(
                        Alert(
                            alert_type="sink_worker_exited",
                            severity="high",
                            message=f"the SIEM sink worker exited with status {code}; it is "
                            f"restarted in {delay:g} s and resumes from each cursor",
                            source="siem",
                        )
                    )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, MAX_RESTART_DELAY)
            started = time.monotonic()
            self._process = self._spawn()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Ask the worker to drain (up to ``drain_seconds``: at shutdown the ledger's closing
        gateway_stop and checkpoint go out too), then stop it."""
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            self._ready.wait(timeout=15)
            process.terminate()
            try:
                process.wait(timeout=self.drain_seconds + 15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._supervisor.is_alive():
            self._supervisor.join(timeout=5)
        self.cursors.close()

    def statuses(self) -> list[SinkStatus]:
        store = SQLiteStore.in_data_dir(self.data_dir, read_only=True)
        try:
            return sink_statuses(
                store,
                self.cursors,
                running=self.running,
                names={config.name for config in self.configs},
            )
        finally:
            store.close()


class SinkCollector(Collector):
    """Reads the sinks' status at each scrape (no state of its own)."""

    def __init__(self, manager: SinkManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        labels = ["sink"]
        cursor = GaugeMetricFamily(
            "trailguard_sink_cursor",
            "seq of the first event the sink has not acknowledged",
            labels=labels,
        )
        head = GaugeMetricFamily(
            "trailguard_sink_ledger_head",
            "events covered by the ledger's signed tree head",
            labels=labels,
        )
        lag_events = GaugeMetricFamily(
            "trailguard_sink_lag_events",
            "events in the ledger the sink has not acknowledged",
            labels=labels,
        )
        lag_seconds = GaugeMetricFamily(
            "trailguard_sink_lag_seconds",
            "age of the oldest event the sink has not acknowledged (0 when caught up)",
            labels=labels,
        )
        delivered = CounterMetricFamily(
            "trailguard_sink_delivered_events", "events the sink acknowledged", labels=labels
        )
        failures = CounterMetricFamily(
            "trailguard_sink_delivery_failures",
            "deliveries that failed and were retried",
            labels=labels,
        )
        state = GaugeMetricFamily(
            "trailguard_sink_state", "1 for the state the sink is in", labels=["sink", "state"]
        )
        try:
            statuses = self.manager.statuses()
        except StoreError as exc:
            log.error("trailguard: sink metrics unavailable: %s", exc)
            statuses = []
        for status in statuses:
            name = [status.name]
            cursor.add_metric(name, status.cursor)
            head.add_metric(name, status.head)
            lag_events.add_metric(name, status.lag_events)
            lag_seconds.add_metric(name, status.lag_seconds)
            delivered.add_metric(name, status.delivered)
            failures.add_metric(name, status.failures)
            for value in STATES:
                state.add_metric([status.name, value], 1.0 if status.state == value else 0.0)
        yield from (cursor, head, lag_events, lag_seconds, delivered, failures, state)
