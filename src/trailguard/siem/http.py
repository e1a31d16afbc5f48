"""HTTP transports: Splunk's HTTP Event Collector (with indexer acknowledgement) and signed
webhooks.

Splunk HEC: ``POST /services/collector/event`` with ``Authorization: Splunk <token>`` and the
batch as concatenated event objects (``time`` in epoch seconds, ``event`` the message,
``fields`` the indexed ``eventId`` / ``seq`` / ``eventType``). With ``ack=true`` every request
carries an ``X-Splunk-Request-Channel``, the answer's ``ackId`` is polled at
``/services/collector/ack``, and a batch counts as delivered only once Splunk says it was
indexed.

Webhooks: ``POST`` of a JSON array per batch, signed ``X-Trailguard-Signature: t=<unix
seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` (Stripe's scheme): a receiver recomputes
the HMAC over the exact body and refuses an old ``t``, so a captured request cannot be replayed
later. ``verify_signature`` is the receiver's side, for reference and tests.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import socket
import time
import uuid
from typing import Any, Final

import httpx
import orjson

from trailguard import __version__
from trailguard.siem.config import SinkConfig
from trailguard.siem.delivery import (
    Batch,
    SinkRefusedError,
    SinkUnavailableError,
    scrub,
    tls_context,
)

SIGNATURE_HEADER: Final = "X-Trailguard-Signature"
USER_AGENT: Final = f"trailguard/{__version__}"
_RETRYABLE_STATUS: Final = frozenset({408, 425, 429})


def _client(config: SinkConfig) -> httpx.Client:
    verify: Any = tls_context(config) if config.transport == "https" else False
    # Headers and body leave as separate writes: without TCP_NODELAY, Nagle's algorithm and
    # the receiver's delayed ACK hold the body back ~40 ms on every keep-alive request.
    transport = httpx.HTTPTransport(
        verify=verify, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(config.timeout),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,  # a redirect would carry the token to wherever it points
        trust_env=False,  # no proxy or netrc from the environment decides where secrets go
    )


def _base_url(config: SinkConfig) -> str:
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"{config.transport}://{host}:{config.port}"


def _post(client: httpx.Client, config: SinkConfig, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.post(url, **kwargs)
    except httpx.ConnectError as exc:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            raise SinkRefusedError(
                f"{config.destination}: the receiver's TLS certificate does not verify: "
                f"{scrub(text, config)}; nothing was sent"
            ) from None
        raise SinkUnavailableError(
            f"cannot connect to {config.destination}: {scrub(text, config)}"
        ) from None
    except httpx.HTTPError as exc:
        raise SinkUnavailableError(
            f"{config.destination}: {type(exc).__name__}: {scrub(str(exc), config)}"
        ) from None


def _check_status(response: httpx.Response, config: SinkConfig, what: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    body = scrub(response.text[:300], config)
    message = f"{config.destination}: {what} answered {status}: {body}"
    if status >= 500 or status in _RETRYABLE_STATUS:
        raise SinkUnavailableError(message)
    if status == 413:
        message += " (lower batch_size)"
    raise SinkRefusedError(message)


# -- Splunk HEC ---------------------------------------------------------------------------------


def hec_event(config: SinkConfig, hostname: str, seq: int, event_id: str, event_type: str,
              timestamp: str, payload: bytes) -> bytes:  # fmt: skip
    """One HEC event object; ``payload`` (a JSON object) is embedded as it is."""
    from trailguard.siem.risk import epoch_ms

    millis = epoch_ms(timestamp) or 0
    envelope: dict[str, Any] = {
        "host": hostname,
        "source": config.source,
        "sourcetype": config.sourcetype
        or ("trailguard:ocsf" if config.format == "ocsf" else "trailguard:event"),
        "fields": {"eventId": event_id, "seq": seq, "eventType": event_type},
    }
    if config.index:
        envelope["index"] = config.index
    # "time" is a number of epoch seconds with millisecond precision, written exactly.
    head = b'{"time":%d.%03d,' % (millis // 1000, millis % 1000) + orjson.dumps(envelope)[1:]
    return head[:-1] + b',"event":' + payload + b"}"


class HecTransport:
    def __init__(self, config: SinkConfig, *, hostname: str) -> None:
        assert config.secret is not None
        self.config = config
        self.hostname = hostname
        self.window = config.ack_window if config.ack else 1
        self.poll_interval = 0.25 if config.ack else 0.0
        self._client = _client(config)
        self._url = _base_url(config) + "/services/collector/event"
        self._ack_url = _base_url(config) + "/services/collector/ack"
        self._channel = str(uuid.uuid4())
        self._headers = {
            "Authorization": "Splunk " + config.secret.reveal().decode(),
            "Content-Type": "application/json",
        }
        if config.ack:
            self._headers["X-Splunk-Request-Channel"] = self._channel
        self._last_poll = -math.inf  # monotonic time may start at boot

    def send(self, batch: Batch) -> None:
        body = b"\n".join(
            hec_event(
                self.config, self.hostname, m.seq, m.event_id, m.event_type, m.timestamp, m.payload
            )
            for m in batch.messages
        )
        response = _post(self._client, self.config, self._url, content=body, headers=self._headers)
        _check_status(response, self.config, "the event endpoint")
        if not self.config.ack:
            return
        try:
            answer = response.json()
            batch.ack_id = int(answer["ackId"])
        except (ValueError, KeyError, TypeError):
            raise SinkRefusedError(
                f"{self.config.destination}: ack=true but the answer has no ackId "
                f"({scrub(response.text[:200], self.config)}): enable indexer acknowledgement "
                "on the HEC token, or set ack=false"
            ) from None

    def acknowledged(self, in_flight: list[Batch]) -> int:
        if not self.config.ack:
            return len(in_flight)
        now = time.monotonic()
        if now - self._last_poll < self.poll_interval:
            return 0
        self._last_poll = now
        ids = [batch.ack_id for batch in in_flight if batch.ack_id is not None]
        response = _post(
            self._client,
            self.config,
            self._ack_url,
            content=orjson.dumps({"acks": ids}),
            headers=self._headers,
        )
        _check_status(response, self.config, "the ack endpoint")
        try:
            status = response.json()["acks"]
        except (ValueError, KeyError, TypeError):
            answer = scrub(response.text[:200], self.config)
            raise SinkUnavailableError(
                f"{self.config.destination}: unreadable ack answer: {answer}"
            ) from None
        done = 0
        for batch in in_flight:
            if status.get(str(batch.ack_id)) is not True:
                break
            done += 1
        return done

    def close(self) -> None:
        self._client.close()
        self._client = _client(self.config)


# -- webhooks -------------------------------------------------------------------------------------


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Trailguard-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: bytes, header: str, body: bytes, *, tolerance: float = 300.0, now: float | None = None
) -> bool:
    """A receiver's check: the header's HMAC matches ``body`` and its time is within
    ``tolerance`` seconds of ``now`` (so a captured request cannot be replayed later)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


class WebhookTransport:
    window = 1
    poll_interval = 0.0

    def __init__(self, config: SinkConfig, *, hostname: str) -> None:
        assert config.secret is not None
        self.config = config
        self._client = _client(config)
        self._url = _base_url(config) + config.path
        self._secret = config.secret.reveal()

    def send(self, batch: Batch) -> None:
        body = b"[" + b",".join(m.payload for m in batch.messages) + b"]"
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
            "X-Trailguard-Seq": f"{batch.first_seq}-{batch.last_seq}",
        }
        response = _post(self._client, self.config, self._url, content=body, headers=headers)
        _check_status(response, self.config, "the webhook")

    def acknowledged(self, in_flight: list[Batch]) -> int:
        return len(in_flight)

    def close(self) -> None:
        self._client.close()
        self._client = _client(self.config)
