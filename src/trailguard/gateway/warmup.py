"""Warm-up: what the first hook of a session would otherwise pay, paid when the gateway starts.

The hook path loads much of its work on first use: the shell classifiers (``sqlglot`` alone is
hundreds of milliseconds), tree-sitter's Bash parser, the AWS and HTTP tables, the redaction
rules, Cedar's first evaluation, the first canonicalisation. Measured on the 2-core machine, the
first PreToolUse after start-up took 0.7-4.8 s against ~10 ms for the next ones
(docs/hook-latency.md). :func:`warm_up` runs representative tool calls through the pure
stages (normalise, classify and decide, build, redact, canonical bytes) and records nothing: the
ledger, the session registry and the loop detector never see them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from trailguard.capture.hook_request import parse_hook_request
from trailguard.events import utc_now
from trailguard.gateway import pipeline
from trailguard.ledger.writer import encode_row
from trailguard.policy.store import PolicyStore
from trailguard.redact import Redactor
from trailguard.store.state import Identity

log = logging.getLogger(__name__)

_CWD = "/home/warm-up/project"
SAMPLE_TOOL_CALLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Bash", {"command": "echo warm-up && ls -la | head -n 5", "description": "list"}),
    ("Bash", {"command": "git status && git log --oneline -3 && git push origin main"}),
    ("Bash", {"command": "aws s3 cp notes.txt s3://example-bucket/app/notes.txt"}),
    ("Bash", {"command": "psql -h db.example.invalid -c 'select id from users limit 1'"}),
    ("Bash", {"command": "curl -s https://api.example.invalid/v1/items | jq ."}),
    ("Bash", {"command": "rm -rf build && find . -name '*.tmp' -delete"}),
    ("Bash", {"command": "kubectl get pods && terraform plan && docker ps && helm list"}),
    ("Bash", {"command": "cat <<'EOF' > notes.txt\nhello $USER\nEOF\npython3 -c 'print(1)'"}),
    ("Write", {"file_path": f"{_CWD}/notes.txt", "content": "hello\n"}),
    ("Edit", {"file_path": f"{_CWD}/notes.txt", "old_string": "hello", "new_string": "bye"}),
    ("Read", {"file_path": f"{_CWD}/README.md"}),
    ("WebFetch", {"url": "https://docs.example.invalid/page", "prompt": "summarise"}),
    ("mcp__tickets__create_ticket", {"title": "warm-up", "body": "nothing"}),
)
"""One call for each classifier family the first tool call of a session may need."""
_IDENTITY = Identity(developer_id="warm-up", role="agent", token_id="warm-up")  # noqa: S106


def _payloads(index: int, tool: str, tool_input: dict[str, Any]) -> list[dict[str, Any]]:
    common = {
        "session_id": "00000000-0000-4000-8000-00000000a11e",
        "transcript_path": "/home/warm-up/.claude/projects/x/warm-up.jsonl",
        "cwd": _CWD,
        "permission_mode": "default",
        "tool_name": tool,
        "tool_input": tool_input,
        "tool_use_id": f"toolu_warmup{index:04d}",
    }
    return [
        {**common, "hook_event_name": "PreToolUse"},
        {**common, "hook_event_name": "PostToolUse", "tool_response": {"stdout": "ok"}},
    ]


def warm_up(policies: PolicyStore, redactor: Redactor) -> float:
    """Run :data:`SAMPLE_TOOL_CALLS` through the pure hook stages; return the seconds taken.

    Never raises: a warm-up that fails only means the first real call pays instead (logged)."""
    started = time.perf_counter()
    try:
        policy_set = policies.current
        for index, (tool, tool_input) in enumerate(SAMPLE_TOOL_CALLS):
            for payload in _payloads(index, tool, tool_input):
                request = parse_hook_request(payload)
                context = pipeline.normalise(
                    request, _IDENTITY, session=None, received_at=utc_now()
                )
                verdict = (
                    pipeline.classify_and_decide(context, policy_set) if context.decides else None
                )
                built = pipeline.build(context, verdict=verdict, stop=None)
                for event in pipeline.redact(built, redactor).events:
                    encode_row(event, 1)
    except Exception:
        log.warning("trailguard: the hook path warm-up failed", exc_info=True)
    return time.perf_counter() - started


__all__ = ["SAMPLE_TOOL_CALLS", "warm_up"]
