"""`GET /v1/reports` and `GET /v1/evidence`: auditor and admin tokens only, the same report and
bundle as the CLI, and every request (allowed or refused) recorded as audit access."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from incident_data import SESSION_A, SESSION_B, Incident, record_incident
from trailguard.gateway.app import create_app
from trailguard.incident.bundle import verify_bundle
from trailguard.ledger.keys import load_verifier
from trailguard.ledger.writer import Ledger
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Incident, str]]:
    incident = record_incident(tmp_path / "ledger")
    state = GatewayState(incident.data_dir)
    agent, _ = state.create_token("dev_mallory", "agent")
    state.close()
    app = create_app(Ledger.open(incident.data_dir), idle_timeout=3600)
    with TestClient(app) as client:
        yield client, incident, agent


def accesses(data_dir: Path) -> list[dict]:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return [orjson.loads(row.body) for row in store.rows() if row.event_type == "audit_access"]
    finally:
        store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_report_api_serves_every_form_to_auditors_and_records_each_read(served):
    client, incident, agent = served
    params = [("session", SESSION_A), ("session", SESSION_B)]
    refused = client.get("/v1/reports", params=params, headers=bearer(agent))
    assert refused.status_code == 403
    as_json = client.get("/v1/reports", params=[*params, ("format", "json")],
                         headers=bearer(incident.auditor_token))  # fmt: skip
    assert as_json.status_code == 200, as_json.text
    document = as_json.json()
    assert {e["sessionId"] for e in document["timeline"]} == {SESSION_A, SESSION_B}
    assert document["header"]["verification"]["result"] == "verified"
    assert document["header"]["generatedBy"] == "aud_sam (auditor token, GET /v1/reports)"
    html = client.get("/v1/reports", params=params, headers=bearer(incident.admin_token))
    assert html.headers["content-type"].startswith("text/html")
    assert "<script>window.__pwned" not in html.text  # escaped
    assert "&lt;script&gt;window.__pwned" in html.text
    md = client.get("/v1/reports", params=[*params, ("format", "md")],
                    headers=bearer(incident.auditor_token))  # fmt: skip
    assert md.headers["content-type"].startswith("text/markdown")
    recorded = accesses(incident.data_dir)
    assert [(a["action"], a.get("outcome"), a["developerId"]) for a in recorded] == [
        ("GET /v1/reports", "refused", "dev_mallory"),
        ("GET /v1/reports", "allowed", "aud_sam"),
        ("GET /v1/reports", "allowed", "adm_kim"),
        ("GET /v1/reports", "allowed", "aud_sam"),
    ]
    assert recorded[1]["query"]["sessions"] == [SESSION_A, SESSION_B]
    assert recorded[1]["resultCount"] == len(document["timeline"])


def test_the_evidence_api_serves_a_bundle_that_verifies_offline(served):
    client, incident, agent = served
    assert client.get("/v1/evidence", params={"session": SESSION_A},
                      headers=bearer(agent)).status_code == 403  # fmt: skip
    answer = client.get("/v1/evidence", params={"session": SESSION_A},
                        headers=bearer(incident.auditor_token))  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    result = verify_bundle(answer.content, load_verifier(str(incident.data_dir / "signing.pub")))
    assert result.valid, result.findings
    manifest = zipfile.ZipFile(io.BytesIO(answer.content)).read("MANIFEST.json")
    digest = hashlib.sha256(manifest).hexdigest()
    assert answer.headers["x-trailguard-manifest-sha256"] == digest
    (access,) = [a for a in accesses(incident.data_dir) if a.get("outcome") == "allowed"]
    assert access["action"] == "GET /v1/evidence"
    assert access["query"]["manifestSha256"] == digest


def test_bad_scopes_are_4xx_naming_the_problem(served):
    client, incident, _ = served
    headers = bearer(incident.auditor_token)
    unknown = client.get("/v1/reports", params={"session": "nope"}, headers=headers)
    assert unknown.status_code == 404
    assert "no session 'nope'" in unknown.json()["detail"]
    nothing = client.get("/v1/reports", headers=headers)
    assert nothing.status_code == 400
    assert "--session S" in nothing.json()["detail"]
    bad_time = client.get("/v1/evidence", params={"developer": "d", "since": "monday"},
                          headers=headers)  # fmt: skip
    assert bad_time.status_code == 400
    assert "since" in bad_time.json()["detail"]
    empty = client.get("/v1/evidence", params={"developer": "nobody"}, headers=headers)
    assert empty.status_code == 404
    bad_format = client.get("/v1/reports", params={"developer": "d", "format": "pdf"},
                            headers=headers)  # fmt: skip
    assert bad_format.status_code == 422
