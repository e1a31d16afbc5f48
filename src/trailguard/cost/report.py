"""What the agents' model requests cost, read back from the ledger: totals per tool call,
model, day, developer and project. Shared by ``trailguard cost`` and the console, so both answer
the same question the same way."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from trailguard.cost.accounting import COST_ATTRIBUTION, is_correction
from trailguard.cost.usage import split_evenly
from trailguard.retrieval import EventQuery, query_events
from trailguard.store.base import Store

__all__ = ["cost_report", "read_cost"]


def cost_report(
    documents: list[dict[str, Any]],
    tools: dict[str, str],
    attributions: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Totals from ``cost`` events: per tool call (a response's cost split evenly over the tool
    calls it emitted, also when a later source named them: ``attributions``, by request or
    message id), overhead (responses that called no tool), and per model."""
    attributions = attributions or {}
    total = Decimal(0)
    overhead = Decimal(0)
    unknown = 0
    per_call: dict[str, dict[str, Any]] = {}
    rollups: dict[str, dict[str, Decimal]] = {
        "perDay": defaultdict(Decimal),
        "perDeveloper": defaultdict(Decimal),
        "perProject": defaultdict(Decimal),
    }
    per_model: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "requests": 0,
            "priced": 0,
            "inputTokens": 0,
            "outputTokens": 0,
            "cacheWriteTokens": 0,
            "cacheReadTokens": 0,
            "usd": Decimal(0),
        }
    )
    requests = 0
    for event in documents:
        model = event.get("model") or "(unknown)"
        row = per_model[model]
        if not is_correction(event):  # a correction charges more for a request already counted
            requests += 1
            row["requests"] += 1
        row["inputTokens"] += event.get("inputTokens", 0)
        row["outputTokens"] += event.get("outputTokens", 0)
        row["cacheWriteTokens"] += event.get("cacheWrite5mTokens", 0) + event.get(
            "cacheWrite1hTokens", 0
        )
        row["cacheReadTokens"] += event.get("cacheReadTokens", 0)
        if event.get("costUsd") is None:
            unknown += 1
            continue
        row["priced"] += 1
        amount = Decimal(str(event["costUsd"]))
        row["usd"] += amount
        total += amount
        rollups["perDay"][event["timestamp"][:10]] += amount
        rollups["perDeveloper"][event.get("developerId") or "(unknown)"] += amount
        rollups["perProject"][event.get("projectId") or "(unknown)"] += amount
        tool_use_ids = event.get("toolUseIds") or attributions.get(event.get("requestId") or "", [])
        if not tool_use_ids:
            overhead += amount
            continue
        tokens = event.get("outputTokens", 0) // len(tool_use_ids)
        for tool_use_id, share in zip(
            tool_use_ids, split_evenly(amount, len(tool_use_ids)), strict=True
        ):
            entry = per_call.setdefault(
                tool_use_id,
                {
                    "toolUseId": tool_use_id,
                    "tool": tools.get(tool_use_id),
                    "outputTokens": 0,
                    "usd": Decimal(0),
                },
            )
            entry["usd"] += share
            entry["outputTokens"] += tokens
    return {
        "totalUsd": float(round(total, 6)),
        "overheadUsd": float(round(overhead, 6)),
        "requests": requests,
        "unknownCostRequests": unknown,
        "perToolCall": [{**entry, "usd": float(entry["usd"])} for entry in per_call.values()],
        "perModel": {
            # A model whose every request was unpriced has an unknown cost, not $0.
            model: {key: value for key, value in row.items() if key != "priced"}
            | {"usd": float(round(row["usd"], 6)) if row["priced"] else None}
            for model, row in per_model.items()
        },
        **{
            name: {key: float(round(usd, 6)) for key, usd in sorted(values.items())}
            for name, values in rollups.items()
        },
    }


def read_cost(
    store: Store,
    *,
    session: str | None = None,
    developer: str | None = None,
    project: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """The :func:`cost_report` of the ``cost`` events matching the filters (the CLI's and the
    console's), with the tool names of the calls they paid for and the attributions made later.

    Raises QueryError (an InvalidInputError) naming a filter that cannot be used.
    """
    filters: dict[str, Any] = {
        "session": session,
        "developer": developer,
        "project": project,
        "since": since,
        "until": until,
    }
    costs = EventQuery.build(**filters, event_type="cost")
    invocations = EventQuery.build(**filters, event_type="tool_invocation")
    late = EventQuery.build(session=session, event_type="agent_event")
    documents = list(query_events(store, costs))
    tools = {
        e["toolUseId"]: e["tool"] for e in query_events(store, invocations) if e.get("toolUseId")
    }
    attributions: dict[str, list[str]] = {}
    for event in query_events(store, late):
        payload = event.get("payload") or {}
        if event.get("name") == COST_ATTRIBUTION and payload.get("toolUseIds"):
            for key in (payload.get("requestId"), payload.get("messageId")):
                if key:
                    attributions[key] = list(payload["toolUseIds"])
    return cost_report(documents, tools, attributions)
