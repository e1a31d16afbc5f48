"""The policy set in force, reloaded without a restart when its files change.

The gateway polls the directory's file names, sizes and modification times; a change that loads
cleanly replaces the set in force and the gateway records a ``policy_change`` event (retried
until it is stored); a change that does not load is reported and the previous set stays in
force. With several workers only the lead polls; the others put in force exactly the set it
put in force (``gateway/shared_changes.py``).
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
    fingerprint: tuple[tuple[str, int, int], ...] = ()
    """The directory's files as they were when this change was seen."""


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

    @property
    def version(self) -> str:
        return self.current.version

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

    def changed(self) -> Reload | None:
        """The directory's new set when its files changed (None: nothing changed), not yet in
        force: ``settle`` puts it in force. Until then the same change is seen again."""
        fingerprint = self._scan()
        if fingerprint == self._fingerprint:
            return None
        previous = self.current.version
        try:
            loaded = load_policy_set(self.directory)
        except PolicyError as exc:
            return Reload(previous, None, str(exc), fingerprint)
        if loaded.version == previous:  # touched, not changed
            self._fingerprint = fingerprint
            return None
        return Reload(previous, loaded, None, fingerprint)

    def settle(self, change: Reload) -> None:
        """``change`` is taken: its set (if it loaded) is in force, and it is not seen again."""
        with self._lock:
            if change.policy_set is not None:
                self._current = change.policy_set
            self._fingerprint = change.fingerprint

    def adopt(self, policy_set: PolicySet) -> None:
        """Put ``policy_set`` in force (one another process loaded and recorded)."""
        with self._lock:
            self._current = policy_set

    def reload_if_changed(self) -> Reload | None:
        """Reload when the files changed (in force at once); None when nothing changed."""
        change = self.changed()
        if change is not None:
            self.settle(change)
        return change
