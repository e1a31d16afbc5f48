"""After the fact: the current rules run over events already stored.

Rules improve after events are written, and the ledger cannot be rewritten (every event is a
leaf of a signed Merkle tree; the archive is write-once). What an operator can do is know:
:func:`scan_documents` lists every stored event holding something the current rules now
redact - by field and rule, never the text itself - so the secret can be rotated and the
exposure assessed (``trailguard secrets scan``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from trailguard.redact.engine import Redactor

# Fields the gateway itself writes (ids, times, hashes, signatures): never agent text.
_SKIPPED: Final = frozenset(
    {
        "eventId", "seq", "timestamp", "observedAt", "eventType", "source", "policyResult",
        "policyVersion", "outputSha256", "inputSha256", "rootHash", "treeSize", "signature",
        "checkpoint", "keyName", "keyId",
    }
)  # fmt: skip
_SCAN_KEY: Final = b"trailguard-secrets-scan"
"""Tags are not shown, so the scan needs no deployment key."""


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """A stored event that holds something the current rules redact."""

    seq: int
    event_id: str
    event_type: str
    session_id: str | None
    timestamp: str
    fields: tuple[str, ...]
    """JSON pointers of the strings that hold it (``/input/command``)."""
    rules: tuple[str, ...]
    """The rules that fired (``github-pat``, ``password``...)."""


def scan_document(
    document: dict[str, Any], redactor: Redactor | None = None
) -> StoredFinding | None:
    """What the current rules find in one stored event document, or ``None``."""
    redactor = redactor or Redactor(_SCAN_KEY)
    fields: list[str] = []
    rules: set[str] = set()
    for name, value in document.items():
        if name in _SKIPPED or value is None or isinstance(value, bool | int | float):
            continue
        _, findings = redactor.redact_value(value)
        for finding in findings:
            pointer = f"/{name}{finding.path}"
            if pointer not in fields:
                fields.append(pointer)
            rules.add(finding.kind)
    if not fields:
        return None
    return StoredFinding(
        seq=int(document.get("seq", -1)),
        event_id=str(document.get("eventId", "")),
        event_type=str(document.get("eventType", "")),
        session_id=document.get("sessionId"),
        timestamp=str(document.get("timestamp", "")),
        fields=tuple(fields),
        rules=tuple(sorted(rules)),
    )


def scan_documents(documents: Iterable[dict[str, Any]]) -> Iterator[StoredFinding]:
    """:func:`scan_document` over many events, oldest first."""
    redactor = Redactor(_SCAN_KEY)
    for document in documents:
        if document.get("eventType") in {"checkpoint", "gateway_start", "gateway_stop"}:
            continue
        found = scan_document(document, redactor)
        if found is not None:
            yield found
