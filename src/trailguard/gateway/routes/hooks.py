"""``POST /hooks/claude-code``: one Claude Code hook event in, recorded, then answered.

The route is every agent's hot path (each tool call waits for it), so its endpoint takes the
request alone and is called directly (``DirectRoute``): FastAPI still describes it in the
OpenAPI document, but solves no dependencies per request. That machinery cost about 200 µs
of a hook request's 1.3 ms of CPU here (``benchmarks/bench_gateway_throughput.py``). The
requests themselves do not go through FastAPI's routing at all: :class:`HookDispatch` hands
them to the endpoint before Starlette's exception middleware and router (another 10 % of a
worker's CPU under load, measured with py-spy), with the app's own error handlers."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from trailguard.capture.anthropic_proxy import route_path
from trailguard.capture.hook_request import HookRequest, parse_hook_request
from trailguard.errors import InvalidInputError, TrailguardError
from trailguard.gateway.routes._body import json_object, read_body
from trailguard.gateway.services import (
    HEAVY_BODY_BYTES,
    INLINE_BODY_BYTES,
    MAX_BODY_BYTES,
    authenticate,
    gateway,
)
from trailguard.store.gateway_state import Role

HOOK_PATH = "/hooks/claude-code"
EVENT_ID_HEADER = "x-trailguard-event-id"

HOOK_BODY_SCHEMA: dict[str, Any] = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["session_id", "hook_event_name"],
                "properties": {
                    "session_id": {"type": "string", "minLength": 1},
                    "hook_event_name": {"type": "string", "minLength": 1},
                    "tool_name": {"type": "string"},
                    "tool_input": {},
                    "tool_response": {},
                    "tool_use_id": {"type": "string"},
                },
                "additionalProperties": True,
            }
        }
    },
    "required": True,
}

HOOK_POSTERS: frozenset[Role] = frozenset({"agent", "admin"})


class DirectRoute(APIRoute):
    """An API route whose endpoint takes the ``Request`` and returns the ``Response``: it is
    documented like any other, and called as it is (no dependency injection, no body or
    response model), errors still going to the app's exception handlers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


router = APIRouter(tags=["hooks"], route_class=DirectRoute)


@router.post(
    HOOK_PATH,
    openapi_extra={"requestBody": HOOK_BODY_SCHEMA},
    responses={
        400: {"description": "Malformed payload (the field is named)"},
        401: {"description": "Missing or invalid token"},
        403: {"description": "The token may not post hooks, or the session is another's"},
        409: {"description": "Event id already recorded"},
        413: {"description": "Payload too large"},
        429: {"description": "Too many requests for this token"},
        503: {"description": "The ledger cannot write: nothing was recorded"},
    },
)
async def claude_code_hook(request: Request) -> Response:
    """Record one Claude Code hook event and answer with the hook output it expects."""
    identity = await authenticate(request, HOOK_POSTERS, "post hook events")
    services = gateway(request)
    if services.hook_rate is not None:
        services.hook_rate.check(identity.token_id)
    event_id = request.headers.get(EVENT_ID_HEADER)
    if event_id is not None:
        try:
            event_id = str(uuid.UUID(event_id))
        except ValueError:
            raise InvalidInputError("X-Trailguard-Event-Id must be a UUID") from None
    body = await read_body(request, MAX_BODY_BYTES)

    def parse() -> HookRequest:
        return parse_hook_request(json_object(body, "a Claude Code hook event"))

    gate = services.heavy.slot(identity.token_id) if len(body) > HEAVY_BODY_BYTES else None
    async with gate or contextlib.nullcontext():
        hook = await services.off_loop(parse) if gate else parse()
        reply = await services.handler.handle(
            hook, identity, event_id, inline=len(body) <= INLINE_BODY_BYTES
        )
    return _OrjsonResponse(reply.body, status_code=reply.status)


class _OrjsonResponse(JSONResponse):
    """Compact JSON, the bytes Starlette's JSONResponse would send, rendered by orjson as the
    request was parsed (FastAPI's own ORJSONResponse is deprecated)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class HookDispatch:
    """ASGI middleware answering ``POST /hooks/claude-code`` with :func:`claude_code_hook`
    itself, past Starlette's exception middleware and FastAPI's router. A trailguard error is
    answered by the app's handler for it, as the router would have it answered (the status,
    the alert, the record of a refused read); anything else propagates to Starlette's
    ServerErrorMiddleware, outside this one, which answers 500 and records the fault. Every
    other request (another method, a trailing slash) goes through the app as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or route_path(scope) != HOOK_PATH:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await claude_code_hook(request)
        except TrailguardError as exc:
            handlers = request.app.exception_handlers
            handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)
