"""``POST /v1/correlate/cloudtrail`` and ``/v1/correlate/jsonl``: downstream records (CloudTrail
log files, application JSON-lines logs) joined to sessions and recorded.

An admin token may import records of any session; an agent token only of its own developer's
sessions (records naming another developer's session are refused, counted and raise a
``session_hijack`` alert). Digests are checked against the keys pinned in the gateway's data
directory, never against keys a request brings. The files pass the same redaction as every
other route, and the same caps.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic.alias_generators import to_camel

from trailguard.errors import FaultError, InvalidInputError
from trailguard.events import Alert, Event
from trailguard.gateway.pipeline import redact_event
from trailguard.gateway.routes._body import read_body
from trailguard.gateway.services import MAX_BODY_BYTES, Gateway, gateway_services, require
from trailguard.retrieval import parse_time
from trailguard.store.gateway_state import Identity

if TYPE_CHECKING:
    from trailguard.correlate.importer import Correlator
    from trailguard.correlate.run import RawFile

router = APIRouter(tags=["correlate"])
Importer = Annotated[Identity, Depends(require("admin", "agent", what="import downstream records"))]
Services = Annotated[Gateway, Depends(gateway_services)]

MAX_FILES_PER_REQUEST: Final = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True
    )


class _File(_Strict):
    name: str = Field(min_length=1, max_length=1024)
    content: str
    """The file's bytes (gzip or plain), base64."""
    digest: bool = False
    signature: str | None = Field(default=None, max_length=4096)


class _Fields(_Strict):
    session: str = Field(min_length=1, max_length=256)
    time: str | None = Field(default=None, max_length=256)
    id: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=256)
    app: str | None = Field(default=None, max_length=256)


class _CorrelateRequest(_Strict):
    files: list[_File] = Field(min_length=1, max_length=MAX_FILES_PER_REQUEST)
    since: str | None = Field(default=None, max_length=64)
    until: str | None = Field(default=None, max_length=64)
    clock_skew_seconds: float = Field(default=2.0, ge=0, le=600)
    fields: _Fields | None = None


_STRING: Final = {"type": "string"}
CORRELATE_BODY_SCHEMA: Final[dict[str, Any]] = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "content"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                "content": {"type": "string", "format": "byte"},
                                "digest": {"type": "boolean"},
                                "signature": _STRING,
                            },
                            "additionalProperties": False,
                        },
                    },
                    "since": _STRING,
                    "until": _STRING,
                    "clockSkewSeconds": {"type": "number", "minimum": 0, "maximum": 600},
                    "fields": {
                        "type": "object",
                        "required": ["session"],
                        "properties": {
                            "session": {"type": "string", "minLength": 1},
                            "time": _STRING,
                            "id": _STRING,
                            "name": _STRING,
                            "app": _STRING,
                        },
                        "additionalProperties": False,
                    },
                },
                "additionalProperties": False,
            }
        }
    },
    "required": True,
}


def _parse(body: bytes, kind: str) -> _CorrelateRequest:
    try:
        request = _CorrelateRequest.model_validate_json(body)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or '(body)'}: {error['msg']}"
            for error in exc.errors()[:10]
        ]
        raise InvalidInputError("; ".join(problems)) from None
    if kind == "jsonl" and request.fields is None:
        raise InvalidInputError("fields.session: required for a JSON-lines import")
    return request


def _files(request: _CorrelateRequest) -> list[RawFile]:
    from trailguard.correlate.run import RawFile

    files = []
    for index, file in enumerate(request.files):
        try:
            raw = base64.b64decode(file.content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInputError(f"files.{index}.content: not base64") from None
        files.append(RawFile(file.name, raw, file.digest, file.signature))
    return files


@router.post(
    "/v1/correlate/{kind}",
    openapi_extra={"requestBody": CORRELATE_BODY_SCHEMA},
    responses={
        400: {"description": "Malformed request or file (the field is named)"},
        401: {"description": "Missing or invalid token"},
        403: {"description": "The token may not import records"},
        413: {"description": "Payload too large"},
        503: {"description": "The ledger cannot write: nothing was recorded"},
    },
)
async def correlate(
    kind: Literal["cloudtrail", "jsonl"],
    request: Request,
    identity: Importer,
    services: Services,
) -> JSONResponse:
    """Import downstream records; the answer is the import's report (counts, matches, the
    sessions refused or not found, the records skipped and why)."""
    body = await read_body(request, MAX_BODY_BYTES)
    async with services.heavy.slot(identity.token_id):

        def work() -> tuple[Correlator, list[Event]]:
            # Imported on first use: the gateway starts (and answers PreToolUse) without them.
            from trailguard.correlate.digest import DigestSet, PinnedKeys, PublicKeyError
            from trailguard.correlate.importer import AppLogFields, Correlator, ImportOptions
            from trailguard.correlate.run import correlate_files

            parsed = _parse(body, kind)
            files = _files(parsed)
            since = parse_time(parsed.since, name="since") if parsed.since else None
            until = parse_time(parsed.until, name="until") if parsed.until else None
            try:
                # CloudTrail keys are pinned in a data directory; a shared ledger has none yet.
                data_dir = getattr(services.ledger, "data_dir", None)
                keys = PinnedKeys.load(data_dir) if data_dir is not None else None
            except PublicKeyError as exc:
                raise FaultError(f"the gateway's pinned CloudTrail keys: {exc}") from None
            reader = services.open_reader()
            try:
                correlator = Correlator(
                    reader,
                    services.redactor,
                    ImportOptions(
                        imported_by=f"{identity.developer_id} (token {identity.token_id})",
                        skew=timedelta(seconds=parsed.clock_skew_seconds),
                        since=since,
                        until=until,
                        only_developer=None if identity.role == "admin" else identity.developer_id,
                    ),
                )
                fields = (
                    AppLogFields(**parsed.fields.model_dump())
                    if parsed.fields is not None
                    else None
                )
                events = correlate_files(
                    correlator, files, kind, fields=fields, digests=DigestSet(keys)
                )
            finally:
                reader.close()
            return correlator, events

        correlator, events = await services.off_loop(work)
    report = correlator.report
    if report.refused_sessions:
        events.append(
            redact_event(
                services.redactor,
                Alert(
                    alert_type="session_hijack",
                    severity="high",
                    message=f"an import from token {identity.token_id} named "
                    f"{len(report.refused_sessions)} session(s) of another developer; those "
                    f"{sum(report.refused_sessions.values())} record(s) were refused",
                    details={
                        "targetSessionIds": list[JsonValue](sorted(report.refused_sessions)[:20]),
                        "tokenId": identity.token_id,
                        "path": request.url.path,
                    },
                    developer_id=identity.developer_id,
                    source="gateway",
                ),
            )
        )
    if events:
        from trailguard.correlate.importer import count_receipts

        receipts = await services.record(events)
        count_receipts(report, receipts, events)
    return JSONResponse(report.to_json())
