"""Syslog transports: RFC 5424 messages over TLS with RFC 5425 octet-counting framing (also
over plain TCP, RFC 6587, and UDP, RFC 5426, for labs).

Syslog has no application-level acknowledgement. Over TCP and TLS a batch counts as delivered
once the receiver's TCP stack has acknowledged every byte written (the socket's send queue,
``SIOCOUTQ``, is empty): a receiver that dies with data in its own socket buffer can lose that
much, which only RELP would prevent. Over UDP nothing is known: a datagram sent is a datagram
delivered, and the configuration warns so.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import select
import socket
import ssl
import struct
import termios
from typing import Final

from trailguard.siem.config import SinkConfig
from trailguard.siem.delivery import (
    Batch,
    Message,
    SinkRefusedError,
    SinkUnavailableError,
    scrub,
    tls_context,
)

NILVALUE: Final = "-"
MAX_UDP_MESSAGE: Final = 65_000
"""Longest datagram sent; a longer message is cut (UDP is for labs)."""

# RFC 5424 §6.2.1 severities: 2 critical, 3 error, 4 warning, 5 notice, 6 informational.
_SEVERITY_BY_RISK: Final = {"critical": 2, "high": 3, "medium": 4, "low": 5}


def _printable_ascii(value: str, limit: int) -> str:
    """An RFC 5424 header field: PRINTUSASCII (33..126) only, at most ``limit`` characters."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or NILVALUE


def syslog_severity(risk: str | None, denied: bool) -> int:
    severity = _SEVERITY_BY_RISK.get(risk or "", 6)
    return min(severity, 4) if denied else severity


def rfc5424_message(
    message: Message,
    *,
    facility: int,
    severity: int,
    hostname: str,
    app_name: str,
    procid: int,
) -> bytes:
    """``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`` (RFC 5424 §6): the event's own
    time, the event type as MSGID, no structured data (the payload carries eventId and seq)."""
    pri = facility * 8 + severity
    header = _header(pri, message.timestamp, hostname, app_name, procid, message.event_type)
    return header + message.payload


@functools.lru_cache(maxsize=4096)
def _fields(hostname: str, app_name: str, procid: int, msgid: str) -> str:
    return (
        f"{_printable_ascii(hostname, 255)} {_printable_ascii(app_name, 48)} {procid} "
        f"{_printable_ascii(msgid, 32)} {NILVALUE} "
    )


def _header(
    pri: int, timestamp: str, hostname: str, app_name: str, procid: int, msgid: str
) -> bytes:
    return f"<{pri}>1 {timestamp} {_fields(hostname, app_name, procid, msgid)}".encode("ascii")


def octet_counted(frame: bytes) -> bytes:
    """RFC 5425 §4.3 (and RFC 6587 §3.4.1): ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d %b" % (len(frame), frame)


def _unacknowledged_bytes(sock: socket.socket) -> int:
    """Bytes written to ``sock`` that the peer has not acknowledged (Linux ``SIOCOUTQ``)."""
    buffer = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return int(struct.unpack("i", buffer)[0])


class SyslogTransport:
    """One connection to a syslog receiver; ``send`` writes a batch of framed messages."""

    poll_interval = 0.002

    def __init__(self, config: SinkConfig, *, hostname: str) -> None:
        self.config = config
        self.hostname = hostname
        self.window = 4 if config.transport != "udp" else 1
        self._procid = os.getpid()
        self._sock: socket.socket | None = None
        self._context = tls_context(config) if config.transport == "tls" else None
        self._can_count_unacknowledged = hasattr(termios, "TIOCOUTQ")

    def _connect(self) -> socket.socket:
        config = self.config
        if config.transport == "udp":
            try:
                infos = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_DGRAM)
                family, kind, proto, _, address = infos[0]
                sock = socket.socket(family, kind, proto)
                sock.connect(address)
            except OSError as exc:
                raise SinkUnavailableError(f"{config.destination}: {exc}") from None
            return sock
        try:
            raw = socket.create_connection((config.host, config.port), timeout=config.timeout)
        except OSError as exc:
            raise SinkUnavailableError(
                f"cannot connect to {config.destination}: {exc.strerror or exc}"
            ) from None
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._context is None:
            return raw
        try:
            return self._context.wrap_socket(raw, server_hostname=config.host)
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            raise SinkRefusedError(
                f"{config.destination}: the receiver's TLS certificate does not verify against "
                f"ca={config.ca_file}: {exc.verify_message or exc.reason}; nothing was sent "
                "(there is no plaintext fallback)"
            ) from None
        except ssl.SSLError as exc:
            raw.close()
            raise SinkRefusedError(
                f"{config.destination}: TLS handshake failed: {exc.reason or exc}; nothing was "
                "sent (there is no plaintext fallback)"
            ) from None
        except OSError as exc:
            raw.close()
            raise SinkUnavailableError(
                f"{config.destination}: connection lost during the TLS handshake: {exc}"
            ) from None

    def frame(self, message: Message, severity: int) -> bytes:
        frame = rfc5424_message(
            message,
            facility=self.config.facility,
            severity=severity,
            hostname=self.hostname,
            app_name=self.config.app_name,
            procid=self._procid,
        )
        if self.config.transport == "udp":
            return frame[:MAX_UDP_MESSAGE]
        return octet_counted(frame)

    def send(self, batch: Batch) -> None:
        if self._sock is None:
            self._sock = self._connect()
        sock = self._sock
        frames = [self.frame(m, m.severity) for m in batch.messages]
        try:
            if self.config.transport == "udp":
                for frame in frames:
                    sock.send(frame)
            else:
                sock.sendall(b"".join(frames))
        except (OSError, ssl.SSLError) as exc:
            self.close()
            error = scrub(str(exc), self.config)
            raise SinkUnavailableError(
                f"{self.config.destination}: connection lost while sending: {error}"
            ) from None

    def acknowledged(self, in_flight: list[Batch]) -> int:
        sock = self._sock
        if sock is None:
            raise SinkUnavailableError(f"{self.config.destination}: not connected")
        if self.config.transport == "udp" or not self._can_count_unacknowledged:
            return len(in_flight)
        self._check_open(sock)
        return len(in_flight) if _unacknowledged_bytes(sock) == 0 else 0

    def _check_open(self, sock: socket.socket) -> None:
        """A syslog receiver never sends data: a readable socket is a closing one (or, over
        TLS 1.3, a session ticket, which reads as no data)."""
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return
        timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            data = sock.recv(4096)
        except (ssl.SSLWantReadError, BlockingIOError):
            return
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise SinkUnavailableError(
                f"{self.config.destination}: connection lost: {exc}"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(timeout)
        if not data:
            self.close()
            raise SinkUnavailableError(
                f"{self.config.destination}: the receiver closed the connection"
            )

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
