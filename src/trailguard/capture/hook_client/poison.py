"""The poison spool: spooled events the gateway keeps failing on while it takes others.

After :data:`POISON_TRIES` such failures a file moves to ``<spool>/poisoned/`` with a
``.problem.json`` beside it, which goes to the gateway with the next event
(``trailguard.spoolProblems``) until the gateway has taken one that carried it.
"""

from __future__ import annotations

import os

from trailguard.capture.hook_client import fastjson
from trailguard.capture.hook_client.files import ensure_private_dir, remove, write_private_file
from trailguard.capture.hook_client.spool import TRIES_SUFFIX, load_spool_record, move_aside
from trailguard.capture.hook_client.support import now_rfc3339, sha256_hex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from trailguard.capture.hook_client.config import HookConfig

    Json = dict[str, Any]

POISON_TRIES = 3
"""A spooled event the gateway failed on this many times, while taking other events, is moved
to ``<spool>/poisoned/`` and reported to the gateway (``trailguard.spoolProblems``)."""
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
    loaded = load_spool_record(path)
    event_id, payload = loaded if loaded is not None else (None, {})
    problem = {
        "eventId": event_id,
        "hookEventName": payload.get("hook_event_name"),
        "sessionId": payload.get("session_id"),
        "tries": tries,
        "lastError": error[:500],
        "movedAt": now_rfc3339(),
        "sha256": sha256_hex(content),
    }
    target_dir = os.path.join(config.spool_dir, "poisoned")
    ensure_private_dir(target_dir)
    name = os.path.basename(path)
    write_private_file(
        os.path.join(target_dir, name + PROBLEM_SUFFIX), fastjson.dumps(problem).encode()
    )
    move_aside(path, config.spool_dir, "poisoned", f"{tries} tries, last: {error}")
    remove(path + TRIES_SUFFIX)


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
                problem = fastjson.loads(handle.read())
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
