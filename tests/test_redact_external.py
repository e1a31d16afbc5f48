"""Redaction measured on an external corpus: gitleaks' own rule test cases
(the steering repo's ``shared/redaction/``, not this repository), each sent through the gateway
as a Bash and as a Write tool call,
scored on the bytes the ledger stores - not on the redactor's return value.

The floors below are what trailguard reaches today; a change that stores more secrets or
changes more negatives fails here. ``benchmarks/bench_redaction_corpus.py`` measures the same
through ``trailguard serve`` over HTTP and prints the misses.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import redaction_corpus as rc
from conftest import require_shared_redaction_data
from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

MIN_RECALL = 0.99  # issue 10 target: met
MAX_FP_RATE = 0.05  # issue 10 target: met
# Measured 2026-12-03 (gitleaks b58d3f102cf3, each case as Bash and as Write): one more stored
# secret or changed negative than this is a regression, though still within the targets.
MAX_STORED_SECRETS = 14  # of 2,270 tool calls with a secret
MAX_NEGATIVES_CHANGED = 34  # of 684 negative tool calls
MIN_POSITIVES = 500
MIN_PROVIDERS = 100


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> rc.Score:
    require_shared_redaction_data()
    _, cases = rc.load()
    data_dir = tmp_path_factory.mktemp("external-corpus") / "ledger"
    ledger = Ledger.open(data_dir)
    state = GatewayState(data_dir)
    token, _ = state.create_token("dev_corpus", "agent")
    state.close()
    with TestClient(create_app(ledger, idle_timeout=3600, hook_rate_per_second=0)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for payload in rc.payloads(cases):
            response = client.post("/hooks/claude-code", json=payload, headers=headers)
            assert response.status_code == 200, response.text
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        result = rc.score(cases, (row.body for row in store.rows()))
    finally:
        store.close()
    print(f"\nexternal corpus: {result.summary()}")
    return result


def test_external_corpus_is_large_diverse_and_has_provenance() -> None:
    provenance, cases = rc.load()
    assert provenance["source"] == "https://github.com/gitleaks/gitleaks"
    assert len(provenance["commit"]) == 40
    assert provenance["license"].startswith("MIT")
    positives = [c for c in cases if c.positive]
    assert len(positives) >= MIN_POSITIVES
    assert len({c.provider for c in positives}) >= MIN_PROVIDERS
    assert sum(1 for c in cases if not c.positive and not c.contested) >= 300
    for case in positives:
        assert all(s and s in case.text for s in case.secrets), case.id


def test_every_case_reached_the_ledger(scored: rc.Score) -> None:
    assert scored.missing == 0


def test_external_corpus_recall_on_stored_bytes(scored: rc.Score) -> None:
    report = (
        f"{scored.stored} of {scored.positives} secrets stored (recall {scored.recall:.2%}):\n"
        + "\n".join(scored.missed[:60])
    )
    assert scored.recall >= MIN_RECALL, report
    assert scored.stored <= MAX_STORED_SECRETS, report


def test_external_corpus_negatives_are_kept(scored: rc.Score) -> None:
    report = f"{scored.changed} of {scored.negatives} negatives changed:\n" + "\n".join(
        scored.false_positives
    )
    assert scored.fp_rate <= MAX_FP_RATE, report
    assert scored.changed <= MAX_NEGATIVES_CHANGED, report


def test_external_corpus_bash_and_write_are_redacted_alike(scored: rc.Score) -> None:
    bash_total, bash_stored = scored.by_tool["Bash"]
    write_total, write_stored = scored.by_tool["Write"]
    assert bash_total == write_total
    assert abs(bash_stored - write_stored) <= max(2, bash_total // 200)


def test_scorer_counts_a_stored_secret_and_a_changed_negative() -> None:
    """The scorer itself: a body that holds the secret is a miss, a changed negative an FP."""
    cases = [
        rc.Case(
            "x/tp/0", "x", "x", "literal", "token = abcdefghijklmnop1234", ("abcdefghijklmnop1234",)
        ),
        rc.Case("x/fp/0", "x", "x", "literal", "plain words", ()),
    ]

    def body(i: int, tool: str, field: str, text: str) -> bytes:
        import json

        event = {
            "eventType": "tool_invocation",
            "toolUseId": rc.tool_use_id(i, tool),
            "input": {field: text},
        }
        return json.dumps(event).encode()

    bodies = [
        body(0, "Bash", "command", "token = abcdefghijklmnop1234"),
        body(0, "Write", "content", "token = [REDACTED:generic-secret:00000000]"),
        body(1, "Bash", "command", "plain words"),
        body(1, "Write", "content", "plain [REDACTED:x:00000000]"),
    ]
    result = rc.score(cases, bodies)
    assert (result.positives, result.stored, result.negatives, result.changed) == (2, 1, 2, 1)
    assert result.missed == ["x/tp/0 [Bash, literal]"]
