"""How serious a stored event is, on the scales sinks filter and SIEMs sort by: trailguard's
risk (``low`` .. ``critical``, from the classified operations or an alert's severity), CEF's
0-10 and OCSF's ``severity_id``."""

from __future__ import annotations

import calendar
from datetime import datetime
from typing import Any, Final

RISK_RANK: Final = {"info": -1, "low": 0, "medium": 1, "high": 2, "critical": 3}
"""An alert's ``info`` ranks below every risk; ``min_risk=low`` lets it through no more than
an event without risk."""


def risk_rank(doc: dict[str, Any]) -> int | None:
    """The rank of the event's risk, or None when the event has none (a prompt, a cost...).

    A tool call ranks as its riskiest operation, an infrastructure operation as itself, an
    alert as its severity."""
    kind = doc.get("eventType")
    if kind == "tool_invocation":
        ranks = [RISK_RANK.get(str(op.get("risk")), 0) for op in doc.get("operations") or []]
        return max(ranks) if ranks else None
    if kind == "infra_operation":
        return RISK_RANK.get(str((doc.get("operation") or {}).get("risk")))
    if kind == "alert":
        return RISK_RANK.get(str(doc.get("severity")))
    return None


def is_denial(doc: dict[str, Any]) -> bool:
    return doc.get("eventType") == "tool_invocation" and doc.get("policyResult") == "denied"


_CEF: Final = {None: 1, -1: 1, 0: 3, 1: 5, 2: 8, 3: 10}


def cef_severity(doc: dict[str, Any]) -> int:
    """CEF's 0-10 (0-3 low, 4-6 medium, 7-8 high, 9-10 very high); a denial is at least 5."""
    severity = _CEF[risk_rank(doc)]
    return max(severity, 5) if is_denial(doc) else severity


_OCSF: Final = {None: 1, -1: 1, 0: 2, 1: 3, 2: 4, 3: 5}


def ocsf_severity_id(doc: dict[str, Any]) -> int:
    """OCSF ``severity_id``: 1 informational, 2 low, 3 medium, 4 high, 5 critical; a denial
    is at least medium."""
    severity = _OCSF[risk_rank(doc)]
    return max(severity, 3) if is_denial(doc) else severity


def epoch_ms(timestamp: object) -> int | None:
    """Milliseconds since the epoch of an event timestamp (``2026-04-15T14:32:07.123Z``)."""
    if not isinstance(timestamp, str):
        return None
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000
