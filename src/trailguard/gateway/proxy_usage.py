"""Who pays for a model request that came through the API proxy (``/anthropic/…``).

The proxy sees a session id in ``x-claude-code-session-id``, which anyone can write. What
decides attribution is the trailguard agent token in ``X-Trailguard-Token``: the usage is
charged to the session only when the token is valid and the session is that token's (or not
known yet). Anything else is recorded unattributed — counted in no developer's or session's
budget — with an alert naming what the request claimed.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from trailguard.capture.anthropic_proxy import ModelRequestRecord
from trailguard.errors import AuthenticationError
from trailguard.events import Alert
from trailguard.gateway.costs import from_proxy
from trailguard.gateway.services import Gateway

__all__ = ["identify_agent", "record_model_request"]


async def identify_agent(services: Gateway, token: str | None) -> str | None:
    """The developer of an agent token; None for no token, an unknown or revoked one, or a
    token of another role (auditors and admins do not run agents)."""
    if not token:
        return None
    try:
        identity = await asyncio.to_thread(services.auth.identify, token)
    except AuthenticationError:
        return None
    return identity.developer_id if identity.role == "agent" else None


def _refusal_alert(record: ModelRequestRecord, problem: str, alert_type: str) -> Alert:
    usage = record.usage
    return Alert(
        alert_type=alert_type,
        severity="high" if alert_type == "session_hijack" else "medium",
        message=f"a model request through the API proxy {problem}: its usage is recorded "
        "unattributed and counted against no developer's budget",
        details={
            "claimedSessionId": record.session_id,
            "tokenPresented": record.token_presented,
            "tokenDeveloperId": record.developer_id,
            "requestId": record.request_id,
            "model": record.model,
            "inputTokens": usage.get("input_tokens", 0),
            "outputTokens": usage.get("output_tokens", 0),
        },
        developer_id=record.developer_id,
        source="gateway",
    )


def _attribution_problem(services: Gateway, record: ModelRequestRecord) -> Alert | None:
    """Why the record may not be charged to the session it names (an alert), or None."""
    if record.developer_id is None:
        problem = (
            "carried an X-Trailguard-Token that is not a valid agent token"
            if record.token_presented
            else "carried no X-Trailguard-Token"
        )
        return _refusal_alert(record, problem, "unattributed_model_usage")
    session = services.sessions.get(record.session_id) if record.session_id else None
    if session is not None and session.developer_id not in (None, record.developer_id):
        return _refusal_alert(
            record,
            f"from {record.developer_id} named a session of {session.developer_id}",
            "session_hijack",
        )
    return None


async def record_model_request(services: Gateway, record: ModelRequestRecord) -> None:
    """Count the usage of one proxied request (a provisional record at ``message_delta``, then
    the complete one: counted once) against the session the token may charge, or none; record
    the proxy's refusals."""
    problem = _attribution_problem(services, record)
    if record.refused:
        await services.record_alert(
            Alert(
                alert_type="model_request_refused",
                severity="medium",
                message=f"the API proxy refused a model request (HTTP {record.status}): "
                f"{record.error}",
                details={"claimedSessionId": record.session_id, "status": record.status},
                session_id=record.session_id if problem is None else None,
                developer_id=record.developer_id,
                source="gateway",
            ),
            client=f"proxy-refused:{record.developer_id}",
        )
        return
    observation = from_proxy(record)
    if observation is None:
        return
    if problem is not None:
        observation = replace(observation, session_id=None, developer_id=None)
    await services.costs.record([observation])
    if problem is not None and not record.provisional:
        await services.record_alert(problem, client=f"proxy:{record.developer_id}")
