"""Secret redaction: recall and false positives on the corpus, and the Redactor's contract.

``pytest -s tests/test_redact.py`` prints the corpus recall / false-positive rate and the
64 KiB timing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailguard.redact import REDACTION_TAG_RE, Finding, Redactor, secret_name_kind

CORPUS = Path(__file__).parent / "corpus" / "redaction.jsonl"
KEY = b"trailguard-test-redaction-key"

# Obviously fake credentials (the corpus holds many more).
FAKE_GITHUB = "ghp_" + "FAKE" * 8 + "0000"
FAKE_ANTHROPIC = "sk-ant-api03-" + "FAKE" * 20 + "-EXAMPLE_0000AA"
FAKE_AWS_KEY_ID = "AKIAFAKEFAKEFAKE0000"
FAKE_AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _load_corpus() -> list[dict[str, Any]]:
    entries = []
    for number, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            entry = json.loads(line)
            entry["line"] = number
            entries.append(entry)
    return entries


ENTRIES = _load_corpus()
POSITIVES = [e for e in ENTRIES if e["secrets"]]
NEGATIVES = [e for e in ENTRIES if not e["secrets"]]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(KEY)


def _tag(kind: str, secret: str, key: bytes = KEY) -> str:
    digest = hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
    return f"[REDACTED:{kind}:{digest[:8]}]"


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------


def test_corpus_is_large_and_well_formed() -> None:
    assert len(POSITIVES) >= 150
    assert len(NEGATIVES) >= 100
    for entry in ENTRIES:
        assert set(entry) == {"text", "secrets", "kinds", "note", "line"}, entry["line"]
        assert entry["note"], entry["line"]
        for secret in entry["secrets"]:
            assert secret, entry["line"]
            assert secret in entry["text"], entry["line"]
        assert bool(entry["kinds"]) == bool(entry["secrets"]), entry["line"]


def test_corpus_recall_and_false_positives(redactor: Redactor) -> None:
    missed = []
    for entry in POSITIVES:
        out, _ = redactor.redact_text(entry["text"])
        leaked = [s for s in entry["secrets"] if s in out]
        if leaked or "[REDACTED:" not in out:
            missed.append(f"line {entry['line']} ({entry['note']})")
    false_positives = []
    for entry in NEGATIVES:
        out, findings = redactor.redact_text(entry["text"])
        if out != entry["text"]:
            kinds = sorted({f.kind for f in findings})
            false_positives.append(f"line {entry['line']} ({entry['note']}): {kinds}")

    recall = 1 - len(missed) / len(POSITIVES)
    fp_rate = len(false_positives) / len(NEGATIVES)
    print(
        f"\nredaction corpus: recall {recall:.1%} "
        f"({len(POSITIVES) - len(missed)}/{len(POSITIVES)} positives), "
        f"false positives {fp_rate:.1%} ({len(false_positives)}/{len(NEGATIVES)} negatives)"
    )
    assert not missed, "secrets left in the output:\n" + "\n".join(missed)
    assert not false_positives, "negatives changed:\n" + "\n".join(false_positives)


def test_corpus_kinds(redactor: Redactor) -> None:
    wrong = []
    for entry in POSITIVES:
        _, findings = redactor.redact_text(entry["text"])
        found = {f.kind for f in findings}
        if not set(entry["kinds"]) <= found:
            wrong.append(f"line {entry['line']}: expected {entry['kinds']}, got {sorted(found)}")
    assert not wrong, "\n".join(wrong)


def test_corpus_redaction_is_idempotent(redactor: Redactor) -> None:
    for entry in ENTRIES:
        once, _ = redactor.redact_text(entry["text"])
        twice, findings = redactor.redact_text(once)
        assert twice == once, entry["line"]
        assert findings == [], entry["line"]


def test_findings_never_carry_secret_text(redactor: Redactor) -> None:
    for entry in POSITIVES:
        _, findings = redactor.redact_text(entry["text"])
        for finding in findings:
            assert set(dataclasses.asdict(finding)) == {"kind", "start", "end", "path"}
            shown = repr(finding) + str(dataclasses.astuple(finding))
            for secret in entry["secrets"]:
                assert secret not in shown, entry["line"]


def test_finding_offsets_index_the_original_text(redactor: Redactor) -> None:
    text = f"export GITHUB_TOKEN={FAKE_GITHUB}\ncurl -u deploy:FAKEcurlPW42 https://x.example"
    out, findings = redactor.redact_text(text)
    assert [(f.kind, text[f.start : f.end]) for f in findings] == [
        ("github-token", FAKE_GITHUB),
        ("basic-auth", "FAKEcurlPW42"),
    ]
    assert out == (
        f"export GITHUB_TOKEN={_tag('github-token', FAKE_GITHUB)}\n"
        f"curl -u deploy:{_tag('basic-auth', 'FAKEcurlPW42')} https://x.example"
    )


# ---------------------------------------------------------------------------------------------
# Tags: keyed hashes
# ---------------------------------------------------------------------------------------------


def test_tag_is_the_keyed_hash_of_the_secret(redactor: Redactor) -> None:
    out, _ = redactor.redact_text(f"token: {FAKE_GITHUB}")
    assert out == f"token: {_tag('github-token', FAKE_GITHUB)}"
    assert REDACTION_TAG_RE.search(out)


def test_equal_secrets_get_equal_tags_across_contexts(redactor: Redactor) -> None:
    contexts = [
        f"export GITHUB_TOKEN={FAKE_GITHUB}",
        f"git clone https://{FAKE_GITHUB}@github.com/acme/app.git",
        f'curl -H "Authorization: token {FAKE_GITHUB}" https://api.github.com',
        f'{{"token": "{FAKE_GITHUB}"}}',
    ]
    tags = set()
    for text in contexts:
        out, _ = redactor.redact_text(text)
        tags.update(REDACTION_TAG_RE.findall(out))
    assert tags == {_tag("github-token", FAKE_GITHUB)}


def test_different_secrets_get_different_tags(redactor: Redactor) -> None:
    out, _ = redactor.redact_text("DB_PASSWORD=FAKEfirst001\nAPI_TOKEN=FAKEsecond002")
    tags = REDACTION_TAG_RE.findall(out)
    assert len(tags) == 2
    assert tags[0] != tags[1]


def test_different_keys_give_different_tags() -> None:
    text = f"ANTHROPIC_API_KEY={FAKE_ANTHROPIC}"
    first, _ = Redactor(b"deployment-one").redact_text(text)
    second, _ = Redactor(b"deployment-two").redact_text(text)
    assert first != second
    assert first == f"ANTHROPIC_API_KEY={_tag('anthropic-key', FAKE_ANTHROPIC, b'deployment-one')}"


def test_key_must_be_non_empty_bytes() -> None:
    with pytest.raises(TypeError):
        Redactor(b"")
    with pytest.raises(TypeError):
        Redactor("a string key")  # type: ignore[arg-type]


def test_repr_and_errors_hide_the_key() -> None:
    key = b"super-secret-redaction-key"
    assert "super-secret" not in repr(Redactor(key))
    with pytest.raises(TypeError) as excinfo:
        Redactor(b"")
    assert "super-secret" not in str(excinfo.value)


def test_nothing_is_logged(redactor: Redactor, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        redactor.redact_text(f"password: FAKEnoLog123 {FAKE_GITHUB}")
        redactor.redact_value({"password": "FAKEnoLog123"})
    assert caplog.records == []


# ---------------------------------------------------------------------------------------------
# Overlaps, edge cases, robustness
# ---------------------------------------------------------------------------------------------


def test_overlapping_rules_give_one_span_with_the_specific_kind(redactor: Redactor) -> None:
    out, findings = redactor.redact_text(f"GITHUB_TOKEN={FAKE_GITHUB}")
    assert [f.kind for f in findings] == ["github-token"]
    assert out == f"GITHUB_TOKEN={_tag('github-token', FAKE_GITHUB)}"


def test_secrets_glued_together_are_all_found(redactor: Redactor) -> None:
    # Found by the fixed-point property below: the Google key is followed by a token character
    # until the PEM block after it has been replaced.
    google = "AIza" + ("SyFAKE_FAKE-FAKE" + "9x8Gf2TvDw0s3Jn54Kh" * 2)[:35]  # not a placeholder
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEFAKEFAKEFAKEFAKEFAKE0000\n"
        "-----END RSA PRIVATE KEY-----"
    )
    text = f"key={google}{pem}\n"
    out, findings = redactor.redact_text(text)
    assert [(f.kind, text[f.start : f.end]) for f in findings] == [
        ("google-api-key", google),
        ("private-key", pem),
    ]
    assert redactor.redact_text(out) == (out, [])


def test_url_keeps_the_user_and_host(redactor: Redactor) -> None:
    out, _ = redactor.redact_text("https://jordan:FakePass123@github.com/acme/app.git")
    assert out == (
        f"https://jordan:{_tag('url-credentials', 'FakePass123')}@github.com/acme/app.git"
    )


def test_offsets_survive_length_changing_lowercase(redactor: Redactor) -> None:
    # "İ".lower() is two code points: the rules scan a lower-cased copy of the text.
    text = "İİİ note: DB_PASSWORD=FAKEunicode01 İ"
    out, findings = redactor.redact_text(text)
    assert [text[f.start : f.end] for f in findings] == ["FAKEunicode01"]
    assert "FAKEunicode01" not in out


def test_lone_surrogates_are_hashed(redactor: Redactor) -> None:
    out, _ = redactor.redact_text("password: FAKE\ud800pw99")
    assert "FAKE\ud800pw99" not in out


def test_text_without_secrets_is_returned_unchanged(redactor: Redactor) -> None:
    for text in ["", "x", "ls -la", "hello world " * 1000]:
        out, findings = redactor.redact_text(text)
        assert out is text
        assert findings == []


@pytest.mark.parametrize(
    "unit",
    [
        "password=",
        "A",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "a:",
        "Authorization: ",
        "Cookie: a=",
        "--password ",
        "eyJa.",
        "AKIAIOSFODNN7EXAMPLE xxxxxxxxxx ",
        '"token": "',
        "x-api-key: ",
        "token ",
        "ghp_",
        "https://u:p@",
        "machine h login u password ",
        "mysql -p",
    ],
)
def test_hostile_inputs_stay_linear(redactor: Redactor, unit: str) -> None:
    """One repeated fragment on a single line: no rule may go quadratic. Measured as the growth
    of CPU time from 16 KiB to 64 KiB (linear: 4x; quadratic: 16x), a ratio of two runs in the
    same process, so other load on the machine cancels out; absolute figures are benchmarks'."""

    def cpu_seconds(size: int) -> float:
        hostile = (unit * (size // len(unit) + 1))[:size]
        best = math.inf
        for _ in range(3):
            start = time.process_time()
            redactor.redact_text(hostile)
            best = min(best, time.process_time() - start)
        return best

    small, large = cpu_seconds(16384), cpu_seconds(65536)
    floor = 0.002  # below a couple of milliseconds the clock's resolution is the measurement
    assert max(large, floor) / max(small, floor) < 9.0, (small, large)


_FRAGMENTS = st.sampled_from(
    [e["text"] for e in ENTRIES]
    + ["password=", "Bearer ", "Authorization: ", "Cookie: a=", "--token ", "-p", "mysql ", "@"]
    + [" ", "\n", "=", ":", '"', "'", "https://", "[REDACTED:password:0123abcd]", FAKE_GITHUB]
)
_TEXTS = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=20)), max_size=6).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_TEXTS)
def test_any_text_redacts_to_a_fixed_point(text: str) -> None:
    redactor = Redactor(KEY)
    out, findings = redactor.redact_text(text)
    previous_end = 0
    for finding in findings:  # sorted, non-overlapping, inside the text
        assert previous_end <= finding.start < finding.end <= len(text)
        previous_end = finding.end
    again, more = redactor.redact_text(out)
    assert again == out
    assert more == []


# ---------------------------------------------------------------------------------------------
# Secret-named keys and redact_value
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("password", "password"),
        ("DB_PASSWORD", "password"),
        ("PGPASSWORD", "password"),
        ("MYSQL_PWD", "password"),
        ("db-passwd", "password"),
        ("Passphrase", "password"),
        ("api_key", "secret"),
        ("apiKey", "secret"),
        ("X-Api-Key", "secret"),
        ("APIKEY", "secret"),
        ("access_key", "secret"),
        ("AWS_ACCESS_KEY_ID", "secret"),
        ("private-key", "secret"),
        ("client_secret", "secret"),
        ("clientSecret", "secret"),
        ("SECRET_KEY_BASE", "secret"),
        ("client-key-data", "secret"),
        ("GITHUB_TOKEN", "secret"),
        ("accessToken", "secret"),
        ("credentials", "secret"),
        ("BASIC_AUTH", "secret"),
        ("STRIPE_KEY", "secret"),
        ("Authorization", "authorization"),
        ("Cookie", "cookie"),
        ("TOKENIZER_PATH", None),
        ("max_tokens", None),
        ("input_tokens", None),
        ("eos_token", None),
        ("NextToken", None),
        ("TOKEN_TTL", None),
        ("PASSWORD_FILE", None),
        ("SECRET_NAME", None),
        ("AUTH_PROVIDER", None),
        ("PUBLIC_KEY", None),
        ("STRIPE_PUBLISHABLE_KEY", None),
        ("cache_key", None),
        ("OAUTH_CLIENT_ID", None),
        ("key", None),
        ("author", None),
        ("COOKIE_SECURE", None),
        ("IS_PASSWORD_SET", None),
        ("ClientToken", None),
        ("RECAPTCHA_SITE_KEY", None),
        ("AZURE_STORAGE_KEY", "secret"),
        ("storepass", "password"),
        ("password_confirmation", "password"),
        ("API_KEY_PROD", "secret"),
        ("token_bucket_size", None),
    ],
)
def test_secret_name_kind(name: str, kind: str | None) -> None:
    assert secret_name_kind(name) == kind


def test_redact_value_walks_nested_json(redactor: Redactor) -> None:
    value = {
        "tool": "Bash",
        "input": {"command": f"export GITHUB_TOKEN={FAKE_GITHUB}", "timeout": 120},
        "env": {"DB_PASSWORD": "hunter", "LOG_LEVEL": "debug", "API-Key": "FAKE"},
        "headers": {"Authorization": "Bearer FAKEheaderTok0001", "Accept": "text/html"},
        "credentials": {"user": "app", "client_secret": "x", "nested": ["FAKEa", 42, True]},
        "usage": {"max_tokens": 4096, "input_tokens": 12, "token_count": 3},
        "items": [f"key is {FAKE_ANTHROPIC}", None, False, 1.5],
        "password": 123456,
        "token": None,
        "api_key": "",
    }
    out, findings = redactor.redact_value(value)

    assert out["tool"] == "Bash"
    assert out["input"] == {
        "command": f"export GITHUB_TOKEN={_tag('github-token', FAKE_GITHUB)}",
        "timeout": 120,
    }
    # secret-named keys: redacted whatever the value looks like
    assert out["env"] == {
        "DB_PASSWORD": _tag("password", "hunter"),
        "LOG_LEVEL": "debug",
        "API-Key": _tag("generic-secret", "FAKE"),
    }
    assert out["headers"] == {
        "Authorization": f"Bearer {_tag('bearer-token', 'FAKEheaderTok0001')}",
        "Accept": "text/html",
    }
    # everything under a secret-named key, booleans kept
    assert out["credentials"] == {
        "user": _tag("generic-secret", "app"),
        "client_secret": _tag("generic-secret", "x"),
        "nested": [_tag("generic-secret", "FAKEa"), _tag("generic-secret", "42"), True],
    }
    assert out["usage"] == value["usage"]
    assert out["items"] == [f"key is {_tag('anthropic-key', FAKE_ANTHROPIC)}", None, False, 1.5]
    assert out["password"] == _tag("password", "123456")
    assert out["token"] is None
    assert out["api_key"] == ""

    paths = {f.path for f in findings}
    assert {
        "/input/command",
        "/env/DB_PASSWORD",
        "/env/API-Key",
        "/headers/Authorization",
        "/credentials/nested/0",
        "/items/0",
        "/password",
    } <= paths
    assert all(isinstance(f, Finding) for f in findings)


def test_redact_value_does_not_mutate_its_input(redactor: Redactor) -> None:
    value = {"password": "FAKEmut", "list": [{"token": "FAKEtok"}]}
    snapshot = json.loads(json.dumps(value))
    redactor.redact_value(value)
    assert value == snapshot


def test_redact_value_is_idempotent(redactor: Redactor) -> None:
    value = {
        "password": "FAKEidem",
        "Authorization": "Basic RkFLRXVzZXI6RkFLRXBhc3M=",
        "text": f"x {FAKE_AWS_KEY_ID} y",
    }
    once, _ = redactor.redact_value(value)
    twice, findings = redactor.redact_value(once)
    assert twice == once
    assert findings == []


def test_redact_value_names_a_recognised_credential_by_its_format(redactor: Redactor) -> None:
    out, findings = redactor.redact_value({"aws_secret_access_key": FAKE_AWS_SECRET})
    assert out == {"aws_secret_access_key": _tag("aws-secret-key", FAKE_AWS_SECRET)}
    assert [f.kind for f in findings] == ["aws-secret-key"]


def test_redact_value_tags_match_text_tags(redactor: Redactor) -> None:
    from_value, _ = redactor.redact_value({"Authorization": "Bearer FAKEsame0000token"})
    from_text, _ = redactor.redact_text("Authorization: Bearer FAKEsame0000token")
    assert from_value["Authorization"] == from_text.removeprefix("Authorization: ")


def test_redact_value_redacts_secrets_in_keys_and_escapes_pointers(redactor: Redactor) -> None:
    out, findings = redactor.redact_value({"a/b~c": {FAKE_GITHUB: "owner"}})
    assert out == {"a/b~c": {_tag("github-token", FAKE_GITHUB): "owner"}}
    assert [(f.kind, f.path) for f in findings] == [("github-token", "/a~1b~0c")]


def test_redact_value_passes_other_scalars_through(redactor: Redactor) -> None:
    out, findings = redactor.redact_value((1, "two", 3.0, None, True))
    assert out == (1, "two", 3.0, None, True)
    assert findings == []


# ---------------------------------------------------------------------------------------------
# Performance
# ---------------------------------------------------------------------------------------------


def _tool_output_64k() -> str:
    """64 KiB of realistic tool output: source code, a lock file, logs, .env lines, secrets."""
    code = (Path(__file__).parent.parent / "src" / "trailguard" / "events.py").read_text()
    lock = "".join(
        f'    "node_modules/pkg{i}": {{\n      "version": "1.{i}.0",\n'
        f'      "resolved": "https://registry.npmjs.org/pkg{i}/-/pkg{i}-1.{i}.0.tgz",\n'
        '      "integrity": "sha512-v2kDEe57lecTulaDIuNTPy3Ry4gLGJ6Z1O3vE1krgXZNrsQ+LFTGHVxVj'
        'cXPs17LhbZVGedAJv8XZ1tvj5FvSg=="\n    },\n'
        for i in range(120)
    )
    log = "".join(
        f"2026-04-15T14:32:{i % 60:02d}.123Z INFO id=3f2a9c1e-{i:04d}-4b7d-9e1f-0123456789ab "
        f"sha=3f2a9c1e5b7d9e1f0123456789abcdef01234567 tokens_in={i} status=200\n"
        for i in range(250)
    )
    secrets = (
        f"export GITHUB_TOKEN={FAKE_GITHUB}\nDB_PASSWORD=FAKEperf0001\n"
        f"curl -H 'Authorization: Bearer FAKEperfToken000111' https://api.example.com\n"
        f"aws_secret_access_key = {FAKE_AWS_SECRET}\n"
    )
    chunk = secrets + code + lock + log
    return (chunk * (65536 // len(chunk) + 1))[:65536]


def test_a_64k_tool_output_is_redacted_in_one_pass(redactor: Redactor) -> None:
    text = _tool_output_64k()
    assert len(text) == 65536
    out, findings = redactor.redact_text(text)
    assert FAKE_GITHUB not in out
    assert findings
    # How long it takes is benchmarks/bench_redaction_corpus.py's to say, not a timed test's.
