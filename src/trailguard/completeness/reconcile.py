"""Reconciling what each source saw of a session's tool calls, from the ledger's own events.

Sources: the hooks (``tool_invocation`` / ``tool_result`` from ``hook``, ``spool`` or ``ingest``)
and three that do not depend on them: the API proxy (``proxy.tool_uses``: each ``tool_use`` block
the model emitted, with its tool and input), telemetry (``telemetry.tool_decision`` /
``telemetry.tool_result``) and the transcript the command client reads (``transcript.tool_uses``).
``cost`` events and late ``cost_attribution`` records name tool calls too.

The rule (docs/threat-model.md, "Completeness"): only a hook's ``tool_invocation`` for the id, in
the session's own ledger, records a call. Another source can add a call to reconcile, never close
one, so a forged proxy or telemetry claim can make a session look *less* complete, never more.

A call another source saw is **due** once the agent must have asked its hooks: when the same
agent's next model response came through the proxy, when telemetry reports its result, when the
session ended, or ``max_wait`` after it was seen. Due for ``grace`` without a ``tool_invocation``
is a gap. The same :class:`Reconciler` feeds the gateway's live alerts and every report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from trailguard.completeness import hookconfig
from trailguard.events import parse_timestamp

HOOK_SOURCES: Final = frozenset({"hook", "spool", "ingest"})
OTHER_SOURCES: Final = ("proxy", "otlp", "transcript")
SOURCES: Final = ("hook", *OTHER_SOURCES)
PROXY_TOOL_USES: Final = "proxy.tool_uses"
TRANSCRIPT_TOOL_USES: Final = "transcript.tool_uses"
TELEMETRY_DECISION: Final = "telemetry.tool_decision"
TELEMETRY_RESULT: Final = "telemetry.tool_result"
HOOK_CONFIG_KEY: Final = "trailguardHookConfig"

DEFAULT_GRACE: Final = timedelta(seconds=5)
DEFAULT_MAX_WAIT: Final = timedelta(minutes=15)
"""A call the model asked for is run within this long, or its session moves on."""
DEFAULT_UNAUDITED_GRACE: Final = timedelta(seconds=3)

GapKind = Literal["no_hook", "no_result", "result_without_invocation", "input_mismatch"]


@dataclass
class Call:
    """One tool_use id of a session, as every source saw it."""

    tool_use_id: str
    tool: str | None = None
    input: Any = None
    """The input as a source other than the hooks saw it (the proxy's is the model's own)."""
    input_source: str | None = None
    agent_id: str | None = None
    agent_type: str | None = None
    seen_by: dict[str, str] = field(default_factory=dict)
    """Source → when it first saw the call (gateway time)."""
    proxy_seq: int | None = None
    ran_at: str | None = None
    """When a source other than the hooks said the tool ran (telemetry's tool_result)."""
    invoked_at: str | None = None
    decision: str | None = None
    hook_input: Any = None
    hook_input_whole: bool = True
    resolved: str | None = None
    """``success``, ``error`` or ``denied`` (from the hooks)."""
    result_at: str | None = None
    gap_alerted: bool = False
    mismatch_alerted: bool = False
    mismatch_checked: bool = False
    """The hook's and the proxy's inputs were both known and compared once."""

    @property
    def others(self) -> list[str]:
        return [s for s in OTHER_SOURCES if s in self.seen_by]

    @property
    def first_seen_elsewhere(self) -> str | None:
        times = [self.seen_by[s] for s in self.others]
        return min(times) if times else None

    def mismatched_keys(self) -> list[str]:
        """Keys whose value the hook reported differently from the model's own tool_use."""
        if (
            self.input_source != "proxy"
            or not isinstance(self.input, dict)
            or not isinstance(self.hook_input, dict)
            or not self.hook_input_whole
        ):
            return []
        return sorted(
            key
            for key, value in self.input.items()
            if key in self.hook_input and self.hook_input[key] != value
        )


@dataclass
class Finding:
    """A weakening of trailguard's hooks, seen in a hook configuration summary."""

    at: str
    what: str
    """``session_start`` or ``config_change``."""
    weakenings: list[str]
    compared_with: str | None
    """The session whose configuration this one was compared with (None: an absolute check)."""
    alerted: bool = False

    @property
    def key(self) -> str:
        return f"{self.what}@{self.at}"


@dataclass
class SessionState:
    session_id: str
    developer_id: str | None = None
    project_id: str | None = None
    cwd: str | None = None
    hooked: bool = False
    """Some hook of this session reached the ledger."""
    first_other_at: str | None = None
    """When model traffic (proxy) or telemetry for the session was first recorded."""
    other_sources: set[str] = field(default_factory=set)
    started_at: str | None = None
    ended_at: str | None = None
    last_at: str | None = None
    calls: dict[str, Call] = field(default_factory=dict)
    agents: dict[str, str | None] = field(default_factory=dict)
    """Subagent id → its type (from SubagentStart/Stop, tool calls and proxy headers)."""
    response_seqs: dict[str, list[int]] = field(default_factory=dict)
    """Proxy responses with tool calls, per agent ('' is the main agent), in seq order."""
    hook_config: dict[str, Any] | None = None
    start_config_sha: str | None = None
    findings: list[Finding] = field(default_factory=list)
    unaudited_alerted: bool = False
    refused_requests: int = 0

    def call(self, tool_use_id: str) -> Call:
        found = self.calls.get(tool_use_id)
        if found is None:
            found = self.calls[tool_use_id] = Call(tool_use_id)
        return found

    # -- judgement -----------------------------------------------------------------------------

    def due_at(self, call: Call, max_wait: timedelta) -> datetime | None:
        """When the hooks must have seen ``call`` (None: no other source saw it)."""
        first = call.first_seen_elsewhere
        if first is None:
            return None
        candidates = [parse_timestamp(first) + max_wait]
        if call.ran_at is not None:
            candidates.append(parse_timestamp(call.ran_at))
        if self.ended_at is not None:
            candidates.append(parse_timestamp(self.ended_at))
        if call.proxy_seq is not None:
            later = [
                seq
                for seq in self.response_seqs.get(call.agent_id or "", [])
                if seq > call.proxy_seq
            ]
            if later:
                candidates.append(
                    parse_timestamp(first)
                )  # the agent moved on: it ran or refused it
        return min(candidates)

    def missing_hook(
        self, call: Call, now: datetime, *, grace: timedelta, max_wait: timedelta
    ) -> bool:
        if call.invoked_at is not None:
            return False
        due = self.due_at(call, max_wait)
        return due is not None and now >= due + grace

    def unaudited(self, now: datetime, grace: timedelta) -> bool:
        """Model traffic or telemetry, and no hook at all, for ``grace``."""
        return (
            not self.hooked
            and self.first_other_at is not None
            and now >= parse_timestamp(self.first_other_at) + grace
        )


class Reconciler:
    """Incremental: ``add`` each event document of the ledger in ``seq`` order."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionState] = {}
        self.places: dict[tuple[str | None, str], tuple[str, dict[str, Any]]] = {}
        """(developer, cwd) → (session, hook configuration) of the latest session there."""
        self.new_findings: list[tuple[SessionState, Finding]] = []
        """Findings made since the caller last cleared the list (for live alerts)."""
        self.touched: set[str] = set()
        """Sessions an event was added to since the caller last cleared the set."""

    def session(self, session_id: str) -> SessionState:
        found = self.sessions.get(session_id)
        if found is None:
            found = self.sessions[session_id] = SessionState(session_id)
        return found

    def add_all(self, documents: Iterable[Mapping[str, Any]]) -> Reconciler:
        for document in documents:
            self.add(document)
        return self

    def add(self, document: Mapping[str, Any]) -> None:
        session_id = document.get("sessionId")
        if not isinstance(session_id, str):
            return
        state = self.session(session_id)
        self.touched.add(session_id)
        kind = document.get("eventType")
        source = document.get("source")
        timestamp = str(document.get("timestamp"))
        state.last_at = timestamp
        state.developer_id = state.developer_id or document.get("developerId")
        state.project_id = state.project_id or document.get("projectId")
        if source in HOOK_SOURCES:
            state.hooked = True
        elif source in ("proxy", "otlp") and kind in ("cost", "agent_event"):
            state.first_other_at = state.first_other_at or timestamp
            state.other_sources.add(str(source))
        handler = _HANDLERS.get(str(kind))
        if handler is not None:
            handler(self, state, document, timestamp)

    # -- per event type ------------------------------------------------------------------------

    def _session_start(self, state: SessionState, doc: Mapping[str, Any], at: str) -> None:
        state.started_at = state.started_at or at
        state.cwd = doc.get("cwd") if isinstance(doc.get("cwd"), str) else state.cwd
        config = doc.get("hookConfig")
        if not hookconfig.usable(config):
            return
        assert isinstance(config, dict)
        place = (state.developer_id, state.cwd) if state.cwd else None
        previous = self.places.get(place) if place else None
        if previous is not None and previous[0] == state.session_id:
            previous = None  # a resumed session compares with what came before it
        weakened = hookconfig.weakenings(config, previous[1] if previous else None)
        if weakened:
            self._finding(
                state,
                Finding(at, "session_start", weakened, previous[0] if previous else None),
            )
        state.hook_config = config
        state.start_config_sha = config.get("sha256") if isinstance(config, dict) else None
        if place is not None:
            self.places[place] = (state.session_id, config)

    def _agent_event(self, state: SessionState, doc: Mapping[str, Any], at: str) -> None:
        name = doc.get("name")
        payload = doc.get("payload") or {}
        source = doc.get("source")
        agent_id = doc.get("agentId")
        if isinstance(agent_id, str):
            state.agents.setdefault(agent_id, None)
            if isinstance(doc.get("agentType"), str):
                state.agents[agent_id] = doc["agentType"]
        if name == PROXY_TOOL_USES and source == "proxy":
            seq = doc.get("seq")
            named = payload.get("agentId")
            key: str = named if isinstance(named, str) else ""
            if key:
                state.agents.setdefault(key, None)
            if isinstance(seq, int):
                state.response_seqs.setdefault(key, []).append(seq)
            for use in payload.get("toolUses") or ():
                if not isinstance(use, dict) or not isinstance(use.get("id"), str):
                    continue
                call = state.call(use["id"])
                call.seen_by.setdefault("proxy", at)
                call.tool = call.tool or _text(use.get("tool"))
                if call.input_source != "proxy":
                    call.input, call.input_source = use.get("input"), "proxy"
                call.agent_id = call.agent_id or key or None
                if isinstance(seq, int) and call.proxy_seq is None:
                    call.proxy_seq = seq
        elif name in (TELEMETRY_DECISION, TELEMETRY_RESULT) and source == "otlp":
            tool_use_id = payload.get("tool_use_id")
            if isinstance(tool_use_id, str) and tool_use_id:
                call = state.call(tool_use_id)
                call.seen_by.setdefault("otlp", at)
                call.tool = call.tool or _text(payload.get("tool_name"))
                if name == TELEMETRY_RESULT:
                    call.ran_at = call.ran_at or at
                if call.input is None and isinstance(payload.get("tool_parameters"), str):
                    call.input, call.input_source = payload["tool_parameters"], "otlp"
        elif name == TRANSCRIPT_TOOL_USES and source == "transcript":
            for tool_use_id in payload.get("toolUseIds") or ():
                if isinstance(tool_use_id, str):
                    state.call(tool_use_id).seen_by.setdefault("transcript", at)
        elif name == "cost_attribution":
            seen = payload.get("source")
            if seen in OTHER_SOURCES:
                for tool_use_id in payload.get("toolUseIds") or ():
                    if isinstance(tool_use_id, str):
                        state.call(tool_use_id).seen_by.setdefault(str(seen), at)
        elif name == "ConfigChange" and source in HOOK_SOURCES:
            config = payload.get(HOOK_CONFIG_KEY)
            if not hookconfig.usable(config):
                return
            assert isinstance(config, dict)
            weakened = hookconfig.weakenings(config, state.hook_config)
            if weakened:
                file_path = payload.get("file_path")
                file_path = file_path if isinstance(file_path, str) else "(file not named)"
                where = f" ({file_path})"
                self._finding(
                    state,
                    Finding(
                        at,
                        "config_change",
                        [w if file_path in w else w + where for w in weakened],
                        state.session_id,
                    ),
                )
            state.hook_config = config
            if state.cwd:
                self.places[(state.developer_id, state.cwd)] = (state.session_id, config)

    def _tool_invocation(self, state: SessionState, doc: Mapping[str, Any], at: str) -> None:
        tool_use_id = doc.get("toolUseId")
        if not isinstance(tool_use_id, str) or doc.get("source") not in HOOK_SOURCES:
            return
        call = state.call(tool_use_id)
        call.invoked_at = call.invoked_at or at
        call.tool = doc.get("tool") or call.tool
        call.decision = doc.get("policyResult")
        call.hook_input = doc.get("input")
        call.hook_input_whole = not doc.get("inputTruncated")
        _note_agent(state, call, doc)
        if call.decision == "denied":
            call.resolved = call.resolved or "denied"

    def _tool_result(self, state: SessionState, doc: Mapping[str, Any], at: str) -> None:
        tool_use_id = doc.get("toolUseId")
        if not isinstance(tool_use_id, str) or doc.get("source") not in HOOK_SOURCES:
            return
        call = state.call(tool_use_id)
        call.resolved = str(doc.get("status"))
        call.result_at = at
        call.tool = call.tool or doc.get("tool")
        _note_agent(state, call, doc)

    def _cost(self, state: SessionState, doc: Mapping[str, Any], at: str) -> None:
        source = doc.get("source")
        if source not in OTHER_SOURCES:
            return
        for tool_use_id in doc.get("toolUseIds") or ():
            if isinstance(tool_use_id, str):
                state.call(tool_use_id).seen_by.setdefault(str(source), at)

    def _alert(self, state: SessionState, doc: Mapping[str, Any], at: str) -> None:
        alert_type = doc.get("alertType")
        details = doc.get("details") or {}
        if alert_type == "hook_gap" and isinstance(details.get("toolUseId"), str):
            state.call(details["toolUseId"]).gap_alerted = True
        elif alert_type == "hook_mismatch" and isinstance(details.get("toolUseId"), str):
            state.call(details["toolUseId"]).mismatch_alerted = True
        elif alert_type == "unaudited_session":
            state.unaudited_alerted = True
            if details.get("refused"):
                state.refused_requests += 1
        elif alert_type == "hooks_disabled":
            for finding in state.findings:
                if finding.key == details.get("findingKey"):
                    finding.alerted = True

    def _session_end(self, state: SessionState, doc: Mapping[str, Any], at: str) -> None:
        state.ended_at = state.ended_at or at

    def _finding(self, state: SessionState, finding: Finding) -> None:
        state.findings.append(finding)
        self.new_findings.append((state, finding))


def _note_agent(state: SessionState, call: Call, doc: Mapping[str, Any]) -> None:
    agent_id = doc.get("agentId")
    if isinstance(agent_id, str):
        call.agent_id = agent_id
        agent_type = doc.get("agentType")
        state.agents.setdefault(agent_id, None)
        if isinstance(agent_type, str):
            call.agent_type = agent_type
            state.agents[agent_id] = agent_type


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_HANDLERS = {
    "session_start": Reconciler._session_start,
    "agent_event": Reconciler._agent_event,
    "tool_invocation": Reconciler._tool_invocation,
    "tool_result": Reconciler._tool_result,
    "cost": Reconciler._cost,
    "alert": Reconciler._alert,
    "session_end": Reconciler._session_end,
}
