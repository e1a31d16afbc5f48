"""Stored events as OCSF 1.5.0 events (https://schema.ocsf.io/1.5.0), for ``format=ocsf``.

- Bash ``tool_invocation`` (allowed or asked) → Process Activity 1007, Launch (1);
  Bash ``tool_result`` → Process Activity 1007, Terminate (2).
- other ``tool_invocation`` → API Activity 6003; activity from the operations' access (read →
  Read 2, write → Update 3, delete → Delete 4, admin → Other 99), without operations from the
  tool (Read/Grep/WebFetch... → Read, Write/Edit → Update, else Unknown 0); other
  ``tool_result`` → API Activity 6003 with ``status_id`` from the result.
- ``infra_operation`` → API Activity 6003: ``api.operation`` the IAM-style action,
  ``api.service.name`` its kind, ``resources`` its resource.
- ``audit_access`` → API Activity 6003, Read (2), Failure when refused.
- a denied ``tool_invocation`` → Detection Finding 2004, Create (1), the rule as
  ``finding_info.analytic``; ``alert`` → Detection Finding 2004, the alert type as
  ``finding_info.types``.
- ``session_start`` / ``session_end`` → Application Lifecycle 6002 (the agent), Start (3) /
  Stop (4); ``gateway_start`` / ``gateway_stop`` → the same for trailguard itself.
- ``token_change`` → Entity Management 3004, Create (1) / Delete (4).
- anything else (``prompt``, ``cost``, ``checkpoint``...) → Base Event 0, Other (99), the whole
  event in ``unmapped``.

Every event has ``metadata.uid`` = ``eventId``, ``metadata.sequence`` = ``seq``,
``metadata.correlation_uid`` = ``sessionId``, ``time`` in epoch milliseconds,
``type_uid = class_uid * 100 + activity_id``, and the trailguard fields OCSF has no place for
in ``unmapped`` (a checkpoint's signed note is ``unmapped.note``). Hook events do not say which
machine the agent runs on (the session's start records what it claims), so the endpoint and
device OCSF requires are ``unknown``.
"""

from __future__ import annotations

from typing import Any, Final

from trailguard import __version__
from trailguard.siem.risk import epoch_ms, ocsf_severity_id

OCSF_VERSION: Final = "1.5.0"

_PRODUCT: Final = {"name": "trailguard", "vendor_name": "trailguard", "version": __version__}

# (class_uid, category_uid, class name, category name)
BASE_EVENT: Final = (0, 0, "Base Event", "Uncategorized")
PROCESS_ACTIVITY: Final = (1007, 1, "Process Activity", "System Activity")
DETECTION_FINDING: Final = (2004, 2, "Detection Finding", "Findings")
ENTITY_MANAGEMENT: Final = (3004, 3, "Entity Management", "Identity & Access Management")
APPLICATION_LIFECYCLE: Final = (6002, 6, "Application Lifecycle", "Application Activity")
API_ACTIVITY: Final = (6003, 6, "API Activity", "Application Activity")

_API_ACTIVITY_BY_ACCESS: Final = {
    "read": (2, "Read"),
    "write": (3, "Update"),
    "delete": (4, "Delete"),
}
_READ_TOOLS: Final = frozenset({"Read", "Glob", "Grep", "LS", "WebFetch", "WebSearch"})
_WRITE_TOOLS: Final = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
_ACCESS_ORDER: Final = ("read", "write", "delete", "admin")
_UNKNOWN_ENDPOINT: Final = {"name": "unknown"}
_UNKNOWN_DEVICE: Final = {"type_id": 0, "type": "Unknown", "name": "unknown"}
_STATUS: Final = {"success": (1, "Success"), "error": (2, "Failure"), "denied": (2, "Failure")}
_MAX_TEXT: Final = 8000


def _text(value: Any, limit: int = _MAX_TEXT) -> str:
    if isinstance(value, str):
        text = value
    else:
        import orjson

        text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[:limit] + "..."


def _envelope(
    doc: dict[str, Any], klass: tuple[int, int, str, str], activity: tuple[int, str]
) -> dict[str, Any]:
    class_uid, category_uid, class_name, category_name = klass
    activity_id, activity_name = activity
    severity_id = ocsf_severity_id(doc)
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": _PRODUCT,
        "uid": doc["eventId"],
        "sequence": doc["seq"],
        "log_name": "trailguard ledger",
        "original_time": doc.get("timestamp"),
    }
    if doc.get("sessionId"):
        metadata["correlation_uid"] = doc["sessionId"]
    return {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "time": epoch_ms(doc.get("timestamp")),
        "severity_id": severity_id,
        "severity": _SEVERITY_NAMES[severity_id],
        "metadata": metadata,
    }


_SEVERITY_NAMES: Final = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}


def _actor(doc: dict[str, Any]) -> dict[str, Any]:
    actor: dict[str, Any] = {"app_name": "claude-code"}
    if doc.get("developerId"):
        actor["user"] = {"uid": doc["developerId"], "name": doc["developerId"]}
    if doc.get("sessionId"):
        actor["session"] = {"uid": doc["sessionId"]}
    return actor


def _unmapped(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    found = {
        key: doc[key]
        for key in ("eventType", "projectId", "source", *keys)
        if doc.get(key) is not None
    }
    return found


def _resources(operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    resources = []
    for operation in operations:
        if operation.get("resource"):
            resources.append(
                {
                    "uid": _text(operation["resource"], 2000),
                    "type": operation.get("kind", "resource"),
                }
            )
    return resources


def _api_activity_id(tool: str | None, operations: list[dict[str, Any]]) -> tuple[int, str]:
    if operations:
        access = max((op.get("access", "read") for op in operations), key=_ACCESS_ORDER.index)
        return _API_ACTIVITY_BY_ACCESS.get(access, (99, "Admin"))
    if tool in _READ_TOOLS:
        return 2, "Read"
    if tool in _WRITE_TOOLS:
        return 3, "Update"
    return 0, "Unknown"


def _api(operation: str, service: str | None) -> dict[str, Any]:
    api: dict[str, Any] = {"operation": _text(operation, 1000)}
    if service:
        api["service"] = {"name": service}
    return api


def _command(doc: dict[str, Any]) -> str | None:
    tool_input = doc.get("input")
    if isinstance(tool_input, dict) and isinstance(tool_input.get("command"), str):
        return str(tool_input["command"])
    return None


def _tool_invocation(doc: dict[str, Any]) -> dict[str, Any]:
    operations = doc.get("operations") or []
    tool = doc.get("tool")
    policy = _unmapped(
        doc, "policyResult", "policyRule", "policyReason", "policyVersion", "toolUseId", "agentId"
    )
    if doc.get("policyResult") == "denied":
        event = _envelope(doc, DETECTION_FINDING, (1, "Create"))
        rule = doc.get("policyRule") or "unnamed rule"
        event |= {
            "finding_info": {
                "uid": doc["eventId"],
                "title": _text(f"{tool} call denied by policy rule {rule}", 500),
                "desc": _text(doc.get("policyReason") or f"denied by {rule}", 2000),
                "types": ["policy_denial"],
                "analytic": {"name": _text(rule, 500), "type_id": 1, "type": "Rule"},
                "created_time": epoch_ms(doc.get("timestamp")),
            },
            "is_alert": True,
            "status_id": 1,
            "status": "New",
            "message": _text(f"{tool}: {_command(doc) or _text(doc.get('input'), 2000)}"),
            "unmapped": policy,
        }
        if resources := _resources(operations):
            event["resources"] = resources
        return event
    command = _command(doc)
    if tool == "Bash" and command is not None:
        event = _envelope(doc, PROCESS_ACTIVITY, (1, "Launch"))
        event |= {
            "actor": _actor(doc),
            "device": _UNKNOWN_DEVICE,
            "process": {"uid": doc.get("toolUseId") or doc["eventId"], "cmd_line": _text(command)},
            "message": _text(f"Bash: {command}", 2000),
            "unmapped": policy | _operations(operations),
        }
        return event
    event = _envelope(doc, API_ACTIVITY, _api_activity_id(tool, operations))
    first = operations[0] if operations else None
    event |= {
        "actor": _actor(doc),
        "api": _api(
            first["action"] if first else str(tool), first["kind"] if first else "claude-code"
        ),
        "src_endpoint": _UNKNOWN_ENDPOINT,
        "message": _text(f"{tool}: {_text(doc.get('input'), 2000)}", 2000),
        "unmapped": policy | _operations(operations),
    }
    if resources := _resources(operations):
        event["resources"] = resources
    return event


def _operations(operations: list[dict[str, Any]]) -> dict[str, Any]:
    if not operations:
        return {}
    return {"operations": [{k: v for k, v in op.items() if k != "raw"} for op in operations]}


def _tool_result(doc: dict[str, Any]) -> dict[str, Any]:
    status_id, status = _STATUS.get(doc.get("status", ""), (0, "Unknown"))
    extra = _unmapped(doc, "toolUseId", "agentId", "durationMs", "outputTruncated", "outputLength")
    detail = (
        _text(doc.get("error") or doc.get("output"), 2000)
        if doc.get("error") or doc.get("output")
        else None
    )
    if doc.get("tool") == "Bash":
        event = _envelope(doc, PROCESS_ACTIVITY, (2, "Terminate"))
        event |= {
            "actor": _actor(doc),
            "device": _UNKNOWN_DEVICE,
            "process": {"uid": doc.get("toolUseId") or doc["eventId"]},
        }
    else:
        event = _envelope(doc, API_ACTIVITY, _api_activity_id(doc.get("tool"), []))
        event |= {
            "actor": _actor(doc),
            "api": _api(str(doc.get("tool")), "claude-code"),
            "src_endpoint": _UNKNOWN_ENDPOINT,
        }
    event |= {"status_id": status_id, "status": status, "unmapped": extra}
    if detail:
        event["status_detail"] = detail
    if doc.get("durationMs") is not None:
        event["duration"] = doc["durationMs"]
    return event


def _infra_operation(doc: dict[str, Any]) -> dict[str, Any]:
    operation = doc.get("operation") or {}
    event = _envelope(doc, API_ACTIVITY, _api_activity_id(None, [operation]))
    event |= {
        "actor": _actor(doc),
        "api": _api(str(operation.get("action")), operation.get("kind")),
        "src_endpoint": _UNKNOWN_ENDPOINT,
        "message": _text(
            f"{operation.get('action')} on {operation.get('resource') or '(no resource)'}", 2000
        ),
        "unmapped": _unmapped(doc, "toolUseId") | _operations([operation]),
    }
    if resources := _resources([operation]):
        event["resources"] = resources
    return event


def _alert(doc: dict[str, Any]) -> dict[str, Any]:
    event = _envelope(doc, DETECTION_FINDING, (1, "Create"))
    event |= {
        "finding_info": {
            "uid": doc["eventId"],
            "title": _text(doc.get("alertType", "alert"), 500),
            "desc": _text(doc.get("message", ""), 4000),
            "types": [_text(doc.get("alertType", "alert"), 200)],
            "analytic": {"name": "trailguard", "type_id": 1, "type": "Rule"},
            "created_time": epoch_ms(doc.get("timestamp")),
        },
        "is_alert": True,
        "status_id": 1,
        "status": "New",
        "message": _text(doc.get("message", "")),
        "unmapped": _unmapped(doc, "alertType", "severity", "details", "developerId"),
    }
    return event


def _lifecycle(doc: dict[str, Any]) -> dict[str, Any]:
    kind = doc["eventType"]
    activity = (3, "Start") if kind.endswith("_start") else (4, "Stop")
    event = _envelope(doc, APPLICATION_LIFECYCLE, activity)
    if kind.startswith("session_"):
        app: dict[str, Any] = {
            "name": doc.get("agent") or "claude-code",
            "vendor_name": "Anthropic",
        }
        if doc.get("agentVersion"):
            app["version"] = doc["agentVersion"]
        extra = _unmapped(
            doc,
            "developerId",
            "reason",
            "rawReason",
            "model",
            "permissionMode",
            "gitRemote",
            "gitBranch",
            "cwd",
            "claimedIdentity",
        )
        message = f"agent session {doc.get('sessionId')} " + (
            "started" if activity[0] == 3 else f"ended: {doc.get('reason')}"
        )
    else:
        app = dict(_PRODUCT)
        if doc.get("version"):
            app["version"] = doc["version"]
        extra = _unmapped(
            doc, "hostname", "pid", "origin", "verifierKey", "reason", "previousStopClean"
        )
        message = f"trailguard gateway {'started' if activity[0] == 3 else 'stopped'}"
    event |= {"app": app, "message": _text(message), "unmapped": extra}
    return event


def _audit_access(doc: dict[str, Any]) -> dict[str, Any]:
    event = _envelope(doc, API_ACTIVITY, (2, "Read"))
    refused = doc.get("outcome") == "refused"
    actor: dict[str, Any] = {"app_name": "trailguard"}
    who = doc.get("developerId") or doc.get("actor")
    if who:
        actor["user"] = {"uid": who, "name": who}
    event |= {
        "actor": actor,
        "api": _api(str(doc.get("action")), "trailguard"),
        "src_endpoint": _UNKNOWN_ENDPOINT,
        "resources": [{"name": "trailguard audit record", "type": "audit_log"}],
        "status_id": 2 if refused else 1,
        "status": "Failure" if refused else "Success",
        "unmapped": _unmapped(doc, "query", "resultCount", "outcome", "actor"),
    }
    return event


def _token_change(doc: dict[str, Any]) -> dict[str, Any]:
    created = doc.get("action") == "created"
    event = _envelope(doc, ENTITY_MANAGEMENT, (1, "Create") if created else (4, "Delete"))
    actor: dict[str, Any] = {"app_name": "trailguard"}
    if doc.get("changedBy"):
        actor["user"] = {"uid": doc["changedBy"], "name": doc["changedBy"]}
    event |= {
        "actor": actor,
        "entity": {
            "uid": doc.get("tokenId"),
            "type": "api_token",
            "name": f"{doc.get('role')} token",
        },
        "message": f"{doc.get('role')} token {doc.get('tokenId')} for "
        f"{doc.get('subjectDeveloperId')} {doc.get('action')}",
        "unmapped": _unmapped(doc, "subjectDeveloperId", "projects", "role"),
    }
    return event


def _base_event(doc: dict[str, Any]) -> dict[str, Any]:
    event = _envelope(doc, BASE_EVENT, (99, "Other"))
    kind = doc.get("eventType")
    message = f"trailguard {kind}"
    if kind == "checkpoint":
        message = f"signed checkpoint of {doc.get('origin')}: tree size {doc.get('treeSize')}"
    event |= {
        "message": message,
        "unmapped": {k: v for k, v in doc.items() if k not in ("eventId", "seq", "timestamp")},
    }
    return event


_MAPPERS: Final = {
    "tool_invocation": _tool_invocation,
    "tool_result": _tool_result,
    "infra_operation": _infra_operation,
    "alert": _alert,
    "session_start": _lifecycle,
    "session_end": _lifecycle,
    "gateway_start": _lifecycle,
    "gateway_stop": _lifecycle,
    "audit_access": _audit_access,
    "token_change": _token_change,
}


def to_ocsf(doc: dict[str, Any]) -> dict[str, Any]:
    """The OCSF event of one stored event (its parsed canonical JSON, with ``seq``)."""
    return _MAPPERS.get(doc.get("eventType", ""), _base_event)(doc)
