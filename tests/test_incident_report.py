"""`trailguard report`: one chronological timeline across sessions, verified against the signed
checkpoint, in HTML (self-contained, hostile text escaped, checked in a real Chromium), Markdown
and JSON; every report is itself recorded as an audit access."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import tamper
from incident_data import LONG_OUTPUT, SESSION_A, SESSION_B, UNRELATED, XSS, record_incident
from trailguard.cli import app
from trailguard.ledger.canonical import canonical_json
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

runner = CliRunner()
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_incident(tmp_path_factory.mktemp("incident") / "ledger").data_dir


@pytest.fixture
def incident(recorded: Path, tmp_path: Path) -> Path:
    """A private copy of the incident's data directory (tests record reads into it)."""
    copy = tmp_path / "ledger"
    shutil.copytree(recorded, copy)
    return copy


def stored(data_dir: Path) -> list[dict]:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return [orjson.loads(row.body) for row in store.rows()]
    finally:
        store.close()


def report(data_dir: Path, *args: str, expect: int = 0) -> str:
    result = runner.invoke(app, ["report", "--data-dir", str(data_dir), *args])
    assert result.exit_code == expect, result.output
    return result.stdout


def json_report(data_dir: Path, *args: str, expect: int = 0) -> dict:
    return json.loads(report(data_dir, "--format", "json", *args, expect=expect))


def test_report_timeline_holds_every_event_of_both_sessions_in_time_order(incident):
    document = json_report(incident, "--session", SESSION_A, "--session", SESSION_B[:8])
    expected = [e for e in stored(incident) if e.get("sessionId") in (SESSION_A, SESSION_B)]
    expected.sort(key=lambda e: (e["timestamp"], e["seq"]))
    # The events exactly as the ledger holds them, merged across the two sessions.
    assert document["timeline"] == expected
    assert {e["sessionId"] for e in document["timeline"]} == {SESSION_A, SESSION_B}
    assert [s["sessionId"] for s in document["sessions"]] == [SESSION_A, SESSION_B]
    assert all(e["sessionId"] != UNRELATED for e in document["timeline"])
    header = document["header"]
    assert header["verification"]["result"] == "verified"
    assert header["verification"]["verified"] == len(expected) + len(document["context"])
    assert header["scope"]["sessions"] == [SESSION_A, SESSION_B]
    assert header["firstEvent"] == expected[0]["timestamp"]
    assert header["generatedBy"].startswith("os:")
    # The checkpoint named is the latest signed tree head, and it covers every event shown.
    checkpoint = header["verification"]["checkpoint"]
    assert checkpoint["treeSize"] > max(e["seq"] for e in expected)
    assert checkpoint["note"].startswith(header["logOrigin"] + "\n")


def test_report_names_each_denial_with_its_rule_and_the_side_effects_with_their_outcome(incident):
    document = json_report(incident, "--session", SESSION_A, "--session", SESSION_B)
    denied = {
        e["toolUseId"]: e["policyRule"]
        for e in document["timeline"]
        if e["eventType"] == "tool_invocation" and e["policyResult"] == "denied"
    }
    assert denied == {
        "toolu_a_rm": "no-aws-destructive-in-prod",
        "toolu_a_push": "no-force-push-to-main",
    }
    effects = {(x["action"], x["outcome"]) for x in document["sideEffects"]}
    assert ("s3:DeleteObject", "denied: did not run") in effects
    assert ("git:Push", "denied: did not run") in effects
    assert ("s3:PutObject", "ran (success)") in effects
    versions = document["policyVersions"]
    assert len(versions) == 1
    assert versions[0]["policyVersion"].startswith("sha256:")
    assert versions[0]["denials"] == 2
    assert [c["eventType"] for c in document["policyChanges"]] == ["policy_change"]
    by_id = {s["sessionId"]: s for s in document["sessions"]}
    assert (by_id[SESSION_A]["denials"], by_id[SESSION_A]["endReason"]) == (2, "completed")
    assert by_id[SESSION_A]["developerId"] == "dev_jordan"
    assert by_id[SESSION_B]["developerId"] == "dev_ana"
    assert by_id[SESSION_B]["permissionMode"] == "acceptEdits"
    assert document["totals"]["denied"] == 2
    html = report(incident, "--session", SESSION_A, "--format", "html")
    assert "no-force-push-to-main" in html
    assert "Denied</b> by rule" in html
    markdown = report(incident, "--session", SESSION_A, "--format", "md")
    assert "**DENIED**" in markdown
    assert "no\\-force\\-push\\-to\\-main" in markdown or "`no-force-push-to-main`" in markdown


def test_long_outputs_are_shortened_with_a_length_and_sha256_anyone_can_recompute(incident):
    html = report(incident, "--session", SESSION_A, "--format", "html")
    stored_output = next(
        e["output"] for e in stored(incident) if e.get("toolUseId") == "toolu_a_log"
        and e["eventType"] == "tool_result"
    )  # fmt: skip
    encoded = canonical_json(stored_output)
    digest = "sha256:" + hashlib.sha256(encoded).hexdigest()
    assert f"the first 2000 characters of {len(encoded)} bytes, {digest}" in html
    assert LONG_OUTPUT[:200] in html
    assert LONG_OUTPUT[-200:] not in html


def test_subagent_calls_and_alerts_are_in_the_timeline(incident):
    document = json_report(incident, "--session", SESSION_A, "--session", SESSION_B)
    subagent = [e for e in document["timeline"] if e.get("agentId") == "agent_7"]
    assert {e["eventType"] for e in subagent} >= {"agent_event", "tool_invocation"}
    html = report(incident, "--session", SESSION_B, "--format", "html")
    assert "subagent agent_7" in html
    alerts = [e for e in document["timeline"] if e["eventType"] == "alert"]
    assert [a["alertType"] for a in alerts] == ["loop_suspected"]


def _external_references(html: str) -> list[str]:
    found = re.findall(r"""(?:src|href|action|poster|data)\s*=\s*["']?(?!#)([^"'\s>]+)""", html)
    found += re.findall(r"url\(\s*['\"]?(?!#)([^)'\"]+)", html)
    found += re.findall(r"@import[^;]*", html)
    return found


def test_html_report_is_one_file_with_no_external_reference(incident):
    html = report(incident, "--session", SESSION_A, "--session", SESSION_B, "--format", "html")
    text_outside_pre = re.sub(r"<pre>.*?</pre>", "", html, flags=re.S)
    assert _external_references(text_outside_pre) == []
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert "default-src 'none'" in html  # even injected markup could load nothing


def _browser_or_fail():  # pragma: no cover - exercised by the tests below
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is required in CI (pip install -e '.[dev]')")
        pytest.skip("playwright is not installed")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is required in CI (./run test installs it)")
        pytest.skip("chromium is not installed")
    return sync_playwright


def test_hostile_agent_text_in_the_html_report_stays_text_in_a_real_browser(incident, tmp_path):
    sync_playwright = _browser_or_fail()
    output = tmp_path / "incident.html"
    report(incident, "--session", SESSION_B, "-o", str(output))
    requests: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(output.as_uri())
            page.wait_for_load_state("load")
            pwned = page.evaluate("window.__pwned === undefined ? null : window.__pwned")
            injected = page.evaluate(
                "[document.scripts.length, document.images.length,"
                " [...document.links].filter(a => !a.getAttribute('href').startsWith('#')).length,"
                " document.querySelectorAll('style').length]"
            )
            shown = page.inner_text("body")
            rows = page.evaluate("document.querySelectorAll('table.timeline tbody tr').length")
            page.emulate_media(media="print")  # printable: long blocks are not cut off
            printed = page.evaluate("getComputedStyle(document.querySelector('pre')).maxHeight")
            pdf = page.pdf(format="A4")
        finally:
            browser.close()
    assert pwned is None, "agent text ran as script in the report"
    assert dialogs == []
    assert injected == [0, 0, 0, 1], "agent text became markup (script, image, link, style)"
    assert requests == [output.as_uri()], f"the report loaded something: {requests}"
    assert printed == "none"
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b"/Type /Page") >= 2
    # The payload is shown literally, as the agent wrote it.
    assert "<script>window.__pwned=1</script>" in shown
    assert '<a href="https://evil.example/x">click</a>' in shown
    session_b = [e for e in stored(incident) if e.get("sessionId") == SESSION_B]
    day_rows = len({e["timestamp"][:10] for e in session_b})
    context = json_report(incident, "--session", SESSION_B)["context"]
    assert rows == len(session_b) + len(context) + day_rows


def test_hostile_agent_text_in_the_markdown_report_renders_as_text():
    from markdown_it import MarkdownIt

    from trailguard.incident.markdown import block, code, inline

    md = MarkdownIt("gfm-like", {"html": True})  # raw HTML on, autolinks on: the worst viewer
    for rendered in (md.render(inline(XSS)), md.render(block(XSS)), md.render(code(XSS))):
        assert "<script" not in rendered
        assert "<img" not in rendered
        assert "<a " not in rendered
        assert "<style" not in rendered
        assert "\x1b" not in rendered
        assert "\u202e" not in rendered
    # a table cell cannot be split by the agent's `|`
    table = md.render(f"| a | b |\n|---|---|\n| {inline(XSS)} | z |\n")
    assert table.count("<td>") == 2


def test_markdown_report_of_the_incident_has_no_markup_from_agents(incident):
    from markdown_it import MarkdownIt

    markdown = report(incident, "--session", SESSION_B, "--format", "md")
    rendered = MarkdownIt("gfm-like", {"html": True}).render(markdown)
    assert "<script" not in rendered
    assert "<img" not in rendered
    assert "evil.example" in rendered  # shown, as text
    assert 'href="https://evil.example' not in rendered


def test_each_report_is_recorded_as_audit_access(incident):
    report(incident, "--session", SESSION_A, "--format", "json")
    state = GatewayState(incident)
    try:
        queued = [json.loads(e) for _, e in state.pending_events()]
    finally:
        state.close()
    (access,) = [e for e in queued if e["eventType"] == "audit_access"]
    assert access["action"] == "cli report"
    assert access["query"]["sessions"] == [SESSION_A]
    assert access["query"]["format"] == "json"
    assert access["resultCount"] == sum(
        1 for e in stored(incident) if e.get("sessionId") == SESSION_A
    )
    assert access["actor"].startswith("os:")


def test_a_changed_event_makes_the_report_fail_naming_its_seq(incident):
    target = next(e for e in stored(incident) if e.get("toolUseId") == "toolu_a_push")
    tamper.edit_event(incident, target["seq"], lambda d: d.update(policyResult="allowed"))
    document = json_report(incident, "--session", SESSION_A, expect=1)
    verification = document["header"]["verification"]
    assert verification["result"] == "failed"
    named = [p for p in verification["problems"] if p["where"] == f"seq {target['seq']}"]
    assert len(named) == 1
    assert "changed after they were written" in named[0]["problem"]
    html = report(incident, "--session", SESSION_A, "--format", "html", expect=1)
    assert f"seq {target['seq']}: its bytes were changed after they were written" in html


def test_a_changed_event_with_its_leaf_rehashed_fails_against_the_signed_root(incident):
    target = next(e for e in stored(incident) if e.get("toolUseId") == "toolu_a_push")
    tamper.edit_event(incident, target["seq"], lambda d: d.update(policyResult="allowed"))
    tamper.rehash_leaf(incident, target["seq"])  # the attacker fixes the cached leaf too
    document = json_report(incident, "--session", SESSION_A, expect=1)
    verification = document["header"]["verification"]
    assert verification["result"] == "failed"
    assert verification["problems"][0]["where"] == "checkpoint"
    assert "no longer matches the signed tree head" in verification["problems"][0]["problem"]
    failed = {p["where"]: p["problem"] for p in verification["problems"][1:]}
    assert "does not lead to the signed root" in failed[f"seq {target['seq']}"]
    assert verification["verified"] < verification["checked"]


def test_a_history_rewritten_without_the_key_is_refused_by_the_signature(incident):
    target = next(e for e in stored(incident) if e.get("toolUseId") == "toolu_a_push")
    tamper.edit_event(incident, target["seq"], lambda d: d.update(policyResult="allowed"))
    tamper.rehash_everything(incident)  # leaves, subtrees, roots: all but the signatures
    verification = json_report(incident, "--session", SESSION_A, expect=1)["header"]["verification"]
    assert verification["result"] == "failed"
    assert verification["verified"] == 0
    assert verification["problems"][0]["where"] == "checkpoint"
    assert "does not verify" in verification["problems"][0]["problem"]


def test_an_index_column_edited_to_pull_an_event_into_a_session_is_named(incident):
    target = next(e for e in stored(incident) if e.get("sessionId") == UNRELATED)
    tamper.execute(
        incident, "UPDATE events SET session_id = ? WHERE seq = ?", (SESSION_A, target["seq"])
    )
    document = json_report(incident, "--session", SESSION_A, expect=1)
    (problem,) = document["header"]["verification"]["problems"]
    assert problem["where"] == f"seq {target['seq']}"
    assert "index column for sessionId" in problem["problem"]


def test_report_with_a_pinned_key_says_so_and_a_wrong_key_fails(incident, tmp_path):
    pinned = json_report(incident, "--session", SESSION_A, "--key", str(incident / "signing.pub"))[
        "header"
    ]["verification"]
    assert (pinned["keyPinned"], pinned["keySource"]) == (True, "given with --key")
    from trailguard.ledger.note import Signer

    other = Signer.generate("trailguard.local/someone-else")
    wrong = json_report(incident, "--session", SESSION_A, "--key", other.verifier.to_string(),
                        expect=1)["header"]["verification"]  # fmt: skip
    assert wrong["result"] == "failed"
    assert "no signature by key trailguard.local/someone-else" in wrong["problems"][0]["problem"]


def test_report_scope_must_be_given_and_must_exist(incident):
    none = runner.invoke(app, ["report", "--data-dir", str(incident)])
    assert none.exit_code == 2
    assert "--session S (repeatable), --developer D or --project P" in none.output
    typo = runner.invoke(app, ["report", "--data-dir", str(incident), "--session", "zzz-nope"])
    assert typo.exit_code == 2
    assert "no session 'zzz-nope'" in typo.output
    bad = runner.invoke(
        app, ["report", "--data-dir", str(incident), "--developer", "d", "--since", "monday"]
    )
    assert bad.exit_code == 2
    assert "--since" in bad.output
    fmt = runner.invoke(
        app, ["report", "--data-dir", str(incident), "--developer", "d", "--format", "pdf"]
    )
    assert fmt.exit_code == 2
    assert "--format must be html, md or json" in fmt.output


def test_developer_scope_with_a_time_window(incident):
    everything = json_report(incident, "--developer", "dev_ana")
    assert {e["developerId"] for e in everything["timeline"]} == {"dev_ana"}
    assert [s["sessionId"] for s in everything["sessions"]] == [SESSION_B]
    middle = everything["timeline"][len(everything["timeline"]) // 2]["timestamp"]
    later = json_report(incident, "--developer", "dev_ana", "--since", middle)
    assert later["timeline"] == [e for e in everything["timeline"] if e["timestamp"] >= middle]
    assert later["header"]["scope"]["since"] == middle
