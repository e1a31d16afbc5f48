"""Runaway-loop and spend-spike detection: a session stuck in a loop usually shows as the same
call over and over, the same failure retried, an edit undone and redone, or a sudden jump in
spend. Each finding is an ``alert`` event, raised once per pattern."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from trailguard.events import Alert


@dataclass(frozen=True)
class LoopConfig:
    repeat_count: int = 8
    """The same tool call (tool + normalised input) this many times within ``window_seconds``."""
    window_seconds: float = 300.0
    failure_retries: int = 3
    """The same failing call this many times."""
    spike_factor: Decimal = Decimal(5)
    """Spend in the last minute above this multiple of the session's average per minute..."""
    spike_minimum_usd: Decimal = Decimal("0.50")
    """...and above this amount (so a cheap session's noise is not a spike)."""


MAX_NORMALISED_BYTES = 256 * 1024
"""Only this much of a tool input is compared: two calls equal up to here count as the same."""
MAX_TRACKED = 50_000
"""Tracked calls, failures and edits, each: the oldest are forgotten first, so a hostile agent
sending endless distinct inputs cannot grow the gateway's memory."""


def normalised_call(tool: str, tool_input: Any) -> str:
    """A digest of the tool and its input with key order and whitespace normalised, for
    comparing calls without keeping their text."""
    try:
        text = orjson.dumps(tool_input, option=orjson.OPT_SORT_KEYS, default=str)
    except (TypeError, orjson.JSONEncodeError):
        text = repr(tool_input).encode()
    head = b" ".join(text[:MAX_NORMALISED_BYTES].split())
    digest = hashlib.sha256(head + b"|%d" % len(text)).hexdigest()
    return f"{tool}:{digest}"


class _Bounded(OrderedDict[Any, Any]):
    """A dict that forgets its least recently touched entries past ``limit``."""

    def __init__(self, factory: Any, limit: int = MAX_TRACKED) -> None:
        super().__init__()
        self._factory = factory
        self._limit = limit

    def touch(self, key: Any) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = self._factory()
        while len(self) > self._limit:
            self.popitem(last=False)
        return value


@dataclass
class _Spend:
    started: float
    earlier: Decimal = Decimal(0)
    """Spend older than a minute, summed: only the last minute is kept item by item."""
    recent: deque[tuple[float, Decimal]] = field(default_factory=deque)


class LoopDetector:
    def __init__(self, config: LoopConfig | None = None, *, limit: int = MAX_TRACKED) -> None:
        self.config = config or LoopConfig()
        self._lock = threading.Lock()
        self._calls = _Bounded(deque, limit)
        self._failures = _Bounded(lambda: [0], limit)
        self._edits = _Bounded(set, limit)
        self._spend = _Bounded(lambda: None, limit)
        self._raised = _Bounded(lambda: True, limit)

    @property
    def tracked(self) -> int:
        """Entries held in memory (for tests and metrics)."""
        return len(self._calls) + len(self._failures) + len(self._edits) + len(self._spend)

    def _alert(
        self, key: tuple[str, ...], session_id: str, alert_type: str, message: str, **details: Any
    ) -> list[Alert]:
        if key in self._raised:
            return []
        self._raised.touch(key)
        return [
            Alert(
                session_id=session_id,
                alert_type=alert_type,
                severity="high",
                message=message,
                details={k: v for k, v in details.items() if v is not None},
                source="gateway",
            )
        ]

    def tool_call(self, session_id: str, tool: str, tool_input: Any) -> list[Alert]:
        call = normalised_call(tool, tool_input)
        now = time.monotonic()
        alerts: list[Alert] = []
        with self._lock:
            times = self._calls.touch((session_id, call))
            times.append(now)
            while times and now - times[0] > self.config.window_seconds:
                times.popleft()
            if len(times) >= self.config.repeat_count:
                alerts += self._alert(
                    ("repeat", session_id, call),
                    session_id,
                    "repeated_tool_call",
                    f"{tool} was called with the same input {len(times)} times in "
                    f"{self.config.window_seconds:g} s: the agent may be stuck in a loop",
                    tool=tool,
                    count=len(times),
                )
            if tool in ("Edit", "MultiEdit") and isinstance(tool_input, dict):
                path = str(tool_input.get("file_path"))
                edits = tool_input.get("edits") if tool == "MultiEdit" else [tool_input]
                pairs = [e for e in edits if isinstance(e, dict)] if isinstance(edits, list) else []
                old = normalised_call("", [e.get("old_string") for e in pairs])
                new = normalised_call("", [e.get("new_string") for e in pairs])
                edits_seen = self._edits.touch((session_id, path))
                if (new, old) in edits_seen:
                    alerts += self._alert(
                        ("oscillation", session_id, path, *sorted((old, new))),
                        session_id,
                        "edit_oscillation",
                        f"an edit of {path} reverts an earlier edit of the same file: the agent "
                        "may be going back and forth",
                        file=path,
                    )
                if len(edits_seen) < 1000:
                    edits_seen.add((old, new))
        return alerts

    def tool_failed(self, session_id: str, tool: str, tool_input: Any) -> list[Alert]:
        call = normalised_call(tool, tool_input)
        with self._lock:
            counter = self._failures.touch((session_id, call))
            counter[0] += 1
            count = counter[0]
            if count >= self.config.failure_retries:
                return self._alert(
                    ("failing", session_id, call),
                    session_id,
                    "failing_call_retried",
                    f"the same failing {tool} call was retried {count} times",
                    tool=tool,
                    count=count,
                )
        return []

    def spend(self, session_id: str, amount: Decimal) -> list[Alert]:
        """Spend rate over a threshold against the session's own baseline."""
        now = time.monotonic()
        with self._lock:
            history: _Spend | None = self._spend.touch(session_id)
            if history is None:
                history = self._spend[session_id] = _Spend(now)
            history.recent.append((now, amount))
            while history.recent and now - history.recent[0][0] > 60:
                history.earlier += history.recent.popleft()[1]
            if now - history.started < 120:  # too early for a baseline
                return []
            last_minute = sum((a for _, a in history.recent), Decimal(0))
            minutes = max(Decimal(str((now - history.started - 60) / 60)), Decimal(1))
            baseline = history.earlier / minutes
            if (
                last_minute >= self.config.spike_minimum_usd
                and last_minute > baseline * self.config.spike_factor
            ):
                return self._alert(
                    ("spike", session_id, str(int(now // 60))),
                    session_id,
                    "spend_spike",
                    f"${last_minute:.2f} in the last minute against a session average of "
                    f"${baseline:.2f} per minute",
                    lastMinuteUsd=float(last_minute),
                    baselineUsdPerMinute=float(baseline),
                )
        return []
