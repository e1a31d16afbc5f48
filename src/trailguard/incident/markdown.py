"""The incident report as Markdown (CommonMark with GFM tables), safe to paste into a ticket.

Agent text never becomes markup: inline text has every Markdown punctuation character escaped
and ``< > &`` written as entities (no raw HTML, no link, no image that would load from a
server), longer text sits in fenced code blocks whose fence is longer than any backtick run in
it, and control characters (terminal escapes, bidi overrides) are shown as ``\\uXXXX``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from trailguard.incident.report import Entry, IncidentReport, Shown

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_PUNCTUATION = re.compile(r"([\\`*_\[\]|~!])")
_AUTOLINK = re.compile(r"(?<=:)//|(?<=www)\.|@", re.IGNORECASE)
_BLOCK_START = re.compile(r"^(\s*)([#>+\-=]|\d+[.)])")
_BACKTICKS = re.compile(r"`+")


def _visible(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def inline(value: object) -> str:
    """Text for a Markdown line or table cell, shown literally on one line: emphasis, code,
    link, image and table characters escaped, ``< > &`` as entities (no raw HTML), the starts
    of autolinks (``://``, ``www.``, ``@``) escaped, and no block marker at its start."""
    text = _visible("" if value is None else str(value)).replace("\r", " ").replace("\n", " ")
    text = _PUNCTUATION.sub(r"\\\1", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _AUTOLINK.sub(lambda m: "\\/\\/" if m[0] == "//" else "\\" + m[0], text)
    return _BLOCK_START.sub(lambda m: f"{m[1]}\\{m[2]}", text)


def code(value: object) -> str:
    """An inline code span holding ``value`` literally."""
    text = _visible("" if value is None else str(value)).replace("\r", " ").replace("\n", " ")
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def block(text: str) -> str:
    """A fenced code block holding ``text`` literally."""
    text = _visible(text.replace("\r\n", "\n").replace("\r", "\n"))
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _shown(label: str, value: Shown) -> list[str]:
    caption = f"*{label}*"
    if value.shortened:
        caption += (
            f" (the first {len(value.text)} characters of {value.length} bytes, "
            f"{code(value.sha256)})"
        )
    return [caption, "", block(value.text), ""]


def _entry(entry: Entry) -> list[str]:
    who = f"S{entry.session_number} {code(entry.session_id)}" if entry.session_id else "—"
    if entry.context:
        who = "context"
    flags = [f"**{entry.decision.upper()}**"] if entry.decision in ("denied", "ask") else []
    if entry.risk in ("high", "critical"):
        flags.append(f"**RISK {entry.risk.upper()}**")
    if entry.severity:
        flags.append(f"**{inline(entry.severity)}**")
    head = [f"`{entry.time[11:23]}`", who, f"seq {entry.seq}", code(entry.event_type), *flags]
    lines = [" · ".join(head) + "  ", inline(entry.title)]
    if entry.tool_use_id:
        lines[-1] += f" {code(entry.tool_use_id)}"
    if entry.agent_id:
        lines[-1] += f" (subagent {code(entry.agent_id)})"
    lines[-1] += "  "
    if entry.decision in ("denied", "ask"):
        lines.append(f"rule {code(entry.rule)}: {inline(entry.reason or '')}  ")
    if entry.event_type == "tool_invocation":
        for op in entry.operations:
            lines.append(
                f"operation {code(op.get('action'))} on {code(op.get('resource') or '')} "
                f"({inline(op.get('access'))}, risk {inline(op.get('risk'))})  "
            )
    for note in entry.notes:
        lines.append(f"*{inline(note)}*  ")
    lines.append("")
    if entry.input is not None:
        lines += _shown("prompt" if entry.event_type == "prompt" else "input", entry.input)
    if entry.output is not None:
        lines += _shown("output", entry.output)
    return lines


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(inline(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(report: IncidentReport) -> str:
    header = report.header
    verification = header.verification
    checkpoint = verification.checkpoint
    facts = [
        ["Scope", header.scope.describe()],
        ["Time range", header.time_range],
        ["Events", f"{len(report.timeline)} in scope, {len(report.sessions)} session(s)"],
        ["Generated", f"{header.generated_at} by {header.generated_by} "
                      f"(trailguard {header.trailguard_version})"],
        ["Log", header.origin or "(unknown)"],
        ["Checkpoint", f"tree size {checkpoint.tree_size}, root {checkpoint.root_b64}"
                       if checkpoint else "none"],
        ["Signing key", f"{verification.key.name}+{verification.key.key_id.hex()} "
                        f"({verification.key_source})"],
    ]  # fmt: skip
    lines = ["# Incident report", "", *_table(["", ""], facts)]
    lines += [f"**{inline(verification.summary())}**", ""]
    lines += [f"- {inline(problem)}" for problem in verification.problems[:200]]
    if not verification.key_pinned and "independent" not in verification.key_source:
        lines.append(
            "- The key came from the host being reported on, so this is not independent "
            "evidence: check with a key you keep (--key, or evidence verify of a bundle)."
        )
    lines += ["", "## Sessions", ""]
    for summary in report.sessions:
        r = summary.report
        ended = (
            f"{r.ended_at}: {r.end_reason}"
            + (f" by {r.ended_by}" if r.ended_by else "")
            + (f" ({r.raw_end_reason})" if r.raw_end_reason else "")
            if r.ended_at
            else "still open at the last event"
        )
        lines += [f"### S{summary.number} {code(r.session_id)}", ""]
        lines += _table(
            ["", ""],
            [
                ["Developer", r.developer_id or "(unknown)"],
                ["Claimed by the machine", ", ".join(f"{k} {v}" for k, v in
                                                      r.claimed_identity.items()) or "(none)"],
                ["Project", r.project_id or "(none)"],
                ["Branch", r.git_branch or "(none)"],
                ["Permission mode", r.permission_mode or "(not reported)"],
                ["Model", r.model or "(not reported)"],
                ["Started", r.started_at or "never started (flagged)"],
                ["Ended", ended],
                ["Tool calls", f"{r.tool_calls} ({r.denials} denied, {r.asks} asked)"],
                ["Events", f"{summary.events_in_scope}"],
                ["Cost", f"${r.cost_usd:.4f} over {r.counts.get('cost', 0)} model request(s)"],
                ["Completeness", "complete" if r.complete else f"{len(r.gaps)} gap(s)"],
            ],
        )  # fmt: skip
        lines += [f"- gap: {inline(gap)}" for gap in r.gaps]
        if summary.permissions:
            lines += ["*permissions*", "", block(json.dumps(summary.permissions, indent=2)), ""]
    lines += ["## Timeline", ""]
    day = ""
    for entry in report.entries:
        if entry.time[:10] != day:
            day = entry.time[:10]
            lines += [f"### {day}", ""]
        lines += _entry(entry)
    lines += ["## External side effects", ""]
    lines += _table(
        ["time", "session", "operation", "resource", "access", "risk", "decision", "outcome"],
        [
            [x.time, x.session_id, x.action, x.resource or "", x.access, x.risk, x.decision,
             x.outcome]
            for x in report.side_effects
        ],
    ) if report.side_effects else ["None.", ""]  # fmt: skip
    lines += ["## Policy versions in force", ""]
    lines += _table(
        ["policy version", "tool calls", "denied", "first used", "last used"],
        [[p.version, p.tool_calls, p.denials, p.first_used, p.last_used]
         for p in report.policy_versions],
    )  # fmt: skip
    for change in report.policy_changes:
        lines.append(
            f"- {inline(change.get('timestamp'))} {code(change.get('policyVersion'))}: "
            f"{inline(change.get('description') or '')}"
        )
    lines += [
        "",
        "---",
        "What this report does not prove: that no event of the scope was left out "
        "(`trailguard verify` checks the whole ledger for that).",
        "",
    ]
    return "\n".join(lines)
