"""Runaway-loop and spend-spike detection: a session stuck in a loop usually shows as the same
call over and over, the same failure retried, an edit undone and redone, or a sudden jump in
spend. Each finding is an ``alert`` event, raised once per pattern."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

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


def normalised_call(tool: str, tool_input: Any) -> str:
    """Tool and input with key order and whitespace normalised, for comparing calls."""
    try:
        text = json.dumps(tool_input, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        text = repr(tool_input)
    return f"{tool}:{' '.join(text.split())}"


class LoopDetector:
    def __init__(self, config: LoopConfig | None = None) -> None:
        self.config = config or LoopConfig()
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._failures: dict[tuple[str, str], int] = defaultdict(int)
        self._edits: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        self._spend: dict[str, list[tuple[float, Decimal]]] = defaultdict(list)
        self._raised: set[tuple[str, ...]] = set()

    def _alert(
        self, key: tuple[str, ...], session_id: str, alert_type: str, message: str, **details: Any
    ) -> list[Alert]:
        if key in self._raised:
            return []
        self._raised.add(key)
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
            times = self._calls[session_id, call]
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
                old = json.dumps([e.get("old_string") for e in pairs], default=str)
                new = json.dumps([e.get("new_string") for e in pairs], default=str)
                if (new, old) in self._edits[session_id, path]:
                    alerts += self._alert(
                        ("oscillation", session_id, path, *sorted((old, new))),
                        session_id,
                        "edit_oscillation",
                        f"an edit of {path} reverts an earlier edit of the same file: the agent "
                        "may be going back and forth",
                        file=path,
                    )
                self._edits[session_id, path].add((old, new))
        return alerts

    def tool_failed(self, session_id: str, tool: str, tool_input: Any) -> list[Alert]:
        call = normalised_call(tool, tool_input)
        with self._lock:
            self._failures[session_id, call] += 1
            count = self._failures[session_id, call]
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
            history = self._spend[session_id]
            history.append((now, amount))
            started = history[0][0]
            if now - started < 120:  # too early for a baseline
                return []
            last_minute = sum((a for t, a in history if now - t <= 60), Decimal(0))
            earlier = sum((a for t, a in history if now - t > 60), Decimal(0))
            minutes = max(Decimal(str((now - started - 60) / 60)), Decimal(1))
            baseline = earlier / minutes
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
