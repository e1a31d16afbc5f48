"""What forwarders hand to transports: batches of formatted messages, and the two ways a
delivery fails (the sink is unreachable and will be retried forever, or it refuses)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Protocol

from trailguard.siem.config import SinkConfig


@dataclass(frozen=True)
class Message:
    seq: int
    event_id: str
    event_type: str
    timestamp: str
    payload: bytes
    """The event in the sink's format (json: its canonical bytes; cef; ocsf)."""
    severity: int = 6
    """RFC 5424 severity (2 critical .. 6 informational), from the event's risk."""


@dataclass
class Batch:
    messages: list[Message]
    end: int
    """The cursor once this batch is acknowledged: one past the last ``seq`` it covers
    (events skipped by the sink's filters included)."""
    sent_at: float = 0.0
    ack_id: int | None = None
    """Splunk HEC's acknowledgement id, when the sink uses indexer acknowledgement."""
    size: int = field(default=0)

    @property
    def first_seq(self) -> int:
        return self.messages[0].seq

    @property
    def last_seq(self) -> int:
        return self.messages[-1].seq


class SinkError(Exception):
    """A delivery that did not happen; the message names the sink and never holds a secret."""


class SinkUnavailableError(SinkError):
    """The sink cannot be reached or is busy (connection refused or lost, 5xx, 429, timeout):
    retried with backoff for as long as it takes."""


class SinkRefusedError(SinkError):
    """The sink answered that it will not take this (4xx, a certificate that does not verify):
    retried a few times, then the sink is paused with an alert."""


class Transport(Protocol):
    window: int
    """How many batches may be in flight, unacknowledged, at once."""
    poll_interval: float
    """How long to wait between two checks for acknowledgements."""

    def send(self, batch: Batch) -> None:
        """Deliver ``batch`` (connecting first if needed). Raises SinkError."""
        ...

    def acknowledged(self, in_flight: list[Batch]) -> int:
        """How many of the oldest batches in flight the sink has acknowledged by now (never
        waits long). Raises SinkError when the connection was lost."""
        ...

    def close(self) -> None: ...


def tls_context(config: SinkConfig) -> ssl.SSLContext:
    """A client context that always verifies the server (against ``ca=`` if given, else the
    system's trust store), TLS 1.2 or later, with the client certificate if configured."""
    context = ssl.create_default_context(
        cafile=str(config.ca_file) if config.ca_file is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if config.cert_file is not None and config.key_file is not None:
        context.load_cert_chain(str(config.cert_file), str(config.key_file))
    return context


def scrub(text: str, config: SinkConfig) -> str:
    """``text`` (an error from a sink or a library) without the sink's secret, in case a
    receiver echoed it back, cut to a loggable length."""
    if config.secret is not None:
        secret = config.secret.reveal().decode(errors="replace")
        if secret:
            text = text.replace(secret, "[REDACTED:sink-secret]")
    return text if len(text) <= 500 else text[:500] + "..."
