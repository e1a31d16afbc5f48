"""HTTP/1.1 over a plain socket: one POST, one answer, one deadline.

``http.client`` and ``urllib.request`` pull in the email parser and ssl, and the ``socket``
module itself imports ``enum`` and ``selectors``: together more than the rest of the client's
start-up. Plain ``http://`` goes through the built-in ``_socket``; ``https://`` loads ``socket``
and ``ssl`` when it is used.
"""

from __future__ import annotations

import _socket
import time

from trailguard import __version__
from trailguard.capture.hook_client.support import describe_exception

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from socket import socket as Socket

MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class GatewayUnavailableError(Exception):
    """No usable HTTP answer: refused, unresolvable, timed out, reset, TLS failure, garbled."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Reader:
    """Buffered reads from a socket under one deadline."""

    def __init__(self, sock: Socket | _socket.socket, deadline: float, timeout: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.total = 0

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            return
        self.total += len(data)
        if self.total > MAX_RESPONSE_BYTES:
            raise GatewayUnavailableError(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
        self.buf += data

    def readline(self) -> bytes:
        while True:
            index = self.buf.find(b"\n")
            if index >= 0:
                line = bytes(self.buf[: index + 1])
                del self.buf[: index + 1]
                return line
            if self.eof:
                raise GatewayUnavailableError("the connection closed in the middle of the answer")
            self._fill()

    def read_exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            if self.eof:
                raise GatewayUnavailableError("the connection closed in the middle of the answer")
            self._fill()
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def read_to_eof(self) -> bytes:
        while not self.eof:
            self._fill()
        data = bytes(self.buf)
        self.buf.clear()
        return data


def http_post(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> tuple[int, bytes]:
    """POST ``body`` to ``url``; return (status, body). The whole exchange (connect, send,
    answer) takes at most ``timeout`` seconds.

    Raises GatewayUnavailableError when no HTTP answer arrives, ValueError for a URL that is not
    http(s)."""
    scheme, host, port, host_header, target = split_url(url)
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {host_header}",
        f"User-Agent: trailguard-hook/{__version__}",
        "Content-Type: application/json",
        "Accept: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    deadline = time.monotonic() + timeout
    sock: Socket | _socket.socket | None = None
    try:
        if scheme == "https":
            import socket
            import ssl

            plain = socket.create_connection((host, port), timeout=timeout)
            sock = plain  # closed below even if the handshake fails
            sock = ssl.create_default_context().wrap_socket(plain, server_hostname=host)
        else:
            sock = _connect(host, port, timeout)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        sock.sendall(request)
        return _read_response(_Reader(sock, deadline, timeout))
    except GatewayUnavailableError:
        raise
    except TimeoutError:
        raise GatewayUnavailableError(f"no answer within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise GatewayUnavailableError("connection refused") from None
    except _socket.gaierror as exc:
        raise GatewayUnavailableError(f"cannot resolve {host!r}: {exc.strerror}") from None
    except OSError as exc:
        raise GatewayUnavailableError(describe_exception(exc)) from None
    finally:
        if sock is not None:
            sock.close()


def _connect(host: str, port: int, timeout: float) -> _socket.socket:
    """``socket.create_connection`` on the built-in ``_socket``: each address in turn."""
    error: OSError | None = None
    # A str host goes through the idna codec, which imports re and unicodedata; an ASCII name
    # needs no encoding.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    for family, kind, proto, _name, address in _socket.getaddrinfo(
        name, port, 0, _socket.SOCK_STREAM
    ):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error if error is not None else OSError("getaddrinfo returned no address")


def split_url(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, Host header, request target) of an http(s) URL; ValueError if it is
    not one. (urllib.parse would do, but costs a few ms of start-up on every tool call.)"""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, target = rest[:end], rest[end:].partition("#")[0]
    if not target.startswith("/"):
        target = "/" + target
    host_header = netloc.rpartition("@")[2]
    if host_header.startswith("["):
        host, bracket, port_text = host_header[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise ValueError(f"{url!r} has a malformed IPv6 host")
        port_text = port_text[1:]
    else:
        host, _, port_text = host_header.partition(":")
    if not host:
        raise ValueError(f"{url!r} has no host")
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{url!r} has a bad port {port_text!r}")
        port = int(port_text)
    else:
        port = 443 if scheme == "https" else 80
    return scheme, host, port, host_header, target


def _read_response(reader: _Reader) -> tuple[int, bytes]:
    while True:
        status_line = reader.readline().decode("latin-1")
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
            raise GatewayUnavailableError(f"not an HTTP answer: {status_line[:80]!r}")
        status = int(fields[1])
        headers: dict[str, str] = {}
        while True:
            line = reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if not 100 <= status < 200:  # skip interim answers (100 Continue, 103 Early Hints)
            break
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size_text = reader.readline().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise GatewayUnavailableError("garbled chunked answer") from None
            if size == 0:
                try:  # trailers, up to the blank line; the body is complete already
                    while reader.readline() not in (b"\r\n", b"\n"):
                        pass
                except GatewayUnavailableError:
                    pass
                break
            chunks.append(reader.read_exact(size))
            reader.read_exact(2)
        return status, b"".join(chunks)
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise GatewayUnavailableError("garbled Content-Length") from None
        return status, reader.read_exact(length)
    if status in (204, 304):
        return status, b""
    return status, reader.read_to_eof()
