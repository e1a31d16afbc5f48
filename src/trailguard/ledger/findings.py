"""What verification reports: one Finding per thing found wrong (a failure) or worth knowing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Finding:
    """One thing verification found wrong (a failure) or worth knowing (a warning)."""

    severity: Literal["failure", "warning"]
    where: str
    """Which entry: ``seq 41``, ``checkpoint at seq 1000``, ``trusted checkpoint``..."""
    problem: str
    expected: str | None = None
    found: str | None = None

    def __str__(self) -> str:
        text = f"{self.where}: {self.problem}"
        if self.expected is not None or self.found is not None:
            text += f" (expected {self.expected}, found {self.found})"
        return text


def failure(where: str, problem: str, expected: Any = None, found: Any = None) -> Finding:
    return Finding(
        "failure",
        where,
        problem,
        None if expected is None else str(expected),
        None if found is None else str(found),
    )
