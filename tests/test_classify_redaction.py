"""Redaction only in the redaction stage: classifiers describe a command as written, and what
the ledger stores of its operations (raw, resource, attributes, in the tool call and in each
``infra_operation`` event) carries the redaction stage's keyed tags naming the rule, never a
secret and never a bare ``[REDACTED]``."""

from __future__ import annotations

import re

import pytest

from test_gateway import gateway, pre_tool_use, stored  # noqa: F401 - gateway is a fixture
from trailguard.classify import classify_tool_call
from trailguard.events import Event, InfraOperation, Operation, ToolInvocation
from trailguard.gateway.pipeline import HookOutcome, redact
from trailguard.redact import Redactor

# (command, secret, the rule's kind in the tag, the operation field that held it)
CASES = [
    ("curl -u deploy:FAKEpw7Qm2xZ9rT4 https://api.example.com/v1/deploy",
     "FAKEpw7Qm2xZ9rT4", "basic-auth", "raw"),
    ("psql postgres://admin:FAKEpg8Hn3kW5vq@db.prod.internal/shop -c 'SELECT 1'",
     "FAKEpg8Hn3kW5vq", "url-credentials", "raw"),
    ("docker login -u bob -p FAKEdk4Ls9Pq2Wz7 ghcr.io", "FAKEdk4Ls9Pq2Wz7", "password", "raw"),
    ("curl -X POST https://hooks.slack.com/services/T0FAKE123/B0FAKE456/FAKEslack9Xq2Lm7Zt4Rw",
     "FAKEslack9Xq2Lm7Zt4Rw", "slack-webhook", "resource"),
    ("psql -h db -c \"ALTER USER app PASSWORD 'FAKErot8Vb2Nq5'\"",
     "FAKErot8Vb2Nq5", "password", "statement"),
]  # fmt: skip
BARE_TAG = re.compile(rb"\[REDACTED\]")


def _field(operation: dict, where: str) -> str:
    if where == "statement":
        return str(operation["attributes"]["statement"])
    return str(operation[where])


@pytest.mark.parametrize(("command", "secret", "kind", "where"), CASES)
def test_classifiers_keep_the_command_as_written(
    command: str, secret: str, kind: str, where: str
) -> None:
    operations = classify_tool_call("Bash", {"command": command})
    assert operations
    assert all(op.raw == command for op in operations)
    assert not any("[REDACTED" in op.model_dump_json() for op in operations)


def test_secrets_in_operations_are_stored_as_keyed_tags_naming_the_rule(gateway):  # noqa: F811
    for index, (command, _secret, _kind, _where) in enumerate(CASES):
        gateway.hook(pre_tool_use(f"toolu_sec{index}", command))
    ledger_bytes = b"".join(p.read_bytes() for p in gateway.data_dir.glob("ledger.sqlite3*"))
    for _command, secret, _kind, _where in CASES:
        assert secret.encode() not in ledger_bytes, secret
    assert BARE_TAG.search(ledger_bytes) is None
    events = stored(gateway.data_dir)
    for index, (_command, _secret, kind, where) in enumerate(CASES):
        tool_use_id = f"toolu_sec{index}"
        mine = [e for e in events if e.get("toolUseId") == tool_use_id]
        [invocation] = [e for e in mine if e["eventType"] == "tool_invocation"]
        infra = [e["operation"] for e in mine if e["eventType"] == "infra_operation"]
        assert invocation["operations"], invocation
        for operation in [*invocation["operations"], *infra]:
            assert f"[REDACTED:{kind}:" in _field(operation, where), operation


def test_the_redaction_stage_covers_every_operation_field() -> None:
    secret = "ghp_FAKE0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0"
    operation = Operation(
        kind="http",
        action="http:Get",
        resource=f"https://example.com/?x={secret}",
        access="read",
        risk="low",
        flags=[f"note {secret}"],
        attributes={"url": f"token {secret}", f"k{secret}": "v"},
        raw=f"curl -H 'X: {secret}'",
    )
    events: list[Event] = [
        ToolInvocation(tool="Bash", input={"command": "true"}, operations=[operation]),
        InfraOperation(operation=operation),
    ]
    redacted = redact(HookOutcome(events=events, primary=0), Redactor(b"every-field-key"))
    for event in redacted.events:
        dumped = event.model_dump_json()
        assert secret not in dumped, dumped
        assert "[REDACTED:github-token:" in dumped


def test_a_field_capped_inside_a_secret_keeps_no_part_of_it() -> None:
    secret = "FAKErot8Vb2Nq5Zq7vR2mKx9"
    command = f"psql -c \"ALTER USER app PASSWORD '{secret}'\""
    capped = Operation(
        kind="sql",
        action="sql:AlterUser",
        access="admin",
        risk="high",
        attributes={"statement": f"ALTER USER app PASSWORD '{secret[:10]}"},  # cut by a cap
        raw=command,
    )
    event = ToolInvocation(tool="Bash", input={"command": command}, operations=[capped])
    [stored_op] = Redactor(b"cap-key").redact_event(event).operations
    assert secret[:6] not in stored_op.model_dump_json()
    statement = stored_op.attributes["statement"]
    assert re.fullmatch(r"ALTER USER app PASSWORD '\[REDACTED:password:[0-9a-f]{8}\]", statement)
