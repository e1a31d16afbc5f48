"""All sinks of one gateway: their forwarders started and stopped with the gateway, their status,
and the Prometheus metrics ``/metrics`` serves."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from trailguard.siem.config import SinkConfig, check_unique
from trailguard.siem.cursors import CursorStore
from trailguard.siem.forwarder import Forwarder, SinkStatus, TransportFactory, default_transport

if TYPE_CHECKING:
    from trailguard.ledger.writer import Ledger
    from trailguard.redact import Redactor

log = logging.getLogger("trailguard.siem")

STATES = ("starting", "running", "retrying", "paused", "stopped")


class SinkManager:
    def __init__(
        self,
        ledger: Ledger,
        configs: Sequence[SinkConfig],
        *,
        redactor: Redactor | None = None,
        poll_interval: float = 0.1,
        transport_factory: TransportFactory = default_transport,
    ) -> None:
        check_unique(configs)
        self.ledger = ledger
        self.cursors = CursorStore(ledger.data_dir)
        hostname = socket.gethostname()
        self.forwarders = [
            Forwarder(
                config,
                data_dir=ledger.data_dir,
                verifier=ledger.verifier,
                cursors=self.cursors,
                hostname=hostname,
                ledger=ledger,
                redactor=redactor,
                poll_interval=poll_interval,
                transport_factory=transport_factory,
            )
            for config in configs
        ]
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(SinkCollector(self))

    def start(self) -> None:
        for forwarder in self.forwarders:
            for warning in forwarder.config.warnings:
                log.warning("trailguard sink %s: %s", forwarder.config.name, warning)
            forwarder.start()

    def stop(self, drain_seconds: float = 3.0) -> None:
        """Give every sink up to ``drain_seconds`` (together) to take what the ledger holds,
        then stop them."""
        for forwarder in self.forwarders:
            forwarder.request_stop(drain_seconds)
        for forwarder in self.forwarders:
            forwarder.join()
        self.cursors.close()

    def statuses(self) -> list[SinkStatus]:
        return [forwarder.status for forwarder in self.forwarders]


class SinkCollector(Collector):
    """Reads the forwarders' latest status at each scrape (no state of its own)."""

    def __init__(self, manager: SinkManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        cursor = GaugeMetricFamily(
            "trailguard_sink_cursor",
            "seq of the first event the sink has not acknowledged",
            labels=["sink"],
        )
        head = GaugeMetricFamily(
            "trailguard_sink_ledger_head",
            "events in the ledger covered by a signed tree head",
            labels=["sink"],
        )
        lag_events = GaugeMetricFamily(
            "trailguard_sink_lag_events",
            "events in the ledger the sink has not acknowledged",
            labels=["sink"],
        )
        lag_seconds = GaugeMetricFamily(
            "trailguard_sink_lag_seconds",
            "age of the oldest event the sink has not acknowledged (0 when caught up)",
            labels=["sink"],
        )
        delivered = CounterMetricFamily(
            "trailguard_sink_delivered_events", "events the sink acknowledged", labels=["sink"]
        )
        failures = CounterMetricFamily(
            "trailguard_sink_delivery_failures",
            "deliveries that failed and were retried",
            labels=["sink"],
        )
        state = GaugeMetricFamily(
            "trailguard_sink_state", "1 for the state the sink is in", labels=["sink", "state"]
        )
        for status in self.manager.statuses():
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
