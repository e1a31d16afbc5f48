"""Stored rows → messages for one sink: its filters (``types=``, ``min_risk=``) and its format
(``json``: the event's canonical bytes exactly as signed; ``cef``; ``ocsf``)."""

from __future__ import annotations

from typing import Any

import orjson

from trailguard.siem.cef import format_cef
from trailguard.siem.config import RISKS, SinkConfig
from trailguard.siem.delivery import Message
from trailguard.siem.ocsf import to_ocsf
from trailguard.siem.risk import RISK_RANK, is_denial, risk_rank
from trailguard.siem.syslog import syslog_severity
from trailguard.store.base import LedgerRow

_RANK_NAMES = {rank: name for name, rank in RISK_RANK.items()}
_RISKY_TYPES = frozenset({"tool_invocation", "infra_operation", "alert"})
"""The event types ``risk_rank`` gives a risk; every other one is informational."""
_RISKY_TYPES = frozenset({"tool_invocation", "infra_operation", "alert"})
"""The event types ``risk_rank`` gives a risk; every other one is informational."""


class MessageMaker:
    """Decides whether a sink wants a row and formats it. A ``checkpoint`` passes ``min_risk``
    (the SIEM's copy of the signed tree heads is the point of sending them) but not a
    ``types=`` list that leaves it out."""

    def __init__(self, config: SinkConfig, *, hostname: str) -> None:
        self.config = config
        self.hostname = hostname
        self._min_rank = RISK_RANK[config.min_risk] if config.min_risk else None
        assert config.min_risk is None or config.min_risk in RISKS

    def wanted(self, row: LedgerRow, doc: dict[str, Any] | None) -> bool:
        types = self.config.types
        if types is not None and row.event_type not in types:
            return False
        if self._min_rank is None or row.event_type == "checkpoint":
            return True
        rank = risk_rank(doc if doc is not None else orjson.loads(row.body))
        return rank is not None and rank >= self._min_rank

    def needs_document(self, event_type: str) -> bool:
        """Whether a row's JSON must be parsed: to format it, filter it by risk, or give a
        syslog message the severity of its risk (only these types carry one)."""
        if self.config.format != "json" or self._min_rank is not None:
            return True
        return self.config.kind == "syslog" and event_type in _RISKY_TYPES

    def message(self, row: LedgerRow) -> Message | None:
        """The message for ``row``, or None when the sink's filters leave it out."""
        doc: dict[str, Any] | None = (
            orjson.loads(row.body) if self.needs_document(row.event_type) else None
        )
        if not self.wanted(row, doc):
            return None
        fmt = self.config.format
        if fmt == "json":
            payload = bytes(row.body)
        elif fmt == "cef":
            assert doc is not None
            payload = format_cef(doc, hostname=self.hostname).encode()
        else:
            assert doc is not None
            payload = orjson.dumps(to_ocsf(doc))
        severity = 6
        if doc is not None:
            rank = risk_rank(doc)
            severity = syslog_severity(
                _RANK_NAMES.get(rank) if rank is not None else None, is_denial(doc)
            )
        return Message(
            seq=row.seq,
            event_id=row.event_id,
            event_type=row.event_type,
            timestamp=row.timestamp,
            payload=payload,
            severity=severity,
        )
