"""Scoring redaction on the bytes the ledger stores, for an external corpus of secret cases.

Shared by ``tests/test_redact_external.py`` (an in-process gateway) and
``benchmarks/bench_redaction_corpus.py`` (``trailguard serve`` over HTTP): both send every case
as a Bash and as a Write PreToolUse, then read the ledger back and score what it holds.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXTERNAL = next(
    (
        base / "redaction" / "gitleaks-corpus.jsonl"
        for base in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared"))
        if (base / "redaction" / "gitleaks-corpus.jsonl").is_file()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "redaction" / "gitleaks-corpus.jsonl",
)
"""gitleaks' own rule test cases (see tests/corpus/external/README.md): data from a fetched
public repository, so kept in the steering repo's shared/, not committed here."""
SESSION = "ae1e1885-0000-4000-8000-00000000c0de"
TOOLS = ("Bash", "Write")
WRITE_PATH = "/home/dev/app/config/settings.conf"
_CORE = re.compile(r"[A-Za-z0-9+/=_\-]{12,}")


@dataclass(frozen=True)
class Case:
    id: str
    rule: str
    provider: str
    context: str
    text: str
    secrets: tuple[str, ...]
    contested: tuple[str, ...] = ()

    @property
    def positive(self) -> bool:
        return bool(self.secrets)


def load(path: Path = EXTERNAL) -> tuple[dict[str, Any], list[Case]]:
    """The corpus' provenance line and its cases."""
    provenance: dict[str, Any] = {}
    cases: list[Case] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "_provenance" in row:
            provenance = row["_provenance"]
            continue
        cases.append(
            Case(
                id=row["id"],
                rule=row["rule"],
                provider=row["provider"],
                context=row["context"],
                text=row["text"],
                secrets=tuple(row["secrets"]),
                contested=tuple(row.get("contested", ())),
            )
        )
    return provenance, cases


def tool_use_id(index: int, tool: str) -> str:
    return f"toolu_corpus_{index:05d}_{tool.lower()}"


def payloads(cases: list[Case]) -> Iterator[dict[str, Any]]:
    """A SessionStart, then each case as a Bash command and as a Write of a file."""
    yield {"session_id": SESSION, "hook_event_name": "SessionStart", "source": "startup"}
    for i, case in enumerate(cases):
        for tool in TOOLS:
            tool_input = (
                {"command": case.text}
                if tool == "Bash"
                else {"file_path": WRITE_PATH, "content": case.text}
            )
            yield {
                "session_id": SESSION,
                "hook_event_name": "PreToolUse",
                "tool_name": tool,
                "tool_input": tool_input,
                "tool_use_id": tool_use_id(i, tool),
                "permission_mode": "acceptEdits",
            }


def _escaped(value: str) -> str:
    """``value`` as it appears inside a JSON string of the stored (RFC 8785) bytes."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def stored_secret(secret: str, stored: str) -> bool:
    """Whether the stored bytes still hold ``secret``: all of it, or its longest run of 12+
    token characters (the part that carries the entropy, without the ``key:`` a scanner's
    capture may include)."""
    if _escaped(secret) in stored:
        return True
    cores = _CORE.findall(secret)
    if not cores:
        return False
    return _escaped(max(cores, key=len)) in stored


@dataclass
class Score:
    """Counts per case and tool call (each case is sent twice: Bash and Write)."""

    positives: int = 0
    stored: int = 0
    negatives: int = 0
    changed: int = 0
    contested: int = 0
    contested_changed: int = 0
    missing: int = 0
    by_context: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    by_tool: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    missed: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)
    providers: set[str] = field(default_factory=set)
    tags: Counter[str] = field(default_factory=Counter)

    @property
    def recall(self) -> float:
        return 1 - self.stored / self.positives if self.positives else 1.0

    @property
    def fp_rate(self) -> float:
        return self.changed / self.negatives if self.negatives else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "positives": self.positives,
            "stored_secrets": self.stored,
            "recall": round(self.recall, 4),
            "negatives": self.negatives,
            "negatives_changed": self.changed,
            "fp_rate": round(self.fp_rate, 4),
            "contested": self.contested,
            "contested_changed": self.contested_changed,
            "missing_events": self.missing,
            "providers": len(self.providers),
        }


_TAG = re.compile(r"\[REDACTED:([a-z0-9-]{1,40}):[0-9a-f]{8}\]")


def score(cases: list[Case], bodies: Iterable[bytes]) -> Score:
    """Score the ledger's event bodies against the cases sent by :func:`payloads`."""
    by_use: dict[str, list[str]] = defaultdict(list)
    inputs: dict[str, dict[str, Any]] = {}
    for body in bodies:
        text = body.decode("utf-8")
        event = json.loads(text)
        use = event.get("toolUseId")
        if not use or not use.startswith("toolu_corpus_"):
            continue
        by_use[use].append(text)
        if event.get("eventType") == "tool_invocation":
            inputs[use] = event.get("input") or {}
    result = Score()
    for i, case in enumerate(cases):
        for tool in TOOLS:
            use = tool_use_id(i, tool)
            if use not in inputs:
                result.missing += 1
                continue
            field_name = "command" if tool == "Bash" else "content"
            kept = inputs[use].get(field_name)
            stored = "\n".join(by_use[use])
            result.tags.update(_TAG.findall(stored))
            where = f"{case.id} [{tool}, {case.context}]"
            if case.positive:
                result.positives += 1
                result.providers.add(case.provider)
                leaked = any(stored_secret(s, stored) for s in case.secrets)
                result.by_context[case.context][0] += 1
                result.by_tool[tool][0] += 1
                if leaked:
                    result.stored += 1
                    result.by_context[case.context][1] += 1
                    result.by_tool[tool][1] += 1
                    result.missed.append(where)
            elif case.contested:
                result.contested += 1
                result.contested_changed += kept != case.text
            else:
                result.negatives += 1
                if kept != case.text:
                    result.changed += 1
                    result.false_positives.append(where)
    return result
