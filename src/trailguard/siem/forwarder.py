"""One sink's forwarder: a thread that reads the ledger in ``seq`` order from the sink's durable
cursor and moves the cursor only once the sink acknowledged what came before it.

Invariants (each driven by a test in tests/test_siem*.py):
- At least once, in order: batches leave in ``seq`` order; after any failure (connection lost,
  no acknowledgement in time, a crash of the gateway) sending restarts at the cursor, so what
  was in flight is sent again and nothing after it is sent first.
- Only signed events: nothing beyond the ledger's latest verified signed tree head is read (a
  row written into the file by anything but the ledger writer is never forwarded).
- The ledger is the buffer: memory holds at most ``window`` batches of ``batch_size`` messages
  (and at most ~1 MiB each), however long the sink is away.
- Nothing is skipped silently: a sink that refuses (4xx, a certificate that does not verify)
  is retried, then paused with an alert, its cursor kept, until `trailguard sinks resume`.
  Lagging past the threshold raises an alert, and so does catching up again.
- Sinks never slow the hook path: forwarders run in their own process (``worker``), only read
  the ledger (their own read-only connections, short read transactions), and record at most an
  alert per state change, through the queue the gateway's reaper appends.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from trailguard.events import Alert, parse_timestamp
from trailguard.ledger import checkpoint as checkpoints
from trailguard.ledger.note import Verifier
from trailguard.siem.config import SinkConfig
from trailguard.siem.cursors import CursorStore
from trailguard.siem.delivery import (
    Batch,
    Message,
    SinkError,
    SinkRefusedError,
    SinkUnavailableError,
    Transport,
    scrub,
)
from trailguard.siem.formats import MessageMaker
from trailguard.store.base import SIGNED_HEAD_KEY, StoreError
from trailguard.store.sqlite import SQLiteStore

log = logging.getLogger("trailguard.siem")

MAX_BATCH_BYTES: Final = 1024 * 1024
REFUSALS_BEFORE_PAUSE: Final = 5


@dataclass(frozen=True)
class SinkStatus:
    """A snapshot of one forwarder, for ``/metrics`` and tests."""

    name: str
    destination: str
    state: str
    """``starting``, ``running``, ``retrying``, ``paused`` or ``stopped``."""
    cursor: int
    head: int
    lag_events: int
    lag_seconds: float
    delivered: int
    failures: int
    last_error: str | None


def _age_seconds(timestamp: str) -> float:
    from datetime import UTC, datetime

    moment = parse_timestamp(timestamp)
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


class _Stopping(Exception):
    """Raised inside the retry loop when the forwarder is asked to stop."""


TransportFactory = Callable[[SinkConfig, str], Transport]


def default_transport(config: SinkConfig, hostname: str) -> Transport:
    if config.kind == "syslog":
        from trailguard.siem.syslog import SyslogTransport

        return SyslogTransport(config, hostname=hostname)
    if config.kind == "splunk-hec":
        from trailguard.siem.http import HecTransport

        return HecTransport(config, hostname=hostname)
    from trailguard.siem.http import WebhookTransport

    return WebhookTransport(config, hostname=hostname)


class Forwarder:
    def __init__(
        self,
        config: SinkConfig,
        *,
        data_dir: Path,
        verifier: Verifier,
        cursors: CursorStore,
        hostname: str,
        record_alert: Callable[[Alert], None] | None = None,
        poll_interval: float = 0.1,
        transport_factory: TransportFactory = default_transport,
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.verifier = verifier
        self.cursors = cursors
        self.hostname = hostname
        self.record_alert = record_alert
        self.poll_interval = poll_interval
        self._transport_factory = transport_factory
        self._transport: Transport | None = None
        self._maker = MessageMaker(config, hostname=hostname)
        self._wake = threading.Event()
        self._stop_requested = False
        self._drain_until: float | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"trailguard-sink-{config.name}", daemon=True
        )
        self._in_flight: deque[Batch] = deque()
        self._cursor = 0
        self._read_pos = 0
        self._head = 0
        self._signed_head_text: str | None = None
        self._delivered = 0
        self._failures = 0
        self._refusals = 0
        self._lagging = False
        self._cursor_timestamp: tuple[int, str] | None = None
        self._status = SinkStatus(
            config.name, config.destination, "starting", 0, 0, 0, 0.0, 0, 0, None
        )
        self._store: SQLiteStore | None = None

    # -- control ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_seconds: float = 0.0) -> None:
        """Stop, first giving the sink up to ``drain_seconds`` to take what the ledger holds
        now (the gateway's closing ``gateway_stop`` and checkpoint, at shutdown)."""
        self.request_stop(drain_seconds)
        self.join()

    def request_stop(self, drain_seconds: float = 0.0) -> None:
        if drain_seconds > 0:
            self._drain_until = time.monotonic() + drain_seconds
        else:
            self._stop_requested = True
        self._wake.set()

    def join(self) -> None:
        deadline = self._drain_until or time.monotonic()
        if self._thread.is_alive():
            self._thread.join(
                timeout=max(0.0, deadline - time.monotonic()) + self.config.timeout + 5
            )

    @property
    def status(self) -> SinkStatus:
        return self._status

    def _stopping(self) -> bool:
        if self._stop_requested:
            return True
        deadline = self._drain_until
        return deadline is not None and time.monotonic() >= deadline

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when asked to stop (or to drain by a deadline)."""
        deadline = self._drain_until
        if deadline is not None:
            seconds = min(seconds, max(0.0, deadline - time.monotonic()))
        if self._stop_requested:
            return
        self._wake.wait(seconds)
        self._wake.clear()

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._store = SQLiteStore.in_data_dir(self.data_dir, read_only=True)
            self._refresh_head()
            start = self._head if self.config.start == "end" else 0
            record = self.cursors.open_sink(self.config.name, self.config.destination, start)
            self._cursor = self._read_pos = record.cursor
            self._delivered = record.delivered
            self._failures = record.failures
            self._set_state("running")
            self._loop()
        except StoreError as exc:
            log.error("trailguard sink %s stopped: %s", self.config.name, exc)
            self._status = replace(self._status, state="stopped", last_error=str(exc))
        finally:
            if self._transport is not None:
                self._transport.close()
            if self._store is not None:
                self._store.close()
            with contextlib.suppress(StoreError):
                self.cursors.set_state(self.config.name, "stopped")
            self._status = replace(self._status, state="stopped")

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(self._should_retry),
            wait=wait_random_exponential(multiplier=0.5, max=self.config.max_backoff, min=0.05),
            stop=lambda _: self._stopping(),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def _loop(self) -> None:
        retrying = self._retrying()
        while not self._stopping():
            if self._status.state == "paused":
                self._wait_for_resume()
                continue
            try:
                progressed = False
                for attempt in retrying:
                    with attempt:
                        progressed = self._step()
            except SinkRefusedError as exc:
                self._pause(str(exc))
                continue
            except (SinkUnavailableError, _Stopping):
                break  # only when stopping: unavailability is retried for as long as it takes
            except StoreError as exc:  # the ledger could not be read now: said, tried again
                log.error("trailguard sink %s: %s", self.config.name, exc)
                self._rewind()
                self._sleep(1.0)
                continue
            except Exception as exc:  # a bug (an event that cannot be formatted...): never skip it
                log.exception("trailguard sink %s: internal error", self.config.name)
                self._rewind()
                self._pause(
                    f"internal error at seq {self._cursor}: {type(exc).__name__}: {exc}",
                    refused=False,
                )
                continue
            self._update_status()
            if self._drain_until is not None and self._idle():
                break
            if self._in_flight and not progressed:
                self._sleep(
                    self._transport.poll_interval if self._transport else self.poll_interval
                )
            elif self._idle():
                # Caught up: wait for the next poll rather than send each new event alone, so
                # a live stream goes out in batches of what one poll interval brings.
                self._sleep(self.poll_interval)

    def _idle(self) -> bool:
        return not self._in_flight and self._read_pos >= self._head

    def _should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, SinkUnavailableError):
            return True
        if isinstance(exc, SinkRefusedError):
            return self._refusals < REFUSALS_BEFORE_PAUSE
        return False

    def _before_sleep(self, state: RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        error = scrub(str(exc), self.config)
        log.warning(
            "trailguard sink %s: %s; retry %d in %.1f s (cursor %d, lag %d events)",
            self.config.name,
            error,
            state.attempt_number,
            wait,
            self._cursor,
            self._head - self._cursor,
        )
        self._set_state("retrying", error)
        self._update_status(last_error=error)

    # -- one step: send what the window allows, collect acknowledgements ----------------------

    def _step(self) -> bool:
        """Send batches while the window has room, then take acknowledgements. Returns whether
        anything moved. Raises SinkError (after resetting to the cursor)."""
        if self._stopping() and self._drain_until is None:
            raise _Stopping
        try:
            return self._send_and_collect()
        except SinkError as exc:
            self._failures += 1
            if isinstance(exc, SinkRefusedError):
                self._refusals += 1
            with contextlib.suppress(StoreError):
                self.cursors.record_failure(self.config.name, scrub(str(exc), self.config))
            self._rewind()
            raise

    def _send_and_collect(self) -> bool:
        self._refresh_head()
        if self._transport is None:
            self._transport = self._transport_factory(self.config, self.hostname)
        transport = self._transport
        moved = False
        while len(self._in_flight) < transport.window and self._read_pos < self._head:
            batch = self._next_batch()
            self._read_pos = batch.end
            moved = True
            if not batch.messages:  # everything in the range was filtered out
                if self._in_flight:
                    self._in_flight[-1].end = batch.end
                else:
                    self._advance(batch.end, 0)
                continue
            transport.send(batch)
            batch.sent_at = time.monotonic()
            self._in_flight.append(batch)
        if self._in_flight:
            done = transport.acknowledged(list(self._in_flight))
            if done:
                acknowledged = [self._in_flight.popleft() for _ in range(done)]
                self._advance(acknowledged[-1].end, sum(len(b.messages) for b in acknowledged))
                moved = True
            elif time.monotonic() - self._in_flight[0].sent_at > self._ack_timeout():
                raise SinkUnavailableError(
                    f"{self.config.destination}: no acknowledgement of seq "
                    f"{self._in_flight[0].first_seq}..{self._in_flight[0].last_seq} within "
                    f"{self._ack_timeout():g} s; sending again from the cursor"
                )
        return moved

    def _ack_timeout(self) -> float:
        return self.config.ack_timeout if self.config.ack else max(self.config.timeout, 5.0)

    def _next_batch(self) -> Batch:
        assert self._store is not None
        messages: list[Message] = []
        size = 0
        end = self._read_pos
        limit = min(self._head, self._read_pos + self.config.batch_size * 4)
        rows = self._store.rows(self._read_pos, limit)
        try:
            for row in rows:
                end = row.seq + 1
                message = self._maker.message(row)
                if message is None:
                    continue
                messages.append(message)
                size += len(message.payload)
                if len(messages) >= self.config.batch_size or size >= MAX_BATCH_BYTES:
                    break
        finally:  # end the read transaction now, not when the generator is collected
            close = getattr(rows, "close", None)
            if close is not None:
                close()
        return Batch(messages, end, size=size)

    def _advance(self, cursor: int, delivered: int) -> None:
        self.cursors.advance(self.config.name, cursor, delivered)
        self._cursor = cursor
        self._delivered += delivered
        if delivered:
            self._refusals = 0
            if self._status.state != "running":
                self._set_state("running")

    def _rewind(self) -> None:
        """After a failure: forget what was in flight and read again from the cursor."""
        self._in_flight.clear()
        self._read_pos = self._cursor
        if self._transport is not None:
            self._transport.close()

    # -- the ledger's signed head ---------------------------------------------------------------

    def _refresh_head(self) -> None:
        """Read only what a verified signed tree head covers."""
        assert self._store is not None
        text = self._store.get_meta(SIGNED_HEAD_KEY)
        if text is None or text == self._signed_head_text:
            return
        try:
            head = checkpoints.open_checkpoint(text, self.verifier)
        except checkpoints.CheckpointError as exc:
            if self._signed_head_text is not None or self._head == 0:
                self._alert(
                    "sink_source_unverified",
                    "critical",
                    f"sink {self.config.name}: the ledger's signed tree head does not verify "
                    f"({exc}); nothing past seq {self._head} is forwarded",
                )
            self._signed_head_text = text
            return
        self._signed_head_text = text
        self._head = max(self._head, head.tree_size)

    # -- state, status and alerts ------------------------------------------------------------

    def _set_state(self, state: str, reason: str | None = None) -> None:
        with contextlib.suppress(StoreError):
            self.cursors.set_state(self.config.name, state, reason)
        self._status = replace(self._status, state=state)

    def _lag_seconds(self) -> float:
        if self._cursor >= self._head:
            return 0.0
        cached = self._cursor_timestamp
        if cached is None or cached[0] != self._cursor:
            assert self._store is not None
            row = self._store.row_by_seq(self._cursor)
            if row is None:
                return 0.0
            cached = self._cursor_timestamp = (self._cursor, row.timestamp)
        return _age_seconds(cached[1])

    def _update_status(self, last_error: str | None = None) -> None:
        lag_events = max(0, self._head - self._cursor)
        lag_seconds = self._lag_seconds()
        self._status = replace(
            self._status,
            cursor=self._cursor,
            head=self._head,
            lag_events=lag_events,
            lag_seconds=lag_seconds,
            delivered=self._delivered,
            failures=self._failures,
            last_error=last_error if last_error is not None else self._status.last_error,
        )
        over = (
            lag_seconds > self.config.lag_alert_seconds or lag_events > self.config.lag_alert_events
        )
        if over and not self._lagging:
            self._lagging = True
            self._alert(
                "sink_lagging",
                "medium",
                f"sink {self.config.name} is {lag_events} event(s) and {lag_seconds:.0f} s "
                f"behind the ledger (thresholds {self.config.lag_alert_events} events, "
                f"{self.config.lag_alert_seconds:g} s); last error: {self._status.last_error}",
                {"lagEvents": lag_events, "lagSeconds": round(lag_seconds, 1)},
            )
        elif self._lagging and (
            lag_events == 0
            or (
                lag_seconds < self.config.lag_alert_seconds / 2
                and lag_events < self.config.lag_alert_events / 2
            )
        ):
            self._lagging = False
            self._alert(
                "sink_caught_up",
                "info",
                f"sink {self.config.name} caught up: {lag_events} event(s), {lag_seconds:.0f} s "
                "behind the ledger",
                {"lagEvents": lag_events, "lagSeconds": round(lag_seconds, 1)},
            )

    def _pause(self, reason: str, *, refused: bool = True) -> None:
        self._set_state("paused", reason)
        self._update_status(last_error=reason)
        log.error("trailguard sink %s paused at seq %d: %s", self.config.name, self._cursor, reason)
        self._alert(
            "sink_paused",
            "high",
            f"sink {self.config.name} "
            + (f"refused delivery {self._refusals} time(s)" if refused else "failed")
            + f" and is paused at seq {self._cursor} (nothing is skipped; the ledger keeps "
            f"everything): {reason}. Fix the cause, then run `trailguard sinks resume "
            f"{self.config.name}`",
            {"cursor": self._cursor, "reason": reason},
        )

    def _wait_for_resume(self) -> None:
        self._sleep(1.0)
        try:
            resumed = self.cursors.take_resume_request(self.config.name)
        except StoreError as exc:
            log.error("trailguard sink %s: %s", self.config.name, exc)
            return
        self._refresh_head()
        self._update_status()
        if resumed:
            self._refusals = 0
            self._set_state("running")
            self._alert(
                "sink_resumed",
                "info",
                f"sink {self.config.name} resumed at seq {self._cursor} on request",
                {"cursor": self._cursor},
            )

    def _alert(
        self, alert_type: str, severity: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        """Record a state change of the sink in the ledger (the sink's secret scrubbed; the
        recorder redacts like every route into the ledger); never waits for the commit."""
        message = scrub(message, self.config)
        detail_values: dict[str, Any] = {
            "sink": self.config.name,
            "destination": self.config.destination,
        }
        detail_values.update(details or {})
        alert = Alert(
            alert_type=alert_type,
            severity=severity,  # type: ignore[arg-type]
            message=message,
            details={
                k: scrub(v, self.config) if isinstance(v, str) else v
                for k, v in detail_values.items()
            },
            source="siem",
        )
        if self.record_alert is None:
            log.warning("trailguard sink alert (not recorded): %s", message)
            return
        try:
            self.record_alert(alert)
        except Exception as exc:  # the ledger closed at shutdown...: said, not raised
            log.warning(
                "trailguard sink %s: could not record %s: %s", self.config.name, alert_type, exc
            )
