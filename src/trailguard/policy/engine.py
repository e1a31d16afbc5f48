"""Deciding one tool call with Cedar, before it runs.

Each operation the classifier found is one Cedar request (action = the operation's IAM-style
action, e.g. ``s3:PutObject``), plus one for the tool itself (``tool:Bash``). Forbid overrides
permit. The call is denied if any request is denied by a plain forbid or by no permit matching
(allow-list mode); it is ``ask`` if every forbid that matched is annotated ``@decision("ask")``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cedarpy
import orjson

from trailguard.events import Operation
from trailguard.policy.context_reads import Reads, cut_context
from trailguard.policy.loader import PolicySet

Result = Literal["allowed", "denied", "ask"]
NO_PERMIT_RULE = "default-deny"
"""The rule named when no permit matched (allow-list mode and nothing allowed the action)."""


@dataclass(frozen=True)
class DecisionRequest:
    developer_id: str
    tool: str
    operations: Sequence[Operation]
    project_id: str | None = None
    session_id: str | None = None
    command: str | None = None
    """The raw command or path, for policies on the tool as a whole."""


@dataclass(frozen=True)
class Decision:
    result: Result
    rule: str
    reason: str
    version: str


_UNSAFE_IN_ID = re.compile(r"[^\w.:/@*+=,~$-]")


def _uid(kind: str, identifier: str) -> dict[str, str]:
    """A Cedar entity reference, in cedarpy's structured form (``{"type", "id"}``: no Cedar
    parser run per request, half of the fixed cost of a request). Ids here can be any text (a
    command, a path); they are reduced to a safe alphabet and 512 characters, so a policy names
    a resource as ``Resource::"..."`` with the same id whatever the form; policies match the
    exact text through ``context`` (``context.operation.resource``, ``context.command``)."""
    return {"type": kind, "id": _UNSAFE_IN_ID.sub("_", identifier)[:512]}


def _operation_context(operation: Operation) -> dict[str, Any]:
    return {
        "kind": operation.kind,
        "action": operation.action,
        "resource": operation.resource or "",
        "access": operation.access,
        "risk": operation.risk,
        "flags": list(operation.flags),
        "attributes": dict(operation.attributes),
    }


def _requests(request: DecisionRequest, reads: Reads | None) -> list[tuple[dict[str, Any], str]]:
    """One Cedar request for the tool and one per operation, each with what it is about.

    Each context is cut to what the policies read (``reads``, policy/context_reads.py) and
    given to cedarpy as JSON text (orjson: cedarpy would run ``json.dumps`` on a dict)."""
    # The developer exactly as the token names them (and as the entities that carry their
    # teams do): reduced like a resource id, a principal would stop being a member of its teams.
    principal = {"type": "Developer", "id": request.developer_id}

    def context(full: dict[str, Any]) -> str:
        return orjson.dumps(cut_context(full, reads)).decode()

    common = {
        "tool": request.tool,
        "project": request.project_id or "",
        "session": request.session_id or "",
        "command": request.command or "",
    }
    made = [
        (
            {
                "principal": principal,
                "action": _uid("Action", f"tool:{request.tool}"),
                "resource": _uid("Tool", request.tool),
                "context": context(
                    common | {"operations": [op.action for op in request.operations]}
                ),
            },
            f"tool {request.tool}",
        )
    ]
    for operation in request.operations:
        made.append(
            (
                {
                    "principal": principal,
                    "action": _uid("Action", operation.action),
                    "resource": _uid("Resource", operation.resource or operation.kind),
                    "context": context(common | {"operation": _operation_context(operation)}),
                },
                f"{operation.action} on {operation.resource or operation.kind}",
            )
        )
    return made


def _entities(policy_set: PolicySet, developer_id: str) -> list[dict[str, Any]]:
    teams = policy_set.teams_of(developer_id)
    return [
        {
            "uid": {"type": "Developer", "id": developer_id},
            "attrs": {"teams": teams},
            "parents": [{"type": "Team", "id": team} for team in teams],
        },
        *({"uid": {"type": "Team", "id": team}, "attrs": {}, "parents": []} for team in teams),
    ]


ENTITY_HANDLES_LIMIT = 4096
"""Developers whose parsed entities a policy set keeps at once (then it starts again)."""


def _entity_handle(policy_set: PolicySet, developer_id: str) -> Any:
    """The developer's entities (the developer and their teams), parsed by Cedar once per
    policy set and reused for every call they make: the teams come from the policy set alone,
    so the parsed form cannot change while that set is in force, and goes with it."""
    handles = policy_set.entity_handles
    handle = handles.get(developer_id)
    if handle is None:
        if len(handles) >= ENTITY_HANDLES_LIMIT:
            handles.clear()
        entities = json.dumps(_entities(policy_set, developer_id))
        handle = handles[developer_id] = cedarpy.Entities.from_json_str(entities)
    return handle


def decide(policy_set: PolicySet, request: DecisionRequest) -> Decision:
    """The decision for one tool call under ``policy_set``."""
    requests = _requests(request, policy_set.context_reads)
    results = cedarpy.is_authorized_batch(
        [cedar_request for cedar_request, _ in requests],
        policy_set.cedar,
        _entity_handle(policy_set, request.developer_id),
    )
    denials: list[tuple[str, str, bool, str]] = []  # (rule, reason, ask, what)
    permits: list[str] = []
    for (_, what), outcome in zip(requests, results, strict=True):
        errors = list(outcome.diagnostics.errors)
        rules = [policy_set.rules[p] for p in outcome.diagnostics.reasons if p in policy_set.rules]
        if outcome.allowed:
            permits.extend(rule.name for rule in rules)
            continue
        forbids = [rule for rule in rules if rule.effect == "forbid"]
        if not forbids:
            detail = f" (policy errors: {'; '.join(map(str, errors))})" if errors else ""
            denials.append((NO_PERMIT_RULE, f"no rule permits {what}{detail}", False, what))
            continue
        for rule in forbids:
            reason = rule.reason or f"rule {rule.name} forbids {what}"
            denials.append((rule.name, reason, rule.ask, what))
    if denials:
        hard = [d for d in denials if not d[2]]
        chosen = hard[0] if hard else denials[0]
        return Decision("denied" if hard else "ask", chosen[0], chosen[1], policy_set.version)
    permitted_by = permits[0] if permits else NO_PERMIT_RULE
    return Decision(
        "allowed",
        permitted_by,
        f"permitted by {', '.join(dict.fromkeys(permits)) or permitted_by}",
        policy_set.version,
    )
