"""The token formats kept as data (gitleaks' rule set), the placeholder guard, secrets repeated
across an event's fields, and the ``trailguard secrets`` commands (scan, check, update-rules)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SHARED_REDACTION, SHARED_RULES, require_shared_redaction_data
from trailguard.classify import classify_tool_call
from trailguard.cli import app
from trailguard.events import Operation, Prompt, ToolInvocation
from trailguard.ledger.writer import Ledger
from trailguard.redact import REDACTION_TAG_RE, Redactor
from trailguard.redact import rules as data_rules
from trailguard.redact.placeholders import is_placeholder
from trailguard.redact.update import RuleSetError, convert, to_python_regex
from trailguard.store.gateway_state import GatewayState

runner = CliRunner()
KEY = b"trailguard-test-redaction-key"
# Obviously fake: the alphabet and length of each format, FAKE where it fits.
FAKE_NOTION = "ntn_" + "40172938465" + "FAKEfake" + "Q2w3E4r5T6y7U8i9O0pA1s2D3jH"
FAKE_SOURCEGRAPH = "sgp_" + "fa4e0d1c9b2a7e3f" + "_" + "dead1beef2fa4e0d1c9b2a7e3f8c6d5b4a0e9f1d"
FAKE_GITHUB = "ghp_" + "FAKE" * 8 + "0000"
COMMON = {"session_id": "sess_rules", "developer_id": "dev_t", "project_id": "proj_t"}

GITLEAKS_TOML = r"""
title = "test"
[allowlist]
regexes = ['''^EXAMPLE''']
[[rules]]
id = "demo-token"
regex = '''\b(demo_(?i)[a-z0-9]{20})\b'''
keywords = ["demo_"]
entropy = 3
[[rules]]
id = "private-key"
regex = '''-----BEGIN PRIVATE KEY-----'''
keywords = ["-----begin"]
[[rules]]
id = "some-file"
path = '''\.p12$'''
"""


def test_the_rule_set_in_use_records_its_source_version_and_licence() -> None:
    require_shared_redaction_data()
    document = json.loads(SHARED_RULES.read_text(encoding="utf-8"))
    assert "gitleaks" in document["source"]
    assert re.search(r"\b[0-9a-f]{40}\b", document["version"])
    assert document["license"].startswith("MIT")
    licence = (SHARED_REDACTION / "LICENSE-gitleaks").read_text(encoding="utf-8")
    assert "Copyright (c) 2019 Zachary Rice" in licence
    assert len(document["rules"]) >= 200
    for rule in data_rules.rule_set().rules:
        assert REDACTION_TAG_RE.fullmatch(f"[REDACTED:{rule.kind}:00000000]"), rule.id
        assert rule.keywords, rule.id


def test_update_converts_a_gitleaks_file_and_skips_what_trailguard_covers() -> None:
    converted = convert(GITLEAKS_TOML)
    rules = converted.rules[1:]
    assert [r["id"] for r in rules] == ["demo-token"]
    assert re.compile(rules[0]["regex"]).search("x demo_ABCDEFGHIJ0123456789 y")
    assert converted.skipped == {
        "private-key": "covered by trailguard's own rules",
        "some-file": "matches file paths, not content",
    }
    assert converted.rules[0]["global"]["regexes"] == ["^EXAMPLE"]


def test_inline_flags_after_the_start_are_scoped_to_their_group() -> None:
    assert to_python_regex(r"a(?i)b|c") == r"a(?i:b)|c"
    assert to_python_regex(r"(x(?i)y)z") == r"(x(?i:y))z"
    assert re.compile(to_python_regex(r"a(?i)b")).fullmatch("aB")
    assert not re.compile(to_python_regex(r"a(?i)b")).fullmatch("AB")
    assert to_python_regex(r"[[:alnum:]]{2}\z") == r"[a-zA-Z0-9]{2}\Z"


@pytest.mark.parametrize("text", ["not toml [", "title = 'no rules'\n"])
def test_update_refuses_a_file_that_is_not_a_rule_set(text: str) -> None:
    with pytest.raises(RuleSetError):
        convert(text)


def test_update_rules_command_writes_the_file_and_names_a_bad_input(tmp_path: Path) -> None:
    toml = tmp_path / "gitleaks.toml"
    toml.write_text(GITLEAKS_TOML, encoding="utf-8")
    target = tmp_path / "rules.json"
    result = runner.invoke(
        app, ["secrets", "update-rules", str(toml), "--version", "v0-test", "--out", str(target)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["version"] == "v0-test"
    assert [r["id"] for r in document["rules"]] == ["demo-token"]
    assert data_rules.parse_rule_set(document).rules[0].kind == "demo-token"
    bad = tmp_path / "bad.toml"
    bad.write_text("title = 'x'\n", encoding="utf-8")
    result = runner.invoke(app, ["secrets", "update-rules", str(bad), "--version", "v"])
    assert result.exit_code == 2
    assert "no [[rules]]" in result.output


@pytest.mark.parametrize(
    ("secret", "rule"),
    [(FAKE_NOTION, "notion-api-token"), (FAKE_SOURCEGRAPH, "sourcegraph-access-token")],
)
def test_each_tag_names_the_rule_that_fired(secret: str, rule: str) -> None:
    out, findings = Redactor(KEY).redact_text(f"echo {secret} > /tmp/x")
    assert secret not in out
    assert [f.kind for f in findings] == [rule]
    assert f"[REDACTED:{rule}:" in out


@pytest.mark.parametrize(
    "text",
    [
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "export GITHUB_TOKEN=ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "- (id)hf_requiredCharacteristicTypesForDisplayMetadata;",
        'PREFECT_API_KEY = "pnu_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"',
        "curl -H 'Authorization: Bearer <token>' https://api.example.com",
        "export API_TOKEN=${API_TOKEN}",
        "export API_TOKEN=$(vault read -field=token secret/ci)",
        "-e SUMO_ACCESS_KEY=`etcdctl get /sumologic_secret`",
        "api_key = 'your-api-key'",
        "xoxe.xoxp-1-SlackAppConfigurationAccessTokenHere",
    ],
)
def test_placeholders_substitutions_and_identifiers_are_kept(text: str) -> None:
    out, findings = Redactor(KEY).redact_text(text)
    assert out == text, findings


def test_placeholder_guard_keeps_random_tokens() -> None:
    assert is_placeholder("ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
    assert is_placeholder("glc_111111111111111111111111111111111111111111=")
    assert not is_placeholder(FAKE_GITHUB)
    assert not is_placeholder(
        "AAAAAAAAAAAAAAAAAAAAAFAKEgmab6reZs7PYF8jjxzFlzuX3e4cFiRptZIxMC5kJ4nRm", strict=True
    )


def test_a_token_body_repeating_a_short_unit_is_a_pattern_not_a_key() -> None:
    assert is_placeholder("GR1348941" + "ab9" * 7)
    assert is_placeholder("glpat-" + "ab" * 10, strict=True)
    assert not is_placeholder("GR1348941" + "Q2w3E4r5T6y7U8i9O0pA")
    out, _ = Redactor(KEY).redact_text("echo GR1348941" + "ab9" * 7)
    assert out == "echo GR1348941" + "ab9" * 7


@pytest.mark.parametrize(
    "text",
    [
        "aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE --profile docs",
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE aws s3 ls",
        'settings = {"secret_key": "sk_abcdefghijklmnopqrstuvwxyz0123"}',
    ],
)
def test_examples_the_rule_set_allowlists_are_kept_under_any_name(text: str) -> None:
    """gitleaks' own allowlists (``AKIA...EXAMPLE``, the AWS documentation's key id) and global
    stopwords (the alphabet) hold for trailguard's formats and secret-named values too."""
    require_shared_redaction_data()
    out, findings = Redactor(KEY).redact_text(text)
    assert out == text, findings


def test_a_fake_key_that_is_no_documented_example_is_still_redacted() -> None:
    require_shared_redaction_data()
    for text, secret in [
        ("export AWS_ACCESS_KEY_ID=AKIAFAKEFAKEFAKE0000", "AKIAFAKEFAKEFAKE0000"),
        ("echo AKIAFAKE0000EXAMPLE1", "AKIAFAKE0000EXAMPLE1"),
        ('settings = {"secret_key": "sk_abcdefghijFAKE0000"}', "sk_abcdefghijFAKE0000"),
        # Vault's allowlist filters by shape (letters only), it names no example: not asked
        ("export VAULT_TOKEN=s." + "FAKEfake" * 3, "s." + "FAKEfake" * 3),
    ]:
        out, findings = Redactor(KEY).redact_text(text)
        assert secret not in out, text
        assert findings, text


def test_a_secret_repeated_in_operations_is_redacted_there_too() -> None:
    """The shell parser turns ``"apiToken" => "<value>"`` into a redirect whose target is the
    value alone: the operation must not keep what the input lost."""
    value = "9fQ2xK7pL3mZ8vB1nC4wFAKE6tY0uR5e"
    event = ToolInvocation(
        tool="Bash",
        tool_use_id="toolu_echo",
        input={"command": f'"apiToken" => "{value}"'},
        operations=[
            Operation(kind="file", action="file:Write", resource=value, access="write",
                      risk="low", raw=f'"apiToken" => "{value}"'),
        ],
        policy_result="allowed",
        **COMMON,
    )  # fmt: skip
    redacted = Redactor(KEY).redact_event(event)
    stored = redacted.model_dump_json()
    assert value not in stored
    assert redacted.operations[0].resource == redacted.input["command"].split('"')[3]


def test_a_secret_cut_short_in_an_excerpt_is_redacted_there_too() -> None:
    """The classifier quotes the first 60 characters of a command it cannot parse; a token cut
    by that excerpt is no longer in its format, so it is replaced as the whole token's echo."""
    command = f'<config note="setup, do not edit"> {FAKE_GITHUB}</config>'
    operations = classify_tool_call("Bash", {"command": command})
    why = operations[0].attributes["why"]
    assert why.endswith("…")
    assert FAKE_GITHUB[:16] in why  # the excerpt cuts the token
    event = ToolInvocation(
        tool="Bash", tool_use_id="toolu_cut", input={"command": command},
        operations=operations, policy_result="ask", **COMMON,
    )  # fmt: skip
    redacted = Redactor(KEY).redact_event(event)
    stored = redacted.model_dump_json()
    assert FAKE_GITHUB[:8] not in stored
    assert "setup, do not edit" in redacted.operations[0].attributes["why"]
    tag = Redactor(KEY).tag("github-token", FAKE_GITHUB)
    assert redacted.operations[0].attributes["why"].endswith(tag + "…")


def _ledger_with(tmp_path: Path, *events: object) -> Path:
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir)
    try:
        for event in events:
            ledger.append(event)  # type: ignore[arg-type]
    finally:
        ledger.close()
    return data_dir


def test_secrets_scan_lists_stored_events_the_current_rules_catch(tmp_path: Path) -> None:
    """Events stored before a rule existed (appended here without the redaction stage) are
    listed by seq, field and rule - never the secret - and the read is itself recorded."""
    data_dir = _ledger_with(
        tmp_path,
        Prompt(prompt="list the files", **COMMON),
        Prompt(prompt=f"use {FAKE_NOTION} for the notion import", **COMMON),
    )
    result = runner.invoke(
        app, ["secrets", "scan", "--data-dir", str(data_dir), "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    assert FAKE_NOTION not in result.output
    listed = json.loads(result.stdout)
    assert [f["event_type"] for f in listed] == ["prompt"]
    assert listed[0]["fields"] == ["/prompt"]
    assert listed[0]["rules"] == ["notion-api-token"]
    state = GatewayState(data_dir)
    try:
        queued = [json.loads(document) for _, document in state.pending_events()]
    finally:
        state.close()
    assert any(e.get("action") == "secrets_scan" for e in queued)


def test_secrets_scan_of_a_clean_ledger_exits_0(tmp_path: Path) -> None:
    data_dir = _ledger_with(tmp_path, Prompt(prompt="list the files", **COMMON))
    result = runner.invoke(app, ["secrets", "scan", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "0 stored event(s)" in result.output


def test_secrets_scan_names_a_bad_time(tmp_path: Path) -> None:
    data_dir = _ledger_with(tmp_path, Prompt(prompt="x", **COMMON))
    result = runner.invoke(app, ["secrets", "scan", "--data-dir", str(data_dir), "--since", "soon"])
    assert result.exit_code == 2
    assert "since" in result.output.lower()


def test_secrets_check_prints_what_would_be_stored(tmp_path: Path) -> None:
    file = tmp_path / "deploy.sh"
    file.write_text(f"export GITHUB_TOKEN={FAKE_GITHUB}\n", encoding="utf-8")
    result = runner.invoke(app, ["secrets", "check", str(file)])
    assert result.exit_code == 1
    assert FAKE_GITHUB not in result.stdout
    assert "export GITHUB_TOKEN=[REDACTED:github-token:" in result.stdout
    clean = runner.invoke(app, ["secrets", "check"], input="ls -la\n")
    assert clean.exit_code == 0
    assert clean.stdout == "ls -la\n"


def test_redaction_runs_without_a_rule_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No operator rule set (a fresh install): trailguard's own rules still redact, and the
    data rules find nothing instead of failing every hook."""
    from trailguard.redact import engine

    empty = data_rules.parse_rule_set(data_rules.NO_RULES)
    assert data_rules.scan("ghp_anything sk_live_x", "ghp_anything sk_live_x", empty) == []
    assert not data_rules.allowlisted("AIzaSyFAKE", empty)
    monkeypatch.setenv("TRAILGUARD_SECRET_RULES", str(tmp_path / "absent.json"))
    data_rules.rule_set.cache_clear()
    engine._data_kinds.cache_clear()
    try:
        out, findings = Redactor(KEY).redact_text(f"export GITHUB_TOKEN={FAKE_GITHUB}")
        assert FAKE_GITHUB not in out
        assert [f.kind for f in findings] == ["github-token"]
    finally:
        monkeypatch.undo()
        data_rules.rule_set.cache_clear()
        engine._data_kinds.cache_clear()


FAKE_SHOPIFY = "shpat_" + "0123456789abcdef" * 2  # only the data rules know this format


def test_remembered_scans_follow_a_rule_set_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """The redactor remembers what it found in texts it saw recently (most strings of a hook
    request come again). A text scanned under one rule set is scanned again under another:
    a remembered "nothing here" must not outlive the rules that said it, nor the reverse."""
    require_shared_redaction_data()
    from trailguard.redact import engine

    text = f"export SHOP={FAKE_SHOPIFY}"
    redactor = Redactor(KEY)
    assert FAKE_SHOPIFY not in redactor.redact_text(text)[0]
    monkeypatch.setenv("TRAILGUARD_SECRET_RULES", "/nonexistent/rules.json")
    data_rules.rule_set.cache_clear()
    engine._data_kinds.cache_clear()
    try:
        assert redactor.redact_text(text)[0] == text  # trailguard's own rules: not a secret
    finally:
        monkeypatch.undo()
        data_rules.rule_set.cache_clear()
        engine._data_kinds.cache_clear()
    assert FAKE_SHOPIFY not in redactor.redact_text(text)[0]


def test_remembered_scans_hold_no_secret_text() -> None:
    """What the cache keeps is a keyed digest of each text and the offsets found in it: a
    memory dump of the gateway shows no secret the cache kept alive."""
    from trailguard.redact import engine

    secret_text = f"GITHUB_TOKEN={FAKE_GITHUB} SHOP={FAKE_SHOPIFY}"
    for _ in range(2):
        out, findings = Redactor(KEY).redact_text(secret_text)
        assert FAKE_GITHUB not in out
        assert len(findings) == 2
    entries = engine._span_cache._entries
    assert entries, "the text was not remembered"
    kept = repr(entries)
    for part in (FAKE_GITHUB, FAKE_SHOPIFY, FAKE_GITHUB[4:20], FAKE_SHOPIFY[6:22]):
        assert part not in kept
    assert all(isinstance(key, bytes) and len(key) == 16 for key in entries)
