"""What one worker of ``serve --workers N`` changed that every other worker must know before it
answers its next request: a session killed, a budget exhausted, a policy put in force.

``SharedChanges`` is a small anonymous shared memory map made before the workers are forked
(like the shared rate limit): one row of change counters per worker, each row written only by
its worker. Whoever makes such a change bumps its counter once the change is durable where the
others read it (the kill request in the state file, the cost events in the ledger, the policy
snapshot). A budget is announced before the request that exhausted it is answered; a kill and
a policy before their own record can be read: whoever reads a kill's session_end or a
policy_change in the ledger can count on every worker enforcing it.

``ChangeWatch`` runs in every worker: each request compares the counters with the ones it last
acted on (one struct read) and only when they differ re-reads what changed: the state file's
kills and ends, the others' recent cost events, the policy set the lead put in force (its exact
sources, from a snapshot file, so every worker enforces the version the lead records and no
other).
"""

from __future__ import annotations

import json
import mmap
import struct
import threading
from pathlib import Path
from typing import Final

from trailguard.errors import StorageUnavailableError
from trailguard.gateway.sessions import SessionRegistry
from trailguard.gateway.shared_spend import SharedSpend
from trailguard.ledger.keys import write_file_durably
from trailguard.policy.loader import PolicyError, PolicySet, policy_set_from_sources
from trailguard.policy.store import PolicyStore

SESSIONS: Final = 0
"""A kill requested or recorded, a session ended by the gateway (state file)."""
SPEND: Final = 1
"""A budget exhausted (the cost events are in the ledger)."""
POLICY: Final = 2
"""The lead put another policy set in force (its policy_change is recorded next)."""
KINDS: Final = 3
POLICY_SNAPSHOT: Final = "policy-in-force.json"


class SharedChanges:
    """Create it in the parent before forking; each child then calls ``as_worker(index)``."""

    def __init__(self, workers: int, runtime: Path) -> None:
        self.workers = workers
        self.runtime = runtime
        """A private directory (0700) of this gateway's run: the policy snapshot lives here."""
        self._row: Final = struct.Struct(f"<{KINDS}Q")
        self._all: Final = struct.Struct(f"<{KINDS * workers}Q")
        self._memory = mmap.mmap(-1, self._all.size)  # MAP_SHARED | MAP_ANONYMOUS
        self._index: int | None = None
        self._lock = threading.Lock()
        """Bumps by this process's threads (its row has one writer process)."""

    def as_worker(self, index: int) -> SharedChanges:
        """In worker ``index`` (after the fork): its bumps go to its own row."""
        if not 0 <= index < self.workers:
            raise ValueError(f"worker {index} of {self.workers}")
        self._index = index
        self._lock = threading.Lock()  # never one copied from the parent while held
        return self

    def read(self) -> tuple[int, ...]:
        """Every worker's counters (the per-request check: one read)."""
        return self._all.unpack_from(self._memory, 0)

    def bump(self, *kinds: int) -> None:
        """Say that changes of ``kinds`` are durable: every worker re-reads them."""
        if self._index is None:
            raise RuntimeError("SharedChanges.bump outside a worker (call as_worker first)")
        offset = self._index * self._row.size
        with self._lock:
            row = list(self._row.unpack_from(self._memory, offset))
            for kind in kinds:
                row[kind] += 1
            self._row.pack_into(self._memory, offset, *row)

    @property
    def snapshot(self) -> Path:
        return self.runtime / POLICY_SNAPSHOT

    def publish_policy(self, policy_set: PolicySet) -> None:
        """The lead: ``policy_set`` is in force (every worker takes it before its next
        request)."""
        document = {
            "version": policy_set.version,
            "source": policy_set.source,
            "files": [[name, text] for name, text in policy_set.sources],
            "teams": policy_set.teams_source,
        }
        write_file_durably(self.snapshot, json.dumps(document), replace=True)
        self.bump(POLICY)

    def published_policy(self, unless: str | None = None) -> PolicySet | None:
        """The set the lead put in force last; None when none is published yet or when it
        is version ``unless`` (the caller's own: nothing to load)."""
        try:
            document = json.loads(self.snapshot.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        if document["version"] == unless:
            return None
        policy_set = policy_set_from_sources(
            [(str(name), str(text)) for name, text in document["files"]],
            document["teams"],
            source=str(document["source"]),
        )
        if policy_set.version != document["version"]:
            raise PolicyError(
                f"{self.snapshot}: holds version {policy_set.version}, says {document['version']}"
            )
        return policy_set


def _changed(before: tuple[int, ...] | None, now: tuple[int, ...]) -> set[int]:
    if before is None:
        return set(range(KINDS))
    return {i % KINDS for i, (a, b) in enumerate(zip(before, now, strict=True)) if a != b}


class ChangeWatch:
    """One worker's view of the others' changes."""

    def __init__(
        self,
        changes: SharedChanges,
        sessions: SessionRegistry,
        policies: PolicyStore,
        shared_spend: SharedSpend | None,
    ) -> None:
        self.changes = changes
        self.sessions = sessions
        self.policies = policies
        self.shared_spend = shared_spend
        self._seen: tuple[int, ...] | None = None
        """The counters acted on last (None: nothing yet, the first request reads all)."""
        self._lock = threading.Lock()

    def stale(self) -> bool:
        """Whether another process changed something since this one last looked."""
        return self.changes.read() != self._seen

    def refresh(self) -> None:
        """Take in what changed. Raises StorageUnavailableError (503: the hook is refused,
        fail closed) when it cannot be read; the next request tries again."""
        with self._lock:
            now = self.changes.read()  # before the reads: a later bump is seen next time
            kinds = _changed(self._seen, now)
            if not kinds:
                return
            try:
                if SESSIONS in kinds:
                    self.sessions.adopt_shared()
                if SPEND in kinds and self.shared_spend is not None:
                    self.shared_spend.catch_up()
                if POLICY in kinds:
                    published = self.changes.published_policy(unless=self.policies.version)
                    if published is not None:
                        self.policies.adopt(published)
            except (OSError, ValueError, KeyError, TypeError, PolicyError) as exc:
                raise StorageUnavailableError(
                    f"this worker cannot read what another worker changed ({exc}); the request "
                    "is refused rather than answered from an old view"
                ) from None
            self._seen = now

    def refresh_if_stale(self) -> None:
        if self.stale():
            self.refresh()
