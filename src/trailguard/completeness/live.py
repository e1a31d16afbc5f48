"""What the gateway records for completeness as requests go through: the proxy's sightings of
each ``tool_use`` block, the transcript's tool ids, and — with ``--require-hooks`` — the refusal
of model requests for sessions no hook has reported."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

from pydantic import JsonValue

from trailguard.capture.anthropic_proxy import ModelRequestRecord
from trailguard.capture.claude_code import DEFAULT_INPUT_CAP, cap_value
from trailguard.capture.hook_request import UsageEntry
from trailguard.completeness.reconcile import PROXY_TOOL_USES, TRANSCRIPT_TOOL_USES
from trailguard.completeness.watcher import unaudited_alert
from trailguard.events import AgentEvent, Event
from trailguard.gateway.sessions import SessionRegistry

MAX_ALERTED_SESSIONS: Final = 10_000


class ProxySightings:
    """Durable records of the tool calls model responses asked for: one ``proxy.tool_uses``
    event per response with tool_use blocks, and one (with none) for the response that follows
    such a response in the same session and agent: the mark that the agent moved on, so the
    calls before it must have been run or refused by now. Attributed to the session the request
    named, a claim of the client: it can add calls for the hooks to account for, never account
    for one."""

    def __init__(self, sessions: SessionRegistry) -> None:
        self.sessions = sessions
        self._outstanding: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._unknown: OrderedDict[str, None] = OrderedDict()
        """Sessions no hook reported whose model traffic was recorded once already."""
        self._lock = threading.Lock()

    def _first_unknown(self, record: ModelRequestRecord, summary: object) -> bool:
        """The first response of a session no hook has reported: recorded even without tool
        calls, so the session's model traffic is in the ledger (``unaudited_session``), whoever
        pays for it."""
        if summary is not None or record.session_id is None:
            return False
        with self._lock:
            if record.session_id in self._unknown:
                return False
            self._unknown[record.session_id] = None
            while len(self._unknown) > MAX_ALERTED_SESSIONS:
                self._unknown.popitem(last=False)
        return True

    def event_for(self, record: ModelRequestRecord) -> AgentEvent | None:
        if record.session_id is None or record.message_id is None:
            return None
        key = (record.session_id, record.agent_id or "")
        with self._lock:
            followed = key in self._outstanding
            if record.tool_uses:
                self._outstanding[key] = None
                self._outstanding.move_to_end(key)
                while len(self._outstanding) > MAX_ALERTED_SESSIONS:
                    self._outstanding.popitem(last=False)
            elif followed:
                del self._outstanding[key]
        summary = self.sessions.get(record.session_id)
        if not record.tool_uses and not followed and not self._first_unknown(record, summary):
            return None
        uses: list[JsonValue] = []
        for use in record.tool_uses:
            capped = cap_value(use.input, DEFAULT_INPUT_CAP)
            entry: dict[str, JsonValue] = {"id": use.id, "tool": use.name, "input": capped.value}
            if use.input_truncated or capped.truncated:
                entry["inputTruncated"] = True
            uses.append(entry)
        payload: dict[str, JsonValue] = {
            "requestId": record.request_id,
            "messageId": record.message_id,
            "agentId": record.agent_id,
            "parentAgentId": record.parent_agent_id,
            "model": record.model,
            "toolUses": uses,
        }
        return AgentEvent(
            session_id=record.session_id,
            developer_id=summary.developer_id if summary else None,
            project_id=summary.project_id if summary else None,
            name=PROXY_TOOL_USES,
            agent_id=record.agent_id,
            payload=payload,
            source="proxy",
        )


def transcript_sighting(session_id: str, entries: tuple[UsageEntry, ...]) -> AgentEvent | None:
    """The tool ids the hook client read from the transcript (a claim of the same client)."""
    ids: list[JsonValue] = list([i for entry in entries for i in entry.tool_use_ids][:500])
    if not ids:
        return None
    return AgentEvent(
        session_id=session_id,
        name=TRANSCRIPT_TOOL_USES,
        payload={"toolUseIds": ids},
        source="transcript",
    )


class HookRequirement:
    """``--require-hooks``: a model request through the proxy is refused unless a hook of its
    session has reached the gateway (and the session was not killed). The first refusal of a
    session records an ``unaudited_session`` alert."""

    def __init__(self, sessions: SessionRegistry, *, required: bool) -> None:
        self.sessions = sessions
        self.required = required
        self._alerted: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def refusal(self, session_id: str | None) -> str | None:
        if not self.required:
            return None
        if session_id is None:
            return (
                "trailguard: this model request names no Claude Code session "
                "(X-Claude-Code-Session-Id), so it cannot be tied to an audited session; the "
                "gateway runs with --require-hooks"
            )
        summary = self.sessions.get(session_id)
        if summary is None:
            return (
                f"trailguard: no audit hook has reported session {session_id}: trailguard's "
                "hooks are missing or disabled (install them with `trailguard install`); the "
                "gateway runs with --require-hooks, so this session cannot use the model"
            )
        if self.sessions.kill_request(session_id) is not None:
            return f"trailguard: session {session_id} was killed"
        return None

    def refusal_alert(self, session_id: str | None) -> list[Event]:
        """The alert for a refused session, once per session (bounded memory)."""
        key = session_id or "(no session id)"
        with self._lock:
            if key in self._alerted:
                return []
            self._alerted[key] = None
            while len(self._alerted) > MAX_ALERTED_SESSIONS:
                self._alerted.popitem(last=False)
        if session_id is not None and self.sessions.get(session_id) is not None:
            return []  # a killed session: already recorded as such
        return [unaudited_alert(key, ["proxy"], first_at=None, refused=True)]
