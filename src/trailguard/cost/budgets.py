"""Budgets per session, per developer per day and per project per day (USD), with threshold
events as spend crosses 50 / 80 / 100 % (configurable). At 100 % a budget is exhausted: the
gateway denies tool calls, stops the agent, refuses model requests, and ends the session
``budget_exhausted``."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from trailguard.events import BudgetThreshold

Scope = Literal["session", "developer_day", "project_day"]


@dataclass(frozen=True)
class BudgetConfig:
    session_usd: Decimal | None = None
    developer_day_usd: Decimal | None = None
    project_day_usd: Decimal | None = None
    thresholds: tuple[int, ...] = (50, 80, 100)

    def limit(self, scope: Scope) -> Decimal | None:
        return {
            "session": self.session_usd,
            "developer_day": self.developer_day_usd,
            "project_day": self.project_day_usd,
        }[scope]


@dataclass(frozen=True)
class Exhausted:
    scope: Scope
    key: str
    limit: Decimal
    spent: Decimal

    def reason(self) -> str:
        what = {
            "session": "this session's",
            "developer_day": f"developer {self.key.split('/')[0]}'s daily",
            "project_day": f"project {self.key.split('/')[0]}'s daily",
        }[self.scope]
        return (
            f"trailguard: {what} budget of ${self.limit} is exhausted (${self.spent:.4f} spent); "
            "ask an admin to raise it"
        )


class BudgetTracker:
    """Running spend per scope key; thread-safe."""

    def __init__(self, config: BudgetConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._spent: dict[tuple[Scope, str], Decimal] = defaultdict(Decimal)
        self._crossed: dict[tuple[Scope, str], set[int]] = defaultdict(set)

    @staticmethod
    def keys(
        session_id: str | None, developer_id: str | None, project_id: str | None, day: str
    ) -> list[tuple[Scope, str]]:
        keys: list[tuple[Scope, str]] = []
        if session_id:
            keys.append(("session", session_id))
        if developer_id:
            keys.append(("developer_day", f"{developer_id}/{day}"))
        if project_id:
            keys.append(("project_day", f"{project_id}/{day}"))
        return keys

    def preload(self, scope: Scope, key: str, spent: Decimal) -> None:
        """Spend already in the ledger (today's, on gateway start); no events for it."""
        with self._lock:
            self._spent[scope, key] += spent
            limit = self.config.limit(scope)
            if limit:
                percent = self._spent[scope, key] * 100 / limit
                self._crossed[scope, key] |= {t for t in self.config.thresholds if percent >= t}

    def add(
        self,
        amount: Decimal,
        *,
        session_id: str | None,
        developer_id: str | None,
        project_id: str | None,
        day: str,
    ) -> list[BudgetThreshold]:
        """Count ``amount`` against every budget it falls under; the thresholds it crossed."""
        crossed: list[BudgetThreshold] = []
        with self._lock:
            for scope, key in self.keys(session_id, developer_id, project_id, day):
                self._spent[scope, key] += amount
                limit = self.config.limit(scope)
                if not limit:
                    continue
                spent = self._spent[scope, key]
                percent = spent * 100 / limit
                for threshold in self.config.thresholds:
                    if percent >= threshold and threshold not in self._crossed[scope, key]:
                        self._crossed[scope, key].add(threshold)
                        crossed.append(
                            BudgetThreshold(
                                session_id=session_id,
                                developer_id=developer_id,
                                project_id=project_id,
                                scope=scope,
                                limit_usd=float(limit),
                                spent_usd=float(spent),
                                percent=threshold,
                                source="gateway",
                            )
                        )
        return crossed

    def exhausted(
        self, session_id: str | None, developer_id: str | None, project_id: str | None, day: str
    ) -> Exhausted | None:
        """The first exhausted budget this activity falls under, or None."""
        with self._lock:
            for scope, key in self.keys(session_id, developer_id, project_id, day):
                limit = self.config.limit(scope)
                if limit and self._spent[scope, key] >= limit:
                    return Exhausted(scope, key, limit, self._spent[scope, key])
        return None
