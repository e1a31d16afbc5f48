"""The policy set in force, reloaded without a restart when its files change.

The gateway polls the directory's file names, sizes and modification times; a change that loads
cleanly replaces the set in force (and the gateway records a ``policy_change`` event); a change
that does not load is reported and the previous set stays in force.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from trailguard.policy.loader import TEAMS_FILE, PolicyError, PolicySet, load_policy_set


@dataclass(frozen=True)
class Reload:
    previous_version: str
    policy_set: PolicySet | None
    """The new set, or None when the change failed to load (``error`` says why)."""
    error: str | None = None


class PolicyStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._current = load_policy_set(directory)
        self._fingerprint = self._scan()

    @property
    def current(self) -> PolicySet:
        with self._lock:
            return self._current

    def _scan(self) -> tuple[tuple[str, int, int], ...]:
        if self.directory is None:
            return ()
        try:
            paths = [*self.directory.glob("*.cedar"), self.directory / TEAMS_FILE]
            return tuple(
                sorted(
                    (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths if p.exists()
                )
            )
        except OSError:
            return ()

    def reload_if_changed(self) -> Reload | None:
        """Reload when the files changed; None when nothing changed."""
        fingerprint = self._scan()
        if fingerprint == self._fingerprint:
            return None
        self._fingerprint = fingerprint
        previous = self.current.version
        try:
            loaded = load_policy_set(self.directory)
        except PolicyError as exc:
            return Reload(previous, None, str(exc))
        if loaded.version == previous:
            return None
        with self._lock:
            self._current = loaded
        return Reload(previous, loaded)
