"""Talking to the gateway: one event posted with its id and token, and what an error says.

The protocol is docs/hook-protocol.md: ``POST <url>/hooks/claude-code`` with the hook payload,
``X-Trailguard-Event-Id`` (so a replay is recognised) and the agent's bearer token.
"""

from __future__ import annotations

from trailguard.capture.hook_client import fastjson
from trailguard.capture.hook_client.transport import http_post

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from trailguard.capture.hook_client.config import HookConfig

ENDPOINT = "/hooks/claude-code"
EVENT_ID_HEADER = "X-Trailguard-Event-Id"

RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""4xx answers that say "later", not "never": handled like 5xx."""


def post_event(config: HookConfig, payload: dict[str, Any], event_id: str) -> tuple[int, bytes]:
    """POST one event; (status, body). Raises GatewayUnavailableError or ValueError (bad URL)."""
    headers = {EVENT_ID_HEADER: event_id}
    if config.token is not None:
        headers["Authorization"] = f"Bearer {config.token}"
    body = fastjson.dumps(payload, compact=True).encode("utf-8")
    return http_post(config.url + ENDPOINT, body, headers, config.timeout)


def detail(body: bytes) -> str | None:
    """The ``detail`` of an error answer, or its text, cut to 300 characters."""
    try:
        parsed = fastjson.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:300] or None
    if isinstance(parsed, dict) and "detail" in parsed:
        found = parsed["detail"]
        text = found if isinstance(found, str) else fastjson.dumps(found)
        return text[:300]
    return None


def detail_suffix(body: bytes) -> str:
    found = detail(body)
    return f": {found}" if found else ""
