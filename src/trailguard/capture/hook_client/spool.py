"""The spool: events the gateway did not take, kept durably and replayed oldest first.

``<spool>/<eventId>.json`` (temp file + fsync + rename + directory fsync, 0600 in a 0700
directory) is written before the client answers; the next invocation whose gateway answers
replays it with its own event id and ``"spooled": true``. Files the gateway refuses for good go
to ``rejected/``, unreadable ones to ``corrupt/``; files it keeps failing on are the poison
spool's (``poison.py``).
"""

from __future__ import annotations

import os
import time

from trailguard.capture.hook_client import fastjson, gateway
from trailguard.capture.hook_client.files import (
    ensure_private_dir,
    fsync_dir,
    remove,
    try_lock,
    write_private_file,
)
from trailguard.capture.hook_client.support import is_header_safe, now_rfc3339
from trailguard.capture.hook_client.transport import GatewayUnavailableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from trailguard.capture.hook_client.config import HookConfig

    Json = dict[str, Any]

MAX_REPLAY_FILES = 200
"""At most this many spooled events are replayed per invocation; the rest go next time."""
REPLAY_BUDGET_SECONDS = 5.0
"""No new replay request is started after this long, so one tool call is not held for minutes."""
TRIES_SUFFIX = ".tries"
"""Beside a spool file: how many times the gateway failed on it while taking other events."""


def write_spool_file(directory: str, event_id: str, record: Json) -> str:
    """Write ``record`` durably as ``<directory>/<event_id>.json``; return the path."""
    data = fastjson.dumps(record, compact=True).encode("utf-8")
    return write_private_file(os.path.join(directory, f"{event_id}.json"), data)


def spool_event(config: HookConfig, event_id: str, payload: Json, reason: str) -> str:
    """Keep an event the gateway did not take; it is replayed on the next successful contact."""
    record = {
        "eventId": event_id,
        "spooledAt": now_rfc3339(),
        "reason": reason,
        "payload": payload,
    }
    return write_spool_file(config.spool_dir, event_id, record)


def move_aside(path: str, spool_dir: str, kind: str, note: str | None = None) -> None:
    """Move a spool file into ``<spool>/<kind>/`` (corrupt or rejected), never raising."""
    target_dir = os.path.join(spool_dir, kind)
    try:
        ensure_private_dir(target_dir)
        target = os.path.join(target_dir, os.path.basename(path))
        os.replace(path, target)
        if note is not None:
            with open(target + ".reason.txt", "w", encoding="utf-8") as handle:
                handle.write(note + "\n")
        fsync_dir(target_dir)
        fsync_dir(spool_dir)
    except OSError:
        pass


def _spooled_names(spool_dir: str, limit: int) -> list[str]:
    try:
        with os.scandir(spool_dir) as entries:
            import heapq

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


def load_spool_record(path: str) -> tuple[str, Json] | None:
    """(eventId, payload) of a spool file, or None when it is not one."""
    try:
        with open(path, "rb") as handle:
            record = fastjson.loads(handle.read())
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    event_id = record.get("eventId")
    payload = record.get("payload")
    if not isinstance(event_id, str) or not is_header_safe(event_id):
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
    lock = try_lock(os.path.join(config.spool_dir, ".replay.lock"))
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
                loaded = load_spool_record(path)
            except FileNotFoundError:
                continue  # another process delivered it
            except OSError:
                continue  # unreadable now (permissions?): leave it, never block on it
            if loaded is None:
                move_aside(path, config.spool_dir, "corrupt")
                report.corrupt += 1
                continue
            event_id, payload = loaded
            marker = payload.get("trailguard")
            if not isinstance(marker, dict):
                marker = {}
                payload["trailguard"] = marker
            marker["spooled"] = True
            try:
                status, body = gateway.post_event(config, payload, event_id)
            except GatewayUnavailableError as exc:
                report.stopped = exc.detail
                report.down = True
                break
            failed_in_a_row = False
            if 200 <= status < 300 or status == 409:
                remove(path)  # gone already: another process delivered it too
                remove(path + TRIES_SUFFIX)
                report.delivered += 1
            elif status in (401, 403):
                report.stopped = f"HTTP {status}{gateway.detail_suffix(body)}"
                break
            elif status >= 500 or status in gateway.RETRYABLE_STATUSES:
                # Go on with the next file: one event the gateway cannot take must not hold
                # the others. Two failures in a row look like the gateway's fault: stop.
                report.failed.append((path, f"HTTP {status}{gateway.detail_suffix(body)}"))
                if len(report.failed) >= 2 and failed_in_a_row:
                    report.stopped = f"HTTP {status}{gateway.detail_suffix(body)}"
                    break
                failed_in_a_row = True
                continue
            else:
                move_aside(
                    path,
                    config.spool_dir,
                    "rejected",
                    f"HTTP {status}{gateway.detail_suffix(body)}",
                )
                report.rejected += 1
    finally:
        if lock is not None and lock is not False:
            os.close(lock)
    return report
