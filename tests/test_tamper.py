"""Tampering with a stored ledger, each kind detected and named by `trailguard verify`.

Every test really edits the SQLite file the way someone with access to the host could, then runs
the verifier an auditor runs. A test passes only if verify exits 1 and names what was changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import tamper
from conftest import sample_events
from trailguard.cli import app
from trailguard.ledger import merkle
from trailguard.ledger.note import Signer
from trailguard.ledger.writer import Ledger, LedgerConfig, LedgerIntegrityError
from trailguard.store.sqlite import SQLiteStore

runner = CliRunner()


def verify(data_dir: Path, *extra: str) -> tuple[int, dict]:
    result = runner.invoke(
        app, ["verify", "--data-dir", str(data_dir), "--workers", "1", "--format", "json", *extra]
    )
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def failures(report: dict) -> list[str]:
    return [
        f"{f['where']}: {f['problem']} (expected {f['expected']}, found {f['found']})"
        for f in report["findings"]
        if f["severity"] == "failure"
    ]


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    """A closed ledger of 200 events with a checkpoint every 25 events."""
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=25))
    for event in sample_events(200):
        ledger.append(event)
    ledger.close()
    return data_dir


def test_untouched_ledger_verifies_intact(ledger_dir):
    code, report = verify(ledger_dir)
    assert code == 0, failures(report)
    assert report["intact"]
    assert report["events"] > 200
    assert report["checkpoints"] >= 8


def checkpoint_seqs(ledger_dir) -> list[int]:
    store = SQLiteStore.in_data_dir(ledger_dir, read_only=True)
    try:
        return [
            row.seq for row in store.rows() if orjson.loads(row.body)["eventType"] == "checkpoint"
        ]
    finally:
        store.close()


def test_modified_event_bytes_are_named_by_seq(ledger_dir):
    tamper.edit_event(ledger_dir, 40, lambda e: e.update(extra={"command": "rm -rf /"}))
    code, report = verify(ledger_dir)
    assert code == 1
    found = failures(report)
    assert any(f.startswith("seq 40: event bytes were changed") for f in found), found
    assert any("signed root does not match" in f and "seq 40" not in f.split(":")[0] for f in found)


def test_modified_event_with_its_leaf_hash_rewritten_is_caught_by_the_next_checkpoint(ledger_dir):
    tamper.edit_event(ledger_dir, 40, lambda e: e.update(extra={"command": "rm -rf /"}))
    tamper.rehash_leaf(ledger_dir, 40)
    code, report = verify(ledger_dir)
    assert code == 1
    found = failures(report)
    # The checkpoint right after seq 40 names the range the change lies in.
    assert any("signed root does not match the events before it" in f for f in found), found
    # Exactly the events between the checkpoint before seq 40 and the one after it.
    checkpoints = checkpoint_seqs(ledger_dir)
    before = max(seq for seq in checkpoints if seq < 40)
    after = min(seq for seq in checkpoints if seq > 40)
    first = next(f for f in found if "signed root does not match" in f)
    assert first.startswith(f"checkpoint at seq {after}: "), found
    # (the earlier checkpoint is itself a leaf after the root it signed)
    assert f"an event in seq {before}..{after - 1} was changed" in first, found


def test_deleted_event_is_reported_as_a_gap(ledger_dir):
    tamper.execute(ledger_dir, "DELETE FROM events WHERE seq = 77")
    code, report = verify(ledger_dir)
    assert code == 1
    found = failures(report)
    assert any("events seq 77..77 are missing" in f for f in found), found


def test_forged_event_inserted_in_the_middle_is_detected(ledger_dir):
    db = tamper.connect(ledger_dir)
    db.execute("UPDATE events SET seq = seq + 1000000 WHERE seq >= 60")
    db.execute("UPDATE events SET seq = seq - 1000000 + 1 WHERE seq >= 1000000")
    forged_body = db.execute("SELECT body FROM events WHERE seq = 59").fetchone()[0]
    forged = forged_body.replace(b'"seq":59', b'"seq":60')
    db.execute(
        "INSERT INTO events SELECT 60, '01a2167a-0000-7000-8000-00000000f0f0', timestamp, "
        "event_type, session_id, developer_id, project_id, tool, ?, ? FROM events WHERE seq = 59",
        (merkle.hash_leaf(forged), forged),
    )
    db.close()
    code, report = verify(ledger_dir)
    assert code == 1
    found = failures(report)
    assert any(f.startswith("seq 60: index column for eventId") for f in found), found
    assert any("the event's own seq disagrees with its position" in f for f in found), found
    # Every later checkpoint now sits one place after the size it signed.
    assert any(
        f.startswith("checkpoint at seq") and "must cover exactly the events before it" in f
        for f in found
    ), found


def test_two_swapped_events_are_detected(ledger_dir):
    db = tamper.connect(ledger_dir)
    db.execute("UPDATE events SET seq = -1 WHERE seq = 30")
    db.execute("UPDATE events SET seq = 30 WHERE seq = 31")
    db.execute("UPDATE events SET seq = 31 WHERE seq = -1")
    db.close()
    code, report = verify(ledger_dir)
    assert code == 1
    found = failures(report)
    assert any(f.startswith("seq 30: the event's own seq disagrees") for f in found), found
    assert any(f.startswith("seq 31: the event's own seq disagrees") for f in found), found
    assert any("signed root does not match" in f for f in found), found


def test_swap_with_every_hash_rewritten_is_still_caught_by_the_signatures(ledger_dir):
    db = tamper.connect(ledger_dir)
    db.execute("UPDATE events SET seq = -1 WHERE seq = 30")
    db.execute("UPDATE events SET seq = 30 WHERE seq = 31")
    db.execute("UPDATE events SET seq = 31 WHERE seq = -1")
    db.close()
    for seq in (30, 31):
        tamper.edit_event(ledger_dir, seq, lambda e, s=seq: e.update(seq=s))
    tamper.rehash_everything(ledger_dir)
    code, report = verify(ledger_dir)
    assert code == 1
    found = failures(report)
    assert any("signature check failed" in f for f in found), found


def test_truncated_tail_passes_alone_but_is_caught_with_a_trusted_checkpoint(ledger_dir, tmp_path):
    kept = runner.invoke(app, ["checkpoint", "--data-dir", str(ledger_dir)])
    assert kept.exit_code == 0
    trusted = tmp_path / "kept-off-host.checkpoint"
    trusted.write_text(kept.stdout)
    # A clean cut right after a checkpoint, with the signed head rolled back to that
    # checkpoint's note, leaves a shorter log that is signed to its end.
    tamper.truncate_to_checkpoint(ledger_dir, 150)

    code, report = verify(ledger_dir)
    assert code == 0, "without a trusted checkpoint a clean cut is indistinguishable"
    assert any("did not record gateway_stop" in f["problem"] for f in report["findings"])

    code, report = verify(ledger_dir, "--trusted-checkpoint", str(trusted))
    assert code == 1
    found = failures(report)
    assert any("trusted checkpoint: the ledger is shorter" in f for f in found), found


def test_truncation_that_leaves_the_signed_head_is_caught_without_a_trusted_checkpoint(
    ledger_dir,
):
    db = tamper.connect(ledger_dir)
    (cut,) = db.execute(
        "SELECT max(seq) FROM events WHERE event_type = 'checkpoint' AND seq <= 150"
    ).fetchone()
    db.execute("DELETE FROM events WHERE seq > ?", (cut,))
    db.close()
    code, report = verify(ledger_dir)
    assert code == 1
    found = failures(report)
    assert any(
        "signed tree head: the ledger is shorter than its own latest signed tree head" in f
        for f in found
    ), found


def test_rewritten_history_signed_with_the_real_key_is_caught_as_a_fork(ledger_dir, tmp_path):
    kept = runner.invoke(app, ["checkpoint", "--data-dir", str(ledger_dir)])
    trusted = tmp_path / "kept.checkpoint"
    trusted.write_text(kept.stdout)
    insider = Signer.from_string((ledger_dir / "signing.key").read_text())
    tamper.edit_event(ledger_dir, 12, lambda e: e.update(prompt="nothing to see"))
    tamper.rehash_everything(ledger_dir, resign_with=insider)

    code, report = verify(ledger_dir)
    assert code == 0, failures(report)  # self-consistent: only the outside copy can tell
    code, report = verify(ledger_dir, "--trusted-checkpoint", str(trusted))
    assert code == 1
    found = failures(report)
    assert any("the log was rewritten (a fork)" in f for f in found), found


def test_every_hash_rewritten_without_the_signing_key_fails_every_later_signature(ledger_dir):
    tamper.edit_event(ledger_dir, 12, lambda e: e.update(prompt="nothing to see"))
    tamper.rehash_everything(ledger_dir)
    code, report = verify(ledger_dir)
    assert code == 1
    found = failures(report)
    signature_failures = [f for f in found if "signature check failed" in f]
    assert signature_failures, found
    assert all(f.startswith("checkpoint at seq") for f in signature_failures)
    assert not any("seq 12: event bytes were changed" in f for f in found)  # hashes are "right"


def test_replaced_signing_key_is_caught_by_a_pinned_key_or_trusted_checkpoint(ledger_dir, tmp_path):
    original_key = (ledger_dir / "signing.pub").read_text().strip()
    kept = runner.invoke(app, ["checkpoint", "--data-dir", str(ledger_dir)])
    trusted = tmp_path / "kept.checkpoint"
    trusted.write_text(kept.stdout)
    attacker = Signer.generate(original_key.split("+")[0])  # same name, different key
    tamper.edit_event(ledger_dir, 12, lambda e: e.update(prompt="nothing to see"))
    tamper.replace_signing_key(ledger_dir, attacker)
    tamper.rehash_everything(ledger_dir, resign_with=attacker)

    code, report = verify(ledger_dir, "--key", original_key)
    assert code == 1
    assert any("signature check failed" in f for f in failures(report))

    code, report = verify(ledger_dir, "--trusted-checkpoint", str(trusted))
    assert code == 1
    found = failures(report)
    assert any("was the signing key replaced?" in f for f in found), found


def test_index_column_edited_to_hide_an_event_from_session_queries_is_detected(ledger_dir):
    tamper.execute(ledger_dir, "UPDATE events SET session_id = 'sess_other' WHERE seq = 90")
    code, report = verify(ledger_dir)
    assert code == 1
    found = failures(report)
    assert any(f.startswith("seq 90: index column for sessionId") for f in found), found


def test_corrupted_cached_subtree_is_detected(tmp_path):
    data_dir = tmp_path / "big"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=100))
    ledger.append_many(sample_events(600))
    ledger.close()
    tamper.execute(
        data_dir, "UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 8 AND idx = 1"
    )
    code, report = verify(data_dir)
    assert code == 1
    found = failures(report)
    assert any(f.startswith("tree node level 8 index 1") for f in found), found


def test_ledger_stripped_of_every_checkpoint_and_renumbered_is_not_intact(ledger_dir):
    db = tamper.connect(ledger_dir)
    db.execute("DELETE FROM events WHERE event_type IN ('checkpoint', 'gateway_start')")
    rows = db.execute("SELECT seq FROM events ORDER BY seq").fetchall()
    for position, (seq,) in enumerate(rows):
        db.execute("UPDATE events SET seq = ? WHERE seq = ?", (-1 - position, seq))
    db.execute("UPDATE events SET seq = -seq - 1")
    db.close()
    for position in range(len(rows)):
        tamper.edit_event(ledger_dir, position, lambda e, p=position: e.update(seq=p))
        tamper.rehash_leaf(ledger_dir, position)
    tamper.execute(ledger_dir, "DELETE FROM tree_nodes")
    code, report = verify(ledger_dir, "--key", (ledger_dir / "signing.pub").read_text().strip())
    assert code == 1
    found = failures(report)
    assert any("shorter than its own latest signed tree head" in f for f in found), found
    assert any(f.startswith("seq 0: a ledger starts with gateway_start") for f in found), found


def test_unsigned_fields_of_the_last_checkpoint_event_must_match_its_note(ledger_dir):
    db = tamper.connect(ledger_dir)
    (last,) = db.execute("SELECT max(seq) FROM events").fetchone()
    db.close()
    tamper.edit_event(ledger_dir, last, lambda e: e.update(treeSize=999999, extra={"x": 1}))
    tamper.rehash_leaf(ledger_dir, last)
    code, report = verify(ledger_dir)
    assert code == 1
    found = failures(report)
    assert any("checkpoint event's treeSize differs from its signed note" in f for f in found)
    assert any("checkpoint event's extra differs from its signed note" in f for f in found)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE events SET body = CAST(body AS TEXT) WHERE seq = 5",
        "UPDATE events SET leaf_hash = 'x' WHERE seq = 5",
    ],
)
def test_damaged_rows_are_reported_not_crashed_on(ledger_dir, damage):
    tamper.execute(ledger_dir, damage)
    code, report = verify(ledger_dir)
    assert code == 1
    assert any(f.startswith("seq 5:") for f in failures(report)), failures(report)


def test_hostile_checkpoint_note_is_a_failure_not_a_crash(ledger_dir):
    db = tamper.connect(ledger_dir)
    (last,) = db.execute("SELECT max(seq) FROM events WHERE event_type = 'checkpoint'").fetchone()
    db.close()

    def poison(event: dict) -> None:
        text, _, _ = event["note"].partition("\n\n")
        event["note"] = text + "\n\n\u2014 " + event["origin"] + " \u00e9\u00e9\u00e9\u00e9\n"

    tamper.edit_event(ledger_dir, last, poison)
    code, report = verify(ledger_dir)
    assert code == 1
    assert any(f.startswith(f"checkpoint at seq {last}: signature") for f in failures(report))


# -- what a restart must never sign -----------------------------------------------------------


def forged_invocation() -> dict:
    from trailguard.events import ToolInvocation

    return ToolInvocation(
        tool="Bash",
        session_id="sess_forged",
        developer_id="dev_someone_else",
        input={"command": "rm -rf /srv/evidence"},
        policy_result="allowed",
        policy_rule="allow-by-default",
    ).to_json_dict()


def test_event_appended_with_sqlite3_is_quarantined_at_start_never_signed(ledger_dir):
    forged = forged_invocation()
    seq = tamper.append_forged_event(ledger_dir, forged)

    code, report = verify(ledger_dir)  # before any restart: named, not passed
    assert code == 1
    assert any(
        f"seq {seq}..{seq}: 1 event(s) lie beyond the latest signed tree head" in f
        for f in failures(report)
    ), failures(report)

    ledger = Ledger.open(ledger_dir)  # the restart the attacker hoped would adopt it
    ledger.close()
    code, report = verify(ledger_dir)
    assert code == 0, failures(report)
    assert report["quarantined"] == 1
    assert any(f["where"] == "quarantine" for f in report["findings"])
    store = SQLiteStore.in_data_dir(ledger_dir, read_only=True)
    try:
        assert store.row_by_event_id(forged["eventId"]) is None  # not in the signed tree
        (moved,) = store.quarantined()
        assert moved[0] == seq
        assert moved[1] == forged["eventId"]
        alert = next(
            orjson.loads(row.body)
            for row in store.rows()
            if row.event_type == "alert" and b"unsigned_events_quarantined" in row.body
        )
    finally:
        store.close()
    assert alert["severity"] == "critical"
    assert alert["details"]["events"][0]["eventId"] == forged["eventId"]


def test_committed_event_rewritten_after_a_crash_stops_the_next_start(ledger_dir):
    tamper.edit_event(ledger_dir, 150, lambda e: e.update(prompt="rewritten after the crash"))
    tamper.rehash_leaf(ledger_dir, 150)  # the attacker keeps the cached hashes consistent
    tamper.execute(ledger_dir, "DELETE FROM tree_nodes")
    with pytest.raises(LedgerIntegrityError, match="no longer match"):
        Ledger.open(ledger_dir)
    code, report = verify(ledger_dir)
    assert code == 1
    assert any("differ from what the writer signed" in f for f in failures(report))
