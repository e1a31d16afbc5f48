"""Reading request bodies with a size limit, and decoding JSON objects with errors that name
the problem (shared by the routes that take JSON)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from trailguard.errors import InvalidInputError, PayloadTooLargeError


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"payload of {declared} bytes exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLargeError(f"payload exceeds {limit} bytes")
    return bytes(body)


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """``body`` decoded as a JSON object; InvalidInputError says why not."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"payload is not valid UTF-8 (byte {exc.start})") from None
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidInputError(f"payload must be a JSON object ({what})")
    return payload
