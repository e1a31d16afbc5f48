"""Fuzzing the gateway's HTTP API: schemathesis over the app's own OpenAPI document, then hostile
requests a generator is unlikely to produce.

The property everywhere: no 5xx; declared responses conform; nothing recorded earlier is lost;
and once the gateway has shut down (``gateway_stop``, final checkpoint) the ledger verifies intact.
An exception in the app fails a test with the exception itself (the TestClient, and schemathesis's
ASGI client, re-raise it), so a failure names where the 500 would have come from.

``BUGS`` holds the hostile requests that get a 5xx today, each with the answer expected once fixed.
"""

from __future__ import annotations

import collections
import functools
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from conftest import verify_dir
from trailguard.gateway.app import create_app
from trailguard.gateway.services import MAX_BODY_BYTES
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

HOOK = "/hooks/claude-code"
EVENTS = "/v1/events"
CORRELATE = "/v1/correlate/{kind}"
EXPORTS = ("/v1/reports", "/v1/evidence")
SESSION = "ae1e1885-0000-4000-8000-0000000000f1"
FUZZ_CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# Reproductions show session ids (schemathesis hides any field named like "session" by default);
# only the (throwaway) tokens are hidden.
SCHEMATHESIS_CONFIG = schemathesis.Config.from_dict(
    {
        "output": {
            "sanitization": {
                "keys-to-sanitize": ["authorization"],
                "sensitive-markers": ["authorization"],
            }
        }
    }
)
EXAMPLES_PER_OPERATION = 50  # per operation and token kind: ~20 s of the suite at 100
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,  # one nested test function serves every operation: no shared example store
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],  # no "explain" noise
)


def stored_rows(data_dir: Path) -> list[tuple[str, str]]:
    """(event id, event type) of every stored row, in order."""
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return [(row.event_id, row.event_type) for row in store.rows()]
    finally:
        store.close()


def stored_events(data_dir: Path) -> list[dict[str, Any]]:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return [orjson.loads(row.body) for row in store.rows()]
    finally:
        store.close()


def recorded(data_dir: Path) -> list[str]:
    """Ids of stored events other than checkpoints (which the writer adds on its own schedule)."""
    return [event_id for event_id, kind in stored_rows(data_dir) if kind != "checkpoint"]


def http_only(app: Any) -> Any:
    """``app`` without its lifespan, for schemathesis, each request from its own client address.

    The TestClient owns the lifespan (the reaper; closing the ledger at shutdown); schemathesis
    would otherwise start a second one and keep it until the interpreter exits. An app that
    refuses the lifespan scope before reading from it is an app without lifespan support, which
    schemathesis serves without one. A new address per request keeps the per-client limit on
    authentication_failed alerts from hiding the refusal path after 30 requests (and from making
    a failure there irreproducible while hypothesis shrinks it)."""
    addresses = itertools.count(1)

    async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("the lifespan is run by the TestClient")
        n = next(addresses)
        await app(
            scope | {"client": (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 50000)},
            receive,
            send,
        )

    return serve


@dataclass
class FuzzGateway:
    client: TestClient
    app: Any
    data_dir: Path
    token: str
    auditor: str
    seeded: list[str] = field(default_factory=list)
    closed: bool = False

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def headers_for(self, path: str) -> dict[str, str]:
        """A valid token for each operation that needs one: agent for hooks, auditor to read."""
        if path in (HOOK, CORRELATE):
            return self.bearer(self.token)
        if path in (EVENTS, *EXPORTS, "/metrics") or path.endswith("completeness"):
            return self.bearer(self.auditor)
        return {}

    def hook(self, payload: dict[str, Any], **headers: str) -> httpx.Response:
        return self.client.post(HOOK, json=payload, headers=self.bearer(self.token) | headers)

    def raw(
        self,
        body: Any,
        *,
        content_type: str | None = "application/json",
        authorized: bool = True,
        **headers: str,
    ) -> httpx.Response:
        sent = self.bearer(self.token) if authorized else {}
        if content_type is not None:
            sent["Content-Type"] = content_type
        return self.client.post(HOOK, content=body, headers=sent | headers)

    def shut_down_and_verify(self) -> None:
        """Stop the app (``gateway_stop`` and a final checkpoint; the ledger is closed), then
        check that every event recorded before the fuzzing is still there, in the same places,
        and that the ledger verifies."""
        self.client.__exit__(None, None, None)
        self.closed = True
        assert recorded(self.data_dir)[: len(self.seeded)] == self.seeded, "seeded events lost"
        report = verify_dir(self.data_dir)
        assert report.intact, report.failures
        assert report.last_event_type == "gateway_stop"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[FuzzGateway]:
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=50))
    state = GatewayState(data_dir)
    token, _ = state.create_token("dev_jordan", "agent")
    auditor, _ = state.create_token("aud_sam", "auditor")
    state.close()
    app = create_app(ledger, idle_timeout=3600)
    client = TestClient(app)
    client.__enter__()
    gateway = FuzzGateway(client, app, data_dir, token, auditor)
    try:
        # Valid events recorded before any hostile input: none of them may be lost.
        for payload in (
            {"session_id": SESSION, "hook_event_name": "SessionStart", "source": "startup"},
            pre_tool_use(),
        ):
            assert gateway.hook(payload).status_code == 200
        gateway.seeded = recorded(data_dir)
        yield gateway
    finally:
        if not gateway.closed:
            client.__exit__(None, None, None)


def pre_tool_use(tool_use_id: str = "toolu_seed", **fields: Any) -> dict[str, Any]:
    return {
        "session_id": SESSION,
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "ls -la"},
        "tool_use_id": tool_use_id,
    } | fields


def post_tool_use(tool_response: Any) -> dict[str, Any]:
    return pre_tool_use("toolu_post", hook_event_name="PostToolUse", tool_response=tool_response)


def nested(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


# -- 1. schemathesis over the app's own OpenAPI document -------------------------------------


def generation_modes(operation: schemathesis.APIOperation) -> list[GenerationMode]:
    """Valid and invalid inputs; an operation that takes no input has no invalid one."""
    takes_input = any(
        len(part)
        for part in (
            operation.body,
            operation.query,
            operation.headers,
            operation.path_parameters,
            operation.cookies,
        )
    )
    return list(GenerationMode) if takes_input else [GenerationMode.POSITIVE]


@pytest.mark.parametrize("credentials", ["valid tokens", "no token"])
def test_schemathesis_generated_requests_get_no_5xx_and_conform(gateway, credentials):
    """Every operation with generated valid and invalid input: with a valid token for each
    (agent for hooks, auditor for events), then with none (only 401s, and FastAPI's 422 for
    malformed query parameters, which it answers before the handler runs)."""
    with_tokens = credentials == "valid tokens"
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", http_only(gateway.app), config=SCHEMATHESIS_CONFIG
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {
        "GET /healthz",
        "GET /v1/checkpoint",
        f"POST {HOOK}",
        f"GET {EVENTS}",
        "POST /v1/logs",
        "POST /v1/metrics",
        "POST /anthropic/{path}",
        f"POST {CORRELATE}",
        "GET /v1/completeness",
        "GET /v1/sessions/{session_id}/completeness",
        "GET /metrics",
        *(f"GET {path}" for path in EXPORTS),
    }
    # The model API pass-through forwards whatever it gets to an upstream that is not here
    # (its 502s are correct); tests/test_anthropic_proxy.py covers it against a real server.
    operations = [op for op in operations if not op.path.startswith("/anthropic/")]
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    failures: list[Exception] = []
    started = time.monotonic()
    for operation in operations:
        strategy = st.one_of(
            [operation.as_strategy(generation_mode=mode) for mode in generation_modes(operation)]
        )

        @FUZZ_SETTINGS
        @given(case=strategy)
        def fuzz(case: schemathesis.Case) -> None:
            headers = gateway.headers_for(case.operation.path) if with_tokens else {}
            response = case.call_and_validate(headers=headers, checks=FUZZ_CHECKS)
            statuses[case.operation.label, response.status_code] += 1

        try:
            fuzz()
        except Exception as exc:  # every operation is fuzzed; failures are raised together
            exc.add_note(f"while fuzzing {operation.label} with {credentials}")
            failures.append(exc)
    print(
        f"\nschemathesis {schemathesis.__version__}, {credentials}: {statuses.total()} answered "
        f"requests in {time.monotonic() - started:.1f} s: {dict(sorted(statuses.items()))}"
    )
    gateway.shut_down_and_verify()  # whatever the fuzzing found, the record survived it
    if failures:
        raise ExceptionGroup(f"schemathesis: {len(failures)} operation(s) failed", failures)
    if with_tokens:  # the generated input reached the handlers, not only their 4xx paths
        assert statuses[f"POST {HOOK}", 200] > 0
        assert statuses[f"GET {EVENTS}", 200] > 0
    else:
        refused = {
            (label, status)
            for label, status in statuses
            if label in (f"POST {HOOK}", f"GET {EVENTS}")
        }
        assert refused <= {(f"POST {HOOK}", 401), (f"GET {EVENTS}", 401), (f"GET {EVENTS}", 422)}


# -- 2. hostile requests a generator is unlikely to produce ----------------------------------


@dataclass(frozen=True)
class Hostile:
    """One hostile request: ``send`` it, then check the answer (never a 5xx) and how many events
    it added to the record (not counting checkpoints)."""

    send: Callable[[FuzzGateway], httpx.Response]
    status: int | tuple[int, ...]
    stored: int | dict[int, int] = 0
    """Events added, or events added by status when more than one answer is acceptable."""
    says: str | None = None

    def check(self, gateway: FuzzGateway) -> httpx.Response:
        before = recorded(gateway.data_dir)
        response = self.send(gateway)
        assert response.status_code < 500, response.text[:500]
        expected = self.status if isinstance(self.status, tuple) else (self.status,)
        assert response.status_code in expected, response.text[:500]
        if self.says is not None:
            assert self.says in response.json()["detail"]
        after = recorded(gateway.data_dir)
        assert after[: len(before)] == before, "events recorded earlier were lost or moved"
        stored = (
            self.stored.get(response.status_code, 0)
            if isinstance(self.stored, dict)
            else self.stored
        )
        assert len(after) - len(before) == stored, after[len(before) :]
        return response


def streamed(body: bytes, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """A body sent in chunks with no Content-Length: its size is only known by reading it."""
    for start in range(0, len(body), chunk):
        yield body[start : start + chunk]


def with_raw(payload: dict[str, Any], field_name: str, raw_json: bytes) -> bytes:
    """``payload`` as JSON bytes with ``field_name``'s value replaced by ``raw_json`` verbatim."""
    body = orjson.dumps(payload | {field_name: None})
    marker = b'"%s":null' % field_name.encode()
    assert marker in body
    return body.replace(marker, b'"%s":%s' % (field_name.encode(), raw_json))


TEN_MB = 10 * 1024 * 1024


@functools.cache
def forty_mb_body() -> bytes:
    return b'{"session_id":"s","hook_event_name":"Stop","pad":"' + b"x" * (40 << 20) + b'"}'


@functools.cache
def many_keys() -> dict[str, int]:
    return {f"key_{n}": n for n in range(200_000)}


ADDED_IF_ACCEPTED = {200: 1}
"""For requests where both a 200 (one event recorded) and a 4xx (nothing) are acceptable."""

HOSTILE: dict[str, Hostile] = {
    "tool_response of 10 MB": Hostile(
        lambda g: g.hook(post_tool_use({"stdout": "x" * TEN_MB})), 200, stored=1
    ),
    "40 MB body with Content-Length": Hostile(lambda g: g.raw(forty_mb_body()), 413),
    "40 MB body streamed without Content-Length": Hostile(
        lambda g: g.raw(streamed(forty_mb_body())), 413, says=f"exceeds {MAX_BODY_BYTES} bytes"
    ),
    "invalid UTF-8": Hostile(
        lambda g: g.raw(b'{"session_id":"\xc3\x28","hook_event_name":"Stop"}'),
        400,
        says="not valid UTF-8",
    ),
    "overlong UTF-8 encoding of a quote": Hostile(
        lambda g: g.raw(b'{"session_id":"a' + bytes([0xC0, 0xA2]) + b',"hook_event_name":"x"}'),
        400,
        says="not valid UTF-8",
    ),
    "lone surrogate escape": Hostile(
        lambda g: g.raw(b'{"session_id":"\\ud800","hook_event_name":"Stop"}'), 400
    ),
    "UTF-8 byte order mark": Hostile(
        lambda g: g.raw(b'\xef\xbb\xbf{"session_id":"s","hook_event_name":"Stop"}'), 400
    ),
    "JSON nested 5000 deep as the body": Hostile(lambda g: g.raw(nested(5000).encode()), 400),
    "JSON nested 5000 deep in tool_input": Hostile(
        lambda g: g.raw(with_raw(pre_tool_use(), "tool_input", nested(5000).encode())),
        (200, 400),
        stored=ADDED_IF_ACCEPTED,
    ),
    "JSON nested 5000 deep in tool_response": Hostile(
        lambda g: g.raw(with_raw(post_tool_use(None), "tool_response", nested(5000).encode())),
        (200, 400),
        stored=ADDED_IF_ACCEPTED,
    ),
    # Past orjson's encoder limit (254) but within its parser's (1024): canonicalisation used to
    # recurse into a RecursionError (500); fixed in 678e03d, a 400 since.
    "JSON nested 600 deep in tool_response": Hostile(
        lambda g: g.raw(with_raw(post_tool_use(None), "tool_response", nested(600).encode())),
        (200, 400),
        stored=ADDED_IF_ACCEPTED,
    ),
    "JSON nested 1000 deep in tool_input": Hostile(
        lambda g: g.raw(with_raw(pre_tool_use(), "tool_input", nested(1000).encode())),
        (200, 400),
        stored=ADDED_IF_ACCEPTED,
    ),
    "JSON nested 5000 deep in an unmapped field": Hostile(
        lambda g: g.raw(with_raw(pre_tool_use(), "novel", nested(5000).encode())),
        (200, 400),
        stored=ADDED_IF_ACCEPTED,
    ),
    "200,000 keys in tool_input": Hostile(
        lambda g: g.hook(pre_tool_use("toolu_keys", tool_input=many_keys())), 200, stored=1
    ),
    "200,000 top-level keys": Hostile(
        lambda g: g.hook({"session_id": SESSION, "hook_event_name": "Stop"} | many_keys()),
        200,
        stored=1,
    ),
    "NUL byte in session_id": Hostile(
        lambda g: g.hook({"session_id": "sess\x00ion", "hook_event_name": "Stop"}),
        400,
        says="session_id",
    ),
    "session_id of 10,000 characters": Hostile(
        lambda g: g.hook({"session_id": "s" * 10_000, "hook_event_name": "Stop"}),
        400,
        says="session_id",
    ),
    "tool_use_id of 10,000 characters": Hostile(
        lambda g: g.hook(pre_tool_use("t" * 10_000)), 400, says="tool_use_id"
    ),
    "non-UUID X-Trailguard-Event-Id": Hostile(
        lambda g: g.hook(pre_tool_use(), **{"X-Trailguard-Event-Id": "not-a-uuid'--"}),
        400,
        says="X-Trailguard-Event-Id",
    ),
    "Content-Type text/plain with a JSON body": Hostile(
        lambda g: g.raw(orjson.dumps(pre_tool_use("toolu_text")), content_type="text/plain"),
        (200, 415),
        stored=ADDED_IF_ACCEPTED,
    ),
    "Content-Type form-urlencoded": Hostile(
        lambda g: g.raw(
            b"session_id=s&hook_event_name=Stop",
            content_type="application/x-www-form-urlencoded",
        ),
        (400, 415),
    ),
    "no Content-Type": Hostile(
        lambda g: g.raw(orjson.dumps(pre_tool_use("toolu_none")), content_type=None),
        (200, 415),
        stored=ADDED_IF_ACCEPTED,
    ),
    "empty body": Hostile(lambda g: g.raw(b""), 400, says="not JSON"),
    "whitespace body": Hostile(lambda g: g.raw(b" \r\n\t "), 400, says="not JSON"),
    "JSON null": Hostile(lambda g: g.raw(b"null"), 400, says="JSON object"),
    "integer beyond 2**64 in tool_input": Hostile(
        lambda g: g.raw(with_raw(pre_tool_use(), "tool_input", b"1" + b"0" * 30)),
        (200, 400),
        stored=ADDED_IF_ACCEPTED,
    ),
}
# Hostile requests that get a 5xx today. Each is a bug in src/ (see the reason); the expected
# answer is what the gateway should give once it is fixed.
BUGS: dict[str, Hostile] = {
    # An integer in (2**53, 2**64) in any free-form field parses and passes the event model; only
    # the ledger writer refuses it (EventRejectedError, a LedgerError, not the ValueError the
    # handler maps to 400): 500.
    "integer 2**53 + 1 in tool_input": Hostile(
        lambda g: g.hook(pre_tool_use("toolu_int", tool_input={"n": 2**53 + 1})),
        (200, 400),
        stored=ADDED_IF_ACCEPTED,
    ),
    # The same in a session not seen before: the session_not_started alert submitted in the same
    # batch is stored although the request fails, so a refused request leaves a record.
    "integer 2**53 in an unmapped field, new session": Hostile(
        lambda g: g.hook({"session_id": "sess_new", "hook_event_name": "Stop", "n": 2**53}),
        (200, 400),
        stored={200: 2},  # the alert and the event, or nothing
    ),
    # refuse() builds Alert(session_id=<claimed>) and the model refuses control characters:
    # pydantic ValidationError escapes, 500, and no authentication_failed alert is recorded.
    "NUL byte in session_id without a token": Hostile(
        lambda g: g.raw(b'{"session_id":"a\\u0000b","hook_event_name":"Stop"}', authorized=False),
        401,
        stored=1,  # the authentication_failed alert
    ),
    # The audit_access event records the query, offset included; an offset beyond 2**53 cannot
    # be canonicalised, the writer rejects the event (EventRejectedError), 500.
    "GET /v1/events?offset=2**53": Hostile(
        lambda g: g.client.get(EVENTS, params={"offset": 2**53}, headers=g.bearer(g.auditor)),
        (200, 400, 422),
        stored={200: 1},
    ),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_request_is_answered_without_a_5xx_and_loses_nothing(gateway, name):
    HOSTILE[name].check(gateway)
    gateway.shut_down_and_verify()


@pytest.mark.parametrize("name", BUGS)
def test_hostile_request_that_gets_a_5xx_today(gateway, name):
    BUGS[name].check(gateway)
    gateway.shut_down_and_verify()


def test_ten_mb_tool_output_is_stored_truncated(gateway):
    assert gateway.hook(post_tool_use({"stdout": "x" * TEN_MB})).status_code == 200
    result = next(e for e in stored_events(gateway.data_dir) if e["eventType"] == "tool_result")
    assert result["outputTruncated"] is True
    assert result["outputLength"] > TEN_MB
    assert len(result["output"]) <= 64 * 1024
    assert result["outputSha256"].startswith("sha256:")
    gateway.shut_down_and_verify()


def test_replayed_event_id_is_409_and_recorded_once(gateway):
    event_id = str(uuid.uuid4())
    first = Hostile(
        lambda g: g.hook(pre_tool_use("toolu_r"), **{"X-Trailguard-Event-Id": event_id}),
        200,
        stored=1,
    )
    again = Hostile(
        lambda g: g.hook(pre_tool_use("toolu_r"), **{"X-Trailguard-Event-Id": event_id}),
        409,
        says="already recorded",
    )
    # The same id in another spelling (upper case, braces) is the same event.
    spelled = Hostile(
        lambda g: g.hook(
            pre_tool_use("toolu_r"), **{"X-Trailguard-Event-Id": "{" + event_id.upper() + "}"}
        ),
        409,
    )
    for request in (first, again, spelled):
        request.check(gateway)
    ids = [e["eventId"] for e in stored_events(gateway.data_dir)]
    assert ids.count(event_id) == 1
    gateway.shut_down_and_verify()


def test_every_hostile_request_in_turn_then_the_ledger_is_intact(gateway):
    """All of them against one gateway: a bad request must not poison the next good one."""
    for name, hostile in HOSTILE.items():
        hostile.check(gateway)
        good = gateway.hook(pre_tool_use(f"toolu_after {name}"))
        assert good.status_code == 200, f"after {name!r}: {good.text[:300]}"
    gateway.shut_down_and_verify()
