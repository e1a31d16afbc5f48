"""``trailguard hook``: the command hook client Claude Code runs once per hook event.

It reads the hook payload on stdin, posts it to the gateway (``POST <url>/hooks/claude-code``,
docs/hook-protocol.md) and prints the gateway's JSON answer on stdout. It runs once per tool
call, so it imports only the standard library (plus the stdlib-only ``trailguard.ids`` and
``trailguard.hook_protocol``, whose answers the gateway gives too) and
speaks HTTP/1.1 over a plain socket: ``http.client`` and ``urllib.request`` pull in the email
parser and ssl, which would cost more than the rest of the start-up.

Failure handling, which is the point of this module:

- PreToolUse and PermissionRequest fail closed: whatever goes wrong (gateway unreachable,
  timeout, 5xx, 401/403, an answer that is not a JSON object, a bug here), the client prints a
  deny whose reason says what happened, and exits 0. Exit codes other than 0 and 2, crashes and
  hook timeouts let Claude Code run the tool, so the client never relies on them.
- Every other event prints ``{}`` when the gateway cannot take it.
- An event the gateway did not take is written to the spool (``<spool>/<eventId>.json``, temp
  file + fsync + rename + directory fsync, mode 0600 in a 0700 directory) before anything is
  printed, and replayed, oldest first, the next time the gateway answers.
- The model usage Claude Code appends to the session transcript is read incrementally and sent
  with the event (``trailguard.usage``); the read position moves only once the event is with
  the gateway or in the spool. A transcript problem never stops the event.
- stdin that is not a JSON object with a ``hook_event_name`` cannot be attributed to an event:
  the client exits 2 with the reason on stderr, which Claude Code treats as a block for
  PreToolUse (and shows to the user for the other events). Nothing is spooled: the gateway
  could not record it either.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
from collections.abc import Mapping, Sequence

from trailguard import __version__
from trailguard.hook_protocol import GATING_EVENTS, failure_answer
from trailguard.ids import new_event_id

TYPE_CHECKING = False
if TYPE_CHECKING:  # the typing module costs start-up time; annotations are strings anyway
    from typing import Any, BinaryIO, TextIO

    Json = dict[str, Any]

DEFAULT_URL = "http://127.0.0.1:8787"
ENDPOINT = "/hooks/claude-code"
DEFAULT_TIMEOUT = 10.0
EVENT_ID_HEADER = "X-Trailguard-Event-Id"

FAIL_CLOSED_EVENTS = GATING_EVENTS
"""Events whose answer gates a tool call: any failure answers deny."""

MAX_REPLAY_FILES = 200
"""At most this many spooled events are replayed per invocation; the rest go next time."""
REPLAY_BUDGET_SECONDS = 5.0
"""No new replay request is started after this long, so one tool call is not held for minutes."""
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
GIT_TIMEOUT_SECONDS = 2.0

EXIT_BAD_INPUT = 2
"""Claude Code treats exit 2 as a block (PreToolUse) with stderr as the reason."""

_RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""4xx answers that say "later", not "never": handled like 5xx."""


# --------------------------------------------------------------------------------------------
# Configuration


class HookConfig:
    """Where to send events and where to keep them when that fails."""

    __slots__ = ("auth_origin", "config_path", "spool_dir", "timeout", "token", "url", "warnings")

    def __init__(
        self,
        *,
        url: str,
        token: str | None,
        auth_origin: str,
        timeout: float,
        spool_dir: str,
        config_path: str,
        warnings: list[str],
    ) -> None:
        self.url = url
        self.token = token
        self.auth_origin = auth_origin
        """Where the token came from, or why there is none (for 401 messages)."""
        self.timeout = timeout
        self.spool_dir = spool_dir
        self.config_path = config_path
        self.warnings = warnings


def _env(environ: Mapping[str, str], name: str) -> str | None:
    """An environment variable; empty counts as unset."""
    value = environ.get(name)
    return value if value else None


def _home(environ: Mapping[str, str]) -> str:
    return _env(environ, "HOME") or os.path.expanduser("~")


def _expand_user(path: str, environ: Mapping[str, str]) -> str:
    if path == "~" or path.startswith("~/"):
        return _home(environ) + path[1:]
    return path


def load_config(environ: Mapping[str, str], gateway: str | None = None) -> HookConfig:
    """Settings from the command line (``gateway``: ``--gateway URL``, which ``install`` writes
    into every command hook), then the environment, then ``~/.config/trailguard/hook.json``,
    then defaults.

    Never raises: a broken config file or value is reported in ``warnings`` and ignored.
    """
    warnings: list[str] = []
    home = _home(environ)
    config_path = _expand_user(
        _env(environ, "TRAILGUARD_HOOK_CONFIG")
        or os.path.join(home, ".config", "trailguard", "hook.json"),
        environ,
    )
    file_config: Json = {}
    try:
        with open(config_path, "rb") as handle:
            loaded = json.loads(handle.read())
        if isinstance(loaded, dict):
            file_config = loaded
        else:
            warnings.append(f"{config_path} is not a JSON object; ignored")
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        warnings.append(f"cannot read {config_path} ({_describe_exception(exc)}); ignored")

    url = gateway or _env(environ, "TRAILGUARD_URL")
    if url is None:
        configured = file_config.get("url")
        if isinstance(configured, str) and configured:
            url = configured
        elif configured is not None:
            warnings.append(f"'url' in {config_path} is not a non-empty string; ignored")
    url = (url or DEFAULT_URL).rstrip("/")

    token = _env(environ, "TRAILGUARD_TOKEN")
    auth_origin = "TRAILGUARD_TOKEN"
    if token is None:
        token_file = file_config.get("token_file")
        if isinstance(token_file, str) and token_file:
            token_path = _expand_user(token_file, environ)
            if not os.path.isabs(token_path):
                token_path = os.path.join(os.path.dirname(os.path.abspath(config_path)), token_path)
            try:
                with open(token_path, encoding="utf-8") as handle:
                    token = handle.read().strip() or None
                auth_origin = f"the token file {token_path}" + ("" if token else ", which is empty")
            except (OSError, ValueError) as exc:
                auth_origin = (
                    f"the token file {token_path}, which cannot be read "
                    f"({_describe_exception(exc)})"
                )
        else:
            auth_origin = f"none: TRAILGUARD_TOKEN is not set and {config_path} names no token_file"
    if token is not None and not _is_header_safe(token):
        auth_origin += " (it contains spaces or control characters, so it was not sent)"
        token = None

    timeout = DEFAULT_TIMEOUT
    raw_timeout = _env(environ, "TRAILGUARD_TIMEOUT")
    if raw_timeout is not None:
        try:
            parsed = float(raw_timeout)
        except ValueError:
            parsed = -1.0
        if 0 < parsed < float("inf"):
            timeout = parsed
        else:
            warnings.append(
                f"TRAILGUARD_TIMEOUT={raw_timeout!r} is not a positive number of seconds; "
                f"using {DEFAULT_TIMEOUT:g}"
            )

    spool_dir = _expand_user(
        _env(environ, "TRAILGUARD_SPOOL_DIR")
        or os.path.join(home, ".local", "state", "trailguard", "spool"),
        environ,
    )
    return HookConfig(
        url=url,
        token=token,
        auth_origin=auth_origin,
        timeout=timeout,
        spool_dir=spool_dir,
        config_path=config_path,
        warnings=warnings,
    )


def _is_header_safe(value: str) -> bool:
    return bool(value) and all(0x21 <= ord(ch) <= 0x7E for ch in value)


# --------------------------------------------------------------------------------------------
# HTTP over a socket


class GatewayUnavailableError(Exception):
    """No usable HTTP answer: refused, unresolvable, timed out, reset, TLS failure, garbled."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Reader:
    """Buffered reads from a socket under one deadline."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float) -> None:
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
    sock: socket.socket | None = None
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        if scheme == "https":
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
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
    except socket.gaierror as exc:
        raise GatewayUnavailableError(f"cannot resolve {host!r}: {exc.strerror}") from None
    except OSError as exc:
        raise GatewayUnavailableError(_describe_exception(exc)) from None
    finally:
        if sock is not None:
            sock.close()


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


# --------------------------------------------------------------------------------------------
# The spool


def _fsync_dir(path: str) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # platforms that cannot open directories (Windows) cannot fsync them either
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _ensure_private_dir(path: str) -> None:
    """Create ``path`` and any missing parent as 0700, making each new entry durable. An
    existing directory keeps its mode: pointing TRAILGUARD_SPOOL_DIR at a shared directory
    never chmods it."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        _ensure_private_dir(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return
    _fsync_dir(parent)


def write_private_file(final: str, data: bytes) -> str:
    """Write ``data`` durably to ``final`` (mode 0600, its directory created 0700); return it.

    Temp file, fsync, atomic rename, fsync of the directory: after a crash the file is either
    complete or absent."""
    directory = os.path.dirname(final)
    _ensure_private_dir(directory)
    temp = os.path.join(directory, f".{os.path.basename(final)}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
    except BaseException:
        _remove(temp)
        raise
    _fsync_dir(directory)
    return final


def write_spool_file(directory: str, event_id: str, record: Json) -> str:
    """Write ``record`` durably as ``<directory>/<event_id>.json``; return the path."""
    data = json.dumps(record, separators=(",", ":")).encode("utf-8")
    return write_private_file(os.path.join(directory, f"{event_id}.json"), data)


def spool_event(config: HookConfig, event_id: str, payload: Json, reason: str) -> str:
    """Keep an event the gateway did not take; it is replayed on the next successful contact."""
    record = {
        "eventId": event_id,
        "spooledAt": _now_rfc3339(),
        "reason": reason,
        "payload": payload,
    }
    return write_spool_file(config.spool_dir, event_id, record)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return


def _move_aside(path: str, spool_dir: str, kind: str, note: str | None = None) -> None:
    """Move a spool file into ``<spool>/<kind>/`` (corrupt or rejected), never raising."""
    target_dir = os.path.join(spool_dir, kind)
    try:
        _ensure_private_dir(target_dir)
        target = os.path.join(target_dir, os.path.basename(path))
        os.replace(path, target)
        if note is not None:
            with open(target + ".reason.txt", "w", encoding="utf-8") as handle:
                handle.write(note + "\n")
        _fsync_dir(target_dir)
        _fsync_dir(spool_dir)
    except OSError:
        pass


def _spooled_names(spool_dir: str, limit: int) -> list[str]:
    import heapq

    try:
        with os.scandir(spool_dir) as entries:
            names = (
                entry.name
                for entry in entries
                if entry.name.endswith(".json")
                and not entry.name.startswith(".")
                and entry.is_file(follow_symlinks=False)
            )
            return heapq.nsmallest(limit, names)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _load_spool_record(path: str) -> tuple[str, Json] | None:
    """(eventId, payload) of a spool file, or None when it is not one."""
    try:
        with open(path, "rb") as handle:
            record = json.loads(handle.read())
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    event_id = record.get("eventId")
    payload = record.get("payload")
    if not isinstance(event_id, str) or not _is_header_safe(event_id):
        return None
    if not isinstance(payload, dict):
        return None
    return event_id, payload


class ReplayReport:
    __slots__ = ("corrupt", "delivered", "down", "failed", "rejected", "stopped")

    def __init__(self) -> None:
        self.failed: list[tuple[str, str]] = []
        """``(path, error)`` of files the gateway answered with a failure (5xx, 408, 429):
        they stay; :func:`count_failed_tries` counts them as tries once the gateway is seen
        to work (it took the current event), so an outage is never blamed on a file."""
        self.delivered = 0
        """Files the gateway took (2xx) or already had (409): deleted."""
        self.rejected = 0
        """Files the gateway refused for good (4xx): moved to ``<spool>/rejected/``."""
        self.corrupt = 0
        """Unreadable files: moved to ``<spool>/corrupt/``."""
        self.stopped: str | None = None
        """Why replay stopped early (gateway failure, 401/403, budget), if it did."""
        self.down = False
        """The gateway could not be reached at all: do not try the current event."""


def replay_spool(
    config: HookConfig,
    *,
    max_files: int | None = None,
    budget_seconds: float | None = None,
) -> ReplayReport:
    """Send spooled events, oldest first, each with its own eventId and ``"spooled": true``.

    2xx or 409 deletes the file. A connection failure or timeout stops the replay and marks the
    gateway down; a 5xx, 401/403, 408 or 429 stops it too (the files stay for next time); any
    other 4xx moves the file to ``rejected/`` so one bad event cannot block the queue. Work is
    bounded by ``max_files`` and ``budget_seconds``. One process replays at a time: when another
    holds the lock this one skips the replay."""
    report = ReplayReport()
    limit = MAX_REPLAY_FILES if max_files is None else max_files
    budget = REPLAY_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    names = _spooled_names(config.spool_dir, limit)
    if not names:
        return report
    lock = _try_lock(os.path.join(config.spool_dir, ".replay.lock"))
    if lock is False:
        report.stopped = "another trailguard hook is replaying the spool"
        return report
    try:
        started = time.monotonic()
        failed_in_a_row = False
        for name in names:
            if time.monotonic() - started > budget:
                report.stopped = f"replay budget of {budget:g} s used up"
                break
            path = os.path.join(config.spool_dir, name)
            try:
                loaded = _load_spool_record(path)
            except FileNotFoundError:
                continue  # another process delivered it
            except OSError:
                continue  # unreadable now (permissions?): leave it, never block on it
            if loaded is None:
                _move_aside(path, config.spool_dir, "corrupt")
                report.corrupt += 1
                continue
            event_id, payload = loaded
            marker = payload.get("trailguard")
            if not isinstance(marker, dict):
                marker = {}
                payload["trailguard"] = marker
            marker["spooled"] = True
            try:
                status, body = _post_event(config, payload, event_id)
            except GatewayUnavailableError as exc:
                report.stopped = exc.detail
                report.down = True
                break
            failed_in_a_row = False
            if 200 <= status < 300 or status == 409:
                _remove(path)  # gone already: another process delivered it too
                _remove(path + TRIES_SUFFIX)
                report.delivered += 1
            elif status in (401, 403):
                report.stopped = f"HTTP {status}{_detail_suffix(body)}"
                break
            elif status >= 500 or status in _RETRYABLE_STATUSES:
                # Go on with the next file: one event the gateway cannot take must not hold
                # the others. Two failures in a row look like the gateway's fault: stop.
                report.failed.append((path, f"HTTP {status}{_detail_suffix(body)}"))
                if len(report.failed) >= 2 and failed_in_a_row:
                    report.stopped = f"HTTP {status}{_detail_suffix(body)}"
                    break
                failed_in_a_row = True
                continue
            else:
                _move_aside(
                    path,
                    config.spool_dir,
                    "rejected",
                    f"HTTP {status}{_detail_suffix(body)}",
                )
                report.rejected += 1
    finally:
        if lock is not None and lock is not False:
            os.close(lock)
    return report


POISON_TRIES = 3
"""A spooled event the gateway failed on this many times, while taking other events, is moved
to ``<spool>/poisoned/`` and reported to the gateway (``trailguard.spoolProblems``)."""
TRIES_SUFFIX = ".tries"
PROBLEM_SUFFIX = ".problem.json"
REPORTED_SUFFIX = ".reported"
MAX_REPORTED_PROBLEMS = 50


def count_failed_tries(config: HookConfig, failed: list[tuple[str, str]]) -> int:
    """Count one try for each file the gateway failed on during a replay whose current event
    it then took; move a file aside once it reaches :data:`POISON_TRIES`. Returns how many
    were moved. Never raises."""
    moved = 0
    for path, error in failed:
        try:
            tries = _read_tries(path) + 1
            if tries < POISON_TRIES:
                write_private_file(path + TRIES_SUFFIX, str(tries).encode())
                continue
            _quarantine_poisoned(config, path, tries, error)
            moved += 1
        except OSError:
            continue
    return moved


def _read_tries(path: str) -> int:
    try:
        with open(path + TRIES_SUFFIX, "rb") as handle:
            return max(int(handle.read().strip() or b"0"), 0)
    except (OSError, ValueError):
        return 0


def _quarantine_poisoned(config: HookConfig, path: str, tries: int, error: str) -> None:
    with open(path, "rb") as handle:
        content = handle.read()
    loaded = _load_spool_record(path)
    event_id, payload = loaded if loaded is not None else (None, {})
    problem = {
        "eventId": event_id,
        "hookEventName": payload.get("hook_event_name"),
        "sessionId": payload.get("session_id"),
        "tries": tries,
        "lastError": error[:500],
        "movedAt": _now_rfc3339(),
        "sha256": _sha256_hex(content),
    }
    target_dir = os.path.join(config.spool_dir, "poisoned")
    _ensure_private_dir(target_dir)
    name = os.path.basename(path)
    write_private_file(
        os.path.join(target_dir, name + PROBLEM_SUFFIX), json.dumps(problem).encode()
    )
    _move_aside(path, config.spool_dir, "poisoned", f"{tries} tries, last: {error}")
    _remove(path + TRIES_SUFFIX)


def unreported_spool_problems(config: HookConfig) -> list[tuple[str, Json]]:
    """``(problem file, problem)`` for poisoned events the gateway has not been told about."""
    target_dir = os.path.join(config.spool_dir, "poisoned")
    found: list[tuple[str, Json]] = []
    try:
        names = sorted(os.listdir(target_dir))
    except OSError:
        return found
    for name in names:
        if not name.endswith(PROBLEM_SUFFIX) or len(found) >= MAX_REPORTED_PROBLEMS:
            continue
        path = os.path.join(target_dir, name)
        try:
            with open(path, "rb") as handle:
                problem = json.loads(handle.read())
        except (OSError, ValueError):
            continue
        if isinstance(problem, dict):
            found.append((path, problem))
    return found


def mark_spool_problems_reported(problems: list[tuple[str, Json]]) -> None:
    for path, _problem in problems:
        try:
            os.replace(path, path + REPORTED_SUFFIX)
        except OSError:
            continue


def _try_lock(lock_path: str) -> int | bool | None:
    """An fd holding an exclusive lock on ``lock_path``; False if another process holds it;
    None if locking is not possible here (then the caller goes ahead: the gateway drops
    duplicates)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except OSError:
        os.close(fd)
        return None
    return fd


# --------------------------------------------------------------------------------------------
# Model usage from the transcript


TRANSCRIPT_MAX_READ = 4 * 1024 * 1024
"""Bytes of transcript read per invocation at most; the rest is read by the next ones."""
USAGE_MAX_ENTRIES = 200
"""Assistant messages reported per event at most; the rest go with the next events."""
USAGE_SENT_MEMORY = 500
"""Message ids remembered as sent, so lines read again are not reported twice."""
_TRANSCRIPT_HEAD = 1024
"""Bytes at the start of a transcript whose hash tells a replaced file from a grown one."""
_TURN_END_EVENTS = frozenset({"Stop", "SubagentStop", "StopFailure", "SessionEnd", "PreCompact"})
"""Events after which the last assistant message is complete even if nothing follows it."""


class TranscriptUsage:
    """What one incremental read of a transcript found: the usage entries to send and the
    state to save once the event carrying them is delivered or spooled."""

    __slots__ = ("entries", "lock", "state", "state_path")

    def __init__(
        self, entries: list[Json], state: Json | None, state_path: str, lock: int | None
    ) -> None:
        self.entries = entries
        """``{"messageId", "model", "usage", "toolUseIds"[, "requestId"]}`` per message."""
        self.state = state
        """``{"offset", "head", "sent"}`` to save, or None when nothing changed."""
        self.state_path = state_path
        self.lock = lock
        """The fd holding ``<state>.lock`` until the state is saved (None: not locked)."""

    def commit(self) -> None:
        """Save the state (the usage is now with the gateway or in the spool). Once only."""
        state, self.state = self.state, None
        try:
            if state is not None:
                _write_state(self.state_path, state)
        finally:
            self.release()

    def release(self) -> None:
        """Let the next hook read this transcript (closing is what releases the lock)."""
        lock, self.lock = self.lock, None
        if lock is None:
            return
        try:
            os.close(lock)
        except OSError:
            return


def _sha256_hex(data: bytes) -> str:
    # The built-in module, not hashlib: hashlib loads OpenSSL, a few ms on every tool call.
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # Python 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # Python 3.12+
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())


def _head_hash(head_bytes: bytes, offset: int) -> str | None:
    """Hash of the part of the file's head below ``offset`` (None at 0: nothing read yet)."""
    return _sha256_hex(head_bytes[: min(offset, _TRANSCRIPT_HEAD)]) if offset > 0 else None


def _load_state(path: str) -> tuple[int, str | None, list[str]]:
    """(offset, head hash, sent ids) of a state file; a missing or broken one starts at 0."""
    try:
        with open(path, "rb") as handle:
            state = json.loads(handle.read())
    except (OSError, ValueError):
        return 0, None, []
    if not isinstance(state, dict):
        return 0, None, []
    offset, head, sent = state.get("offset"), state.get("head"), state.get("sent")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return 0, None, []
    sent = [s for s in sent if isinstance(s, str)] if isinstance(sent, list) else []
    return offset, head if isinstance(head, str) else None, sent


def _write_state(path: str, state: Json) -> None:
    """Replace the state file atomically. No fsync: a state lost in a crash only makes the next
    read send usage again, which the gateway recognises by message id."""
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(json.dumps(state, separators=(",", ":")).encode("utf-8"))
        os.replace(temp, path)
    except BaseException:
        _remove(temp)
        raise


def _read_at(fd: int, offset: int, size: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.read(fd, min(size, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _assistant_line(line: bytes) -> tuple[str, str | None, Json, list[str], str | None] | None:
    """(message id, model, usage, tool_use ids, request id) of an assistant transcript line."""
    if b'"assistant"' not in line:  # cheap test first: most lines are not, some are large
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("type") != "assistant":
        return None
    message = record.get("message")
    if not isinstance(message, dict):
        return None
    message_id, usage = message.get("id"), message.get("usage")
    if not isinstance(message_id, str) or not message_id or not isinstance(usage, dict):
        return None
    model = message.get("model")
    content = message.get("content")
    tool_ids = [
        block["id"]
        for block in (content if isinstance(content, list) else ())
        if isinstance(block, dict)
        and block.get("type") == "tool_use"
        and isinstance(block.get("id"), str)
    ]
    request_id = record.get("requestId")
    return (
        message_id,
        model if isinstance(model, str) else None,
        usage,
        tool_ids,
        request_id if isinstance(request_id, str) else None,
    )


def _output_tokens(usage: Json) -> int:
    value = usage.get("output_tokens")
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def read_transcript_usage(
    spool_dir: str, transcript_path: str, *, turn_ended: bool
) -> TranscriptUsage | None:
    """Usage of the assistant messages appended to ``transcript_path`` since the last read.

    State lives in ``<spool>/transcripts/<sha256 of the path>.json``: the offset read up to, a
    hash of the file's first bytes, and the last message ids sent. A file shorter than the
    offset or with another head was replaced: it is read again from 0 (ids already sent are
    still skipped). Only complete lines are read, at most TRANSCRIPT_MAX_READ bytes. Lines of
    one message id are merged (tool_use ids united, the usage of the line with the most output
    tokens). The last message stays for the next read while its line is the last one in the
    file, since more of its lines may be on the way, unless ``turn_ended``.

    Returns None when there is nothing to do (no regular file, another hook holds this
    transcript). Raises OSError when the transcript or the state cannot be used."""
    state_dir = os.path.join(spool_dir, "transcripts")
    state_path = os.path.join(state_dir, _sha256_hex(os.fsencode(transcript_path)) + ".json")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(transcript_path, flags)  # O_NONBLOCK: a FIFO must not hang the hook
    lock: int | None = None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        _ensure_private_dir(state_dir)
        locked = _try_lock(state_path + ".lock")
        if locked is False:
            return None  # a concurrent hook is reading this transcript: the next one catches up
        lock = locked if isinstance(locked, int) and not isinstance(locked, bool) else None
        saved_offset, saved_head, sent = _load_state(state_path)
        head_bytes = _read_at(fd, 0, _TRANSCRIPT_HEAD)
        start = saved_offset
        if start > info.st_size or saved_head != _head_hash(head_bytes, start):
            start = 0  # shrunk or replaced
        available = info.st_size - start
        capped = available > TRANSCRIPT_MAX_READ
        data = _read_at(fd, start, min(available, TRANSCRIPT_MAX_READ))
        complete = data.rfind(b"\n") + 1
        lines = data[:complete].split(b"\n")
        if complete == 0 and capped:
            complete, lines = len(data), []  # a line longer than the cap: skipped, not parsed

        entries: dict[str, Json] = {}
        first_line_at: dict[str, int] = {}
        most_output: dict[str, int] = {}
        last_line_of: str | None = None
        position = 0
        for line in lines:
            line_at = start + position
            position += len(line) + 1
            if not line.strip():
                continue
            parsed = _assistant_line(line)
            if parsed is None:
                last_line_of = None
                continue
            message_id, model, usage, tool_ids, request_id = parsed
            last_line_of = message_id
            entry = entries.get(message_id)
            if entry is None:
                entry = {"messageId": message_id, "model": model, "usage": usage}
                entry["toolUseIds"] = []
                entries[message_id] = entry
                first_line_at[message_id] = line_at
                most_output[message_id] = _output_tokens(usage)
            elif _output_tokens(usage) > most_output[message_id]:
                entry["usage"] = usage
                most_output[message_id] = _output_tokens(usage)
                if model is not None:
                    entry["model"] = model
            if entry["model"] is None:
                entry["model"] = model
            known = entry["toolUseIds"]
            for tool_id in tool_ids:
                if tool_id not in known:
                    known.append(tool_id)
            if request_id is not None and "requestId" not in entry:
                entry["requestId"] = request_id

        already = set(sent)
        held = last_line_of
        if (
            held is None
            or turn_ended
            or held in already
            or (capped and first_line_at[held] == start)  # it alone fills the window
        ):
            held = None
        chosen: list[Json] = []
        resume_at = start + complete
        for message_id, entry in entries.items():
            if message_id in already:
                continue
            if message_id == held or len(chosen) >= USAGE_MAX_ENTRIES:
                resume_at = min(resume_at, first_line_at[message_id])
                continue
            chosen.append(entry)

        state: Json | None = None
        new_head = _head_hash(head_bytes, resume_at)
        if chosen or resume_at != saved_offset or new_head != saved_head:
            new_sent = (sent + [entry["messageId"] for entry in chosen])[-USAGE_SENT_MEMORY:]
            state = {"offset": resume_at, "head": new_head, "sent": new_sent}
        result = TranscriptUsage(chosen, state, state_path, lock)
        lock = None  # the result holds it until commit or release
        return result
    finally:
        os.close(fd)
        if lock is not None:
            os.close(lock)


# --------------------------------------------------------------------------------------------
# Talking to the gateway


def _post_event(config: HookConfig, payload: Json, event_id: str) -> tuple[int, bytes]:
    headers = {EVENT_ID_HEADER: event_id}
    if config.token is not None:
        headers["Authorization"] = f"Bearer {config.token}"
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return http_post(config.url + ENDPOINT, body, headers, config.timeout)


def _detail(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:300] or None
    if isinstance(parsed, dict) and "detail" in parsed:
        detail = parsed["detail"]
        text = detail if isinstance(detail, str) else json.dumps(detail)
        return text[:300]
    return None


def _detail_suffix(body: bytes) -> str:
    detail = _detail(body)
    return f": {detail}" if detail else ""


# --------------------------------------------------------------------------------------------
# SessionStart context


def strip_credentials(url: str) -> str:
    """A git remote URL without credentials: ``https://user:pw@host/x`` → ``https://host/x``.

    For URLs with a scheme the whole userinfo goes (a token is often the user name alone), and
    so do the query and fragment. scp-like ``git@host:path`` keeps a plain user name (it is not a
    secret) but loses a ``user:password@`` part."""
    if "://" in url:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    user, at, rest = url.partition("@")
    if at and ":" in user and "/" not in user:
        return rest
    return url


def _run_git_commands(cwd: str, environ: Mapping[str, str]) -> dict[str, str | None]:
    """git's email, origin URL and branch in ``cwd``, run in parallel under one 2 s deadline.
    A missing git, a non-repository, a hung command: None for that value, never an exception."""
    import subprocess

    commands = {
        "gitEmail": ["git", "config", "user.email"],
        "gitRemote": ["git", "config", "--get", "remote.origin.url"],
        "gitBranch": ["git", "rev-parse", "--abbrev-ref", "HEAD"],
    }
    env = dict(environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_OPTIONAL_LOCKS"] = "0"
    results: dict[str, str | None] = dict.fromkeys(commands)
    running: dict[str, subprocess.Popen[bytes]] = {}
    for key, argv in commands.items():
        try:
            running[key] = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except (OSError, ValueError):
            continue
    deadline = time.monotonic() + GIT_TIMEOUT_SECONDS
    for key, process in running.items():
        try:
            out, _ = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            continue
        except OSError:
            continue
        if process.returncode == 0:
            value = out.decode("utf-8", "replace").strip()
            results[key] = value or None
    return results


def _settings_paths(cwd: str | None, environ: Mapping[str, str]) -> list[str]:
    config_dir = _env(environ, "CLAUDE_CONFIG_DIR") or os.path.join(_home(environ), ".claude")
    paths = [os.path.join(config_dir, "settings.json")]
    if cwd:
        paths += [
            os.path.join(cwd, ".claude", "settings.json"),
            os.path.join(cwd, ".claude", "settings.local.json"),
        ]
    paths.append("/etc/claude-code/managed-settings.json")
    return paths


def read_permissions(cwd: str | None, environ: Mapping[str, str]) -> tuple[Json, str | None]:
    """Merged ``permissions`` allow/deny/ask rules of the settings files that exist (user,
    project, local project, managed), each rule once, in file order; plus ``sources`` (the files
    read) and, if a file is unparseable, ``unreadable``. Returns (permissions, model) where
    model is the ``model`` setting of the highest-precedence file that sets one."""
    merged: dict[str, list[str]] = {"allow": [], "deny": [], "ask": []}
    sources: list[str] = []
    unreadable: list[str] = []
    model: str | None = None
    for path in _settings_paths(cwd, environ):
        try:
            with open(path, "rb") as handle:
                settings = json.loads(handle.read())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            unreadable.append(f"{path}: {_describe_exception(exc)}")
            continue
        sources.append(path)
        if not isinstance(settings, dict):
            continue
        if isinstance(settings.get("model"), str):
            model = settings["model"]  # later files take precedence (managed last)
        permissions = settings.get("permissions")
        if not isinstance(permissions, dict):
            continue
        for kind, rules in merged.items():
            found = permissions.get(kind)
            if isinstance(found, list):
                rules.extend(r for r in found if isinstance(r, str) and r not in rules)
    result: Json = {**merged, "sources": sources}
    if unreadable:
        result["unreadable"] = unreadable
    return result, model


_HOOK_PATH = "/hooks/claude-code"


def _is_trailguard_hook(hook: object) -> bool:
    """The install module's rule (an http hook to the gateway endpoint, or a command running
    ``trailguard hook``), without importing it: this runs on every SessionStart."""
    if not isinstance(hook, dict):
        return False
    if hook.get("type") == "http":
        url = hook.get("url")
        return isinstance(url, str) and url.rstrip("/").endswith(_HOOK_PATH)
    command = hook.get("command")
    if hook.get("type") != "command" or not isinstance(command, str):
        return False
    words = command.split()
    for index, word in enumerate(words[:-1]):
        name = word.replace("\\", "/").rsplit("/", 1)[-1]
        if name == "trailguard" and words[index + 1] == "hook":
            return True
        if word == "-m" and words[index + 1 : index + 3] == ["trailguard", "hook"]:
            return True
    return False


def read_hook_config(cwd: str | None, environ: Mapping[str, str]) -> Json:
    """What the settings files say about trailguard's hooks: per file, the events with a
    trailguard hook, those that block when the gateway cannot be reached (``onFailure: block``
    or a command hook, which denies by itself), ``disableAllHooks`` and
    ``allowManagedHooksOnly``; the union over files; and a SHA-256 of exactly this summary, so
    a later session (or a ConfigChange) with different hooks is visible. A claim of the
    developer's machine, like the rest of the context."""
    files: list[Json] = []
    events: set[str] = set()
    fail_closed: set[str] = set()
    disabled: list[str] = []
    managed_only = False
    for path in _settings_paths(cwd, environ):
        entry: Json = {"path": path}
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            entry["unreadable"] = _describe_exception(exc)
            files.append(entry)
            continue
        entry["fileSha256"] = _sha256_hex(raw)
        try:
            settings = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            entry["unreadable"] = f"not JSON: {_describe_exception(exc)}"
            files.append(entry)
            continue
        if not isinstance(settings, dict):
            settings = {}
        mine: set[str] = set()
        blocking: set[str] = set()
        hooks = settings.get("hooks")
        for event, groups in hooks.items() if isinstance(hooks, dict) else ():
            for group in groups if isinstance(groups, list) else ():
                entries = group.get("hooks") if isinstance(group, dict) else None
                for hook in entries if isinstance(entries, list) else ():
                    if _is_trailguard_hook(hook):
                        mine.add(event)
                        if hook.get("onFailure") == "block" or hook.get("type") == "command":
                            blocking.add(event)
        entry["trailguardEvents"] = sorted(mine)
        entry["failClosedEvents"] = sorted(blocking)
        if settings.get("disableAllHooks") is True:
            entry["disableAllHooks"] = True
            disabled.append(path)
        if settings.get("allowManagedHooksOnly") is True:
            entry["allowManagedHooksOnly"] = True
            managed_only = managed_only or path.endswith("managed-settings.json")
        events |= mine
        fail_closed |= blocking
        files.append(entry)
    summary: Json = {
        "trailguardEvents": sorted(events),
        "failClosedEvents": sorted(fail_closed),
        "disableAllHooks": disabled,
        "allowManagedHooksOnly": managed_only,
        "files": [{k: v for k, v in f.items() if k != "fileSha256"} for f in files],
    }
    summary["sha256"] = _sha256_hex(json.dumps(summary, sort_keys=True).encode("utf-8"))
    summary["files"] = files
    return summary


def collect_context(payload: Json, environ: Mapping[str, str]) -> Json:
    """What the machine claims about the session (recorded by the gateway, never trusted)."""
    import getpass

    context: Json = {}
    try:
        context["osUser"] = getpass.getuser()
    except Exception:  # getuser raises OSError or KeyError when there is no user name
        context["osUser"] = None
    try:
        context["hostname"] = socket.gethostname()
    except OSError:
        context["hostname"] = None
    cwd = payload.get("cwd")
    cwd = cwd if isinstance(cwd, str) and os.path.isdir(cwd) else None
    git: dict[str, str | None] = dict.fromkeys(("gitEmail", "gitRemote", "gitBranch"))
    if cwd is not None:
        git = _run_git_commands(cwd, environ)
    remote = git["gitRemote"]
    context["gitEmail"] = git["gitEmail"]
    context["gitRemote"] = strip_credentials(remote) if remote else None
    context["gitBranch"] = git["gitBranch"]
    mode = payload.get("permission_mode")
    context["permissionMode"] = mode if isinstance(mode, str) else None
    permissions, settings_model = read_permissions(cwd, environ)
    context["permissions"] = permissions
    model = payload.get("model")
    context["model"] = model if isinstance(model, str) else settings_model
    version = payload.get("version")
    context["agentVersion"] = version if isinstance(version, str) else None
    try:
        context["hooks"] = read_hook_config(cwd, environ)
    except Exception as exc:  # a claim: never worth the event
        context["hooks"] = {"error": _describe_exception(exc)}
    return context


def write_env_file(path: str, session_id: str) -> None:
    """Append the session's exports to ``$CLAUDE_ENV_FILE`` (read by every later Bash command).

    ``AWS_SDK_UA_APP_ID`` puts the session id in the User-Agent AWS SDKs send, so CloudTrail
    records it (AWS caps it at 50 characters; ``trailguard-`` + a UUID is 47)."""
    import shlex

    lines = (
        f"export TRAILGUARD_SESSION_ID={shlex.quote(session_id)}\n"
        f"export AWS_SDK_UA_APP_ID={shlex.quote('trailguard-' + session_id)}\n"
    )
    with open(path, "a+b") as handle:
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                lines = "\n" + lines
        handle.write(lines.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Answers


def _now_rfc3339() -> str:
    now_ns = time.time_ns()
    seconds, rest = divmod(now_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}Z"


def _describe_exception(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror[:1].lower() + exc.strerror[1:]
        return f"{text}: {exc.filename}" if exc.filename else text
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Invocation:
    """One hook run: the payload, its id, and whether it is safely in the spool."""

    __slots__ = (
        "config",
        "environ",
        "err",
        "event",
        "event_id",
        "gateway",
        "observed_at",
        "payload",
        "spool_error",
        "spooled_path",
        "usage",
    )

    def __init__(
        self,
        payload: Json,
        event: str,
        environ: Mapping[str, str],
        observed_at: str,
        err: TextIO,
        gateway: str | None = None,
    ) -> None:
        self.gateway = gateway
        """``--gateway URL`` from the command line, if given."""
        self.observed_at = observed_at
        self.payload = payload
        self.event = event
        self.environ = environ
        self.err = err
        self.event_id: str | None = None
        self.config: HookConfig | None = None
        self.spooled_path: str | None = None
        self.spool_error: str | None = None
        self.usage: TranscriptUsage | None = None
        """Transcript usage in the payload, whose read position is saved once it is safe."""

    def usage_delivered(self) -> None:
        """The payload (and the usage in it) is with the gateway or in the spool: move the
        transcript read position past it. A failure only means it is sent again later."""
        if self.usage is None:
            return
        try:
            self.usage.commit()
        except Exception as exc:
            self.err.write(
                "trailguard: cannot save the transcript read position "
                f"({_describe_exception(exc)}); its usage may be sent again\n"
            )

    def release_usage(self) -> None:
        if self.usage is not None:
            self.usage.release()

    def spool(self, reason: str) -> None:
        """Spool the event; remember a failure instead of raising (the answer must go out)."""
        if self.spooled_path is not None:
            return
        try:
            if self.config is None:
                self.config = load_config(self.environ, self.gateway)
            if self.event_id is None:
                self.event_id = new_event_id()
            self.spooled_path = spool_event(self.config, self.event_id, self.payload, reason)
        except Exception as exc:
            self.spool_error = _describe_exception(exc)
            return
        self.usage_delivered()

    def saved_sentence(self, when: str) -> str:
        if self.spooled_path is not None:
            return f"The event was saved locally and will be sent {when}."
        return (
            f"The event could not be saved locally either ({self.spool_error}), so it is not in "
            "the audit trail."
        )


def _attach_usage(inv: _Invocation, config: HookConfig, marker: Json, err: TextIO) -> None:
    """Put the model usage appended to the session's transcript since the last event into
    ``marker["usage"]``. Never raises: without a usable transcript the event goes without."""
    path = inv.payload.get("transcript_path")
    if not isinstance(path, str) or not path:
        return
    try:
        usage = read_transcript_usage(
            config.spool_dir, path, turn_ended=inv.event in _TURN_END_EVENTS
        )
    except FileNotFoundError:
        return  # SessionStart and the first prompt come before Claude Code writes the file
    except Exception as exc:
        err.write(f"trailguard: transcript usage skipped ({_describe_exception(exc)})\n")
        return
    if usage is None:
        return
    inv.usage = usage
    if usage.entries:
        marker["usage"] = usage.entries


def _handle(inv: _Invocation, environ: Mapping[str, str], err: TextIO) -> Json:
    """Send the event (after the spool) and decide the answer. May raise on bugs only."""
    config = inv.config = load_config(environ, inv.gateway)
    for warning in config.warnings:
        err.write(f"trailguard: {warning}\n")
    event, payload = inv.event, inv.payload
    marker: Json = {"observedAt": inv.observed_at}
    payload["trailguard"] = marker
    inv.event_id = new_event_id()
    _attach_usage(inv, config, marker, err)

    if event == "SessionStart":
        try:
            marker["context"] = collect_context(payload, environ)
        except Exception as exc:  # context is a claim, not worth losing the event over
            marker["context"] = {"error": _describe_exception(exc)}
        env_file = _env(environ, "CLAUDE_ENV_FILE")
        session_id = payload.get("session_id")
        if env_file is not None and isinstance(session_id, str) and session_id:
            try:
                write_env_file(env_file, session_id)
            except OSError as exc:
                err.write(f"trailguard: cannot write {env_file}: {_describe_exception(exc)}\n")
    elif event == "ConfigChange":
        cwd = payload.get("cwd")
        try:
            hooks = read_hook_config(cwd if isinstance(cwd, str) else None, environ)
        except Exception as exc:
            hooks = {"error": _describe_exception(exc)}
        marker["context"] = {"hooks": hooks}

    gateway = f"the audit gateway at {config.url}"
    blocked = "tool calls are blocked until it is back"

    try:
        replay = replay_spool(config)
    except Exception as exc:  # a replay bug must not stop the current event
        err.write(f"trailguard: spool replay failed: {_describe_exception(exc)}\n")
        replay = ReplayReport()
    problems = unreported_spool_problems(config)
    if problems:
        marker["spoolProblems"] = [problem for _path, problem in problems]
    if replay.down:
        problem = f"{gateway} is unreachable ({replay.stopped})"
        inv.spool(problem)
        return failure_answer(
            event, f"trailguard: {problem}; {blocked}. {inv.saved_sentence('when it returns')}"
        )

    try:
        status, body = _post_event(config, payload, inv.event_id)
    except ValueError as exc:  # TRAILGUARD_URL is not a usable URL
        problem = f"the audit gateway URL {config.url!r} is not usable ({exc})"
        inv.spool(problem)
        return failure_answer(
            event,
            f"trailguard: {problem}; fix TRAILGUARD_URL or 'url' in {config.config_path}. "
            f"Tool calls are blocked until then. {inv.saved_sentence('once it is fixed')}",
        )
    except GatewayUnavailableError as exc:
        problem = f"{gateway} is unreachable ({exc.detail})"
        inv.spool(problem)
        return failure_answer(
            event, f"trailguard: {problem}; {blocked}. {inv.saved_sentence('when it returns')}"
        )

    detail = _detail_suffix(body)
    if 200 <= status < 300 or status == 409:
        inv.usage_delivered()
    if 200 <= status < 300:
        # The gateway works: what it failed on during the replay was the files' fault.
        count_failed_tries(config, replay.failed)
        mark_spool_problems_reported(problems)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            return answer
        # The gateway commits before answering, so the event is recorded: no spool.
        return failure_answer(
            event,
            f"trailguard: {gateway} answered HTTP {status} with something that is not a hook "
            f"decision ({body[:100]!r}); the tool call is blocked. The event was recorded.",
        )
    if status == 409:  # a fresh id already recorded: the event is in, but there is no verdict
        return failure_answer(
            event,
            f"trailguard: {gateway} says this event is already recorded (HTTP 409{detail}) but "
            "gave no decision; the tool call is blocked.",
        )
    if status in (401, 403):
        used = config.auth_origin
        problem = f"{gateway} refused the token (HTTP {status}{detail}); token used: {used}"
        inv.spool(problem)
        fix = (
            "The token is missing or invalid: create one with `trailguard token create` and set "
            f"TRAILGUARD_TOKEN (or token_file in {config.config_path})."
            if status == 401
            else "The token is not allowed to record events: ask for one that is, and set "
            "TRAILGUARD_TOKEN."
        )
        return failure_answer(
            event,
            f"trailguard: {problem}. {fix} Tool calls are blocked until then. "
            f"{inv.saved_sentence('once the token is fixed')}",
        )
    if status >= 500 or status in _RETRYABLE_STATUSES:
        problem = f"{gateway} is failing (HTTP {status}{detail})"
        inv.spool(problem)
        return failure_answer(
            event, f"trailguard: {problem}; {blocked}. {inv.saved_sentence('when it recovers')}"
        )
    # Any other answer (400, 404, 413, 422, 3xx): the gateway will not take this event as it is.
    problem = f"{gateway} rejected the event (HTTP {status}{detail})"
    try:
        record = {
            "eventId": inv.event_id,
            "spooledAt": _now_rfc3339(),
            "reason": problem,
            "payload": payload,
        }
        inv.spooled_path = write_spool_file(
            os.path.join(config.spool_dir, "rejected"), inv.event_id, record
        )
        kept = f"The event was kept in {inv.spooled_path} for inspection."
    except Exception as exc:
        kept = f"The event could not be kept locally ({_describe_exception(exc)})."
    return failure_answer(event, f"trailguard: {problem}; the tool call is blocked. {kept}")


USAGE = """\
Usage: trailguard hook [--gateway URL]

  The command hook Claude Code runs for each hook event (`trailguard install` writes it into
  the settings file). It reads the hook payload on stdin, records it with the trailguard
  gateway and prints the gateway's answer on stdout. If the gateway cannot be reached, tool
  calls are denied and the event is kept in the spool until the next successful contact.

Options:
  --gateway URL  The gateway to report to. Default: $TRAILGUARD_URL, else 'url' in
                 ~/.config/trailguard/hook.json ($TRAILGUARD_HOOK_CONFIG), else
                 http://127.0.0.1:8787.
  -h, --help     Show this message and exit (stdin is not read).

Environment:
  TRAILGUARD_TOKEN      the agent token (else 'token_file' in hook.json)
  TRAILGUARD_TIMEOUT    seconds to wait for the gateway (default 10)
  TRAILGUARD_SPOOL_DIR  where undelivered events wait (default ~/.local/state/trailguard/spool)
"""


def _parse_arguments(argv: Sequence[str]) -> tuple[str | None, str | None]:
    """``(gateway, problem)`` from ``hook``'s arguments; ``problem`` says what is wrong."""
    gateway: str | None = None
    rest = list(argv)
    while rest:
        argument = rest.pop(0)
        if argument == "--gateway":
            gateway = rest.pop(0) if rest else ""
        elif argument.startswith("--gateway="):
            gateway = argument.split("=", 1)[1]
        else:
            return None, f"unknown argument {argument!r} (see 'trailguard hook --help')"
        if not gateway:
            return None, "--gateway needs a URL, e.g. --gateway http://127.0.0.1:8787"
    return gateway, None


def main(
    stdin: BinaryIO,
    stdout: TextIO,
    environ: Mapping[str, str],
    stderr: TextIO | None = None,
    argv: Sequence[str] = (),
) -> int:
    """Run one hook: read the payload on ``stdin``, print the answer on ``stdout``, return the
    exit code (0, or 2 when stdin is not a hook payload or the arguments are wrong).

    ``argv`` are the arguments after ``hook``: ``--gateway URL``, or ``--help``, which prints
    the usage without reading stdin."""
    err = stderr if stderr is not None else sys.stderr
    if any(argument in ("-h", "--help") for argument in argv):
        stdout.write(USAGE)
        return 0
    gateway, problem = _parse_arguments(argv)
    if problem is not None:
        err.write(f"trailguard hook: {problem}; blocking, since the event cannot be recorded.\n")
        return EXIT_BAD_INPUT
    observed_at = _now_rfc3339()
    try:
        raw = stdin.read()
        payload = json.loads(raw)
    except Exception as exc:  # bytes that are not JSON, not UTF-8, or an unreadable stdin
        err.write(
            "trailguard: the hook input on stdin is not JSON "
            f"({_describe_exception(exc)}); blocking, since the event cannot be recorded.\n"
        )
        return EXIT_BAD_INPUT
    event = payload.get("hook_event_name") if isinstance(payload, dict) else None
    if not isinstance(event, str) or not event:
        what = "a JSON object" if not isinstance(payload, dict) else "without hook_event_name"
        err.write(
            f"trailguard: the hook input on stdin is not a Claude Code hook payload ({what}); "
            "blocking, since the event cannot be recorded.\n"
        )
        return EXIT_BAD_INPUT

    inv = _Invocation(payload, event, environ, observed_at, err, gateway)
    try:
        answer = _handle(inv, environ, err)
    except BaseException as exc:  # a bug (or ^C) must still deny: a crash would let tools run
        problem = f"the hook client failed ({_describe_exception(exc)}); this is a bug"
        inv.spool(problem)
        err.write(f"trailguard: {problem}\n")
        answer = failure_answer(
            event,
            f"trailguard: {problem}. The tool call is blocked to keep the audit trail complete. "
            f"{inv.saved_sentence('on the next successful contact')}",
        )
    finally:
        inv.release_usage()
    try:
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
    except Exception as exc:  # without stdout a deny cannot be said: exit 2 blocks instead
        err.write(f"trailguard: cannot write the hook answer ({_describe_exception(exc)})\n")
        return EXIT_BAD_INPUT if event in FAIL_CLOSED_EVENTS else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.stdin.buffer, sys.stdout, os.environ, argv=sys.argv[1:]))
