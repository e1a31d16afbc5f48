"""`trailguard proof --consistency --from SIZE [--to SIZE]`: an auditor holding an old
checkpoint checks, with only the public key, that the log only grew since."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import tamper
from conftest import sample_events
from trailguard.cli import app
from trailguard.ledger.checkpoint import read_unverified
from trailguard.ledger.note import Signer
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.sqlite import SQLiteStore

runner = CliRunner()


@pytest.fixture
def grown(tmp_path: Path) -> tuple[Path, Path]:
    """A ledger whose checkpoint an auditor kept, which then grew by 200 events."""
    data_dir = tmp_path / "ledger"
    config = LedgerConfig(checkpoint_every_events=40)
    with Ledger.open(data_dir, config=config) as ledger:
        ledger.append_many(sample_events(90))
    kept = tmp_path / "kept.checkpoint"
    result = runner.invoke(app, ["checkpoint", "--data-dir", str(data_dir)])
    assert result.exit_code == 0
    kept.write_text(result.stdout)
    with Ledger.open(data_dir, config=config) as ledger:
        ledger.append_many(sample_events(200, session="sess_later"))
    return data_dir, kept


def prove(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["proof", "--consistency", "--data-dir", str(data_dir), *args])
    return result.exit_code, result.output


def check(proof: str, key: Path, tmp_path: Path, *args: str) -> tuple[int, str]:
    path = tmp_path / "consistency.json"
    path.write_text(proof)
    result = runner.invoke(app, ["verify-proof", str(path), "--key", str(key), *args])
    return result.exit_code, result.output


def test_a_kept_checkpoint_is_proven_a_prefix_of_the_latest(grown, tmp_path):
    data_dir, kept = grown
    old = read_unverified(kept.read_text())
    code, proof = prove(data_dir, "--from", str(old.tree_size))
    assert code == 0, proof
    bundle = json.loads(proof)
    assert bundle["fromSize"] == old.tree_size
    assert bundle["fromRoot"] == old.root_b64
    latest = read_unverified(bundle["checkpoint"])
    assert latest.tree_size > old.tree_size + 200
    assert bundle["consistencyPath"]
    code, output = check(
        proof, data_dir / "signing.pub", tmp_path, "--trusted-checkpoint", str(kept)
    )
    assert code == 0, output
    assert f"the log of {old.tree_size} events (the trusted checkpoint's root) is a prefix" in (
        output
    )


def test_consistency_to_an_older_checkpoint_event_with_to(grown, tmp_path):
    data_dir, _kept = grown
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        sizes = [
            orjson.loads(row.body)["treeSize"]
            for row in store.rows()
            if row.event_type == "checkpoint"
        ]
    finally:
        store.close()
    code, proof = prove(data_dir, "--from", str(sizes[1]), "--to", str(sizes[3]))
    assert code == 0, proof
    assert json.loads(proof)["toSize"] == sizes[3]
    code, output = check(proof, data_dir / "signing.pub", tmp_path)
    assert code == 0, output
    assert "pass --trusted-checkpoint" in output  # the old root came from the proof itself
    code, output = prove(data_dir, "--from", "5", "--to", str(sizes[3] + 1))
    assert code == 1
    assert f"no signed checkpoint covers exactly {sizes[3] + 1} events" in output


def test_a_history_rewritten_with_the_real_key_is_caught_by_the_kept_checkpoint(grown, tmp_path):
    data_dir, kept = grown
    old = read_unverified(kept.read_text())
    signer = Signer.from_string((data_dir / "signing.key").read_text())
    tamper.edit_event(data_dir, 10, lambda d: d.update(prompt="nothing happened here"))
    tamper.rehash_everything(data_dir, resign_with=signer)  # an insider with the key
    code, proof = prove(data_dir, "--from", str(old.tree_size))
    assert code == 0, proof  # the rewritten log is consistent with itself...
    code, output = check(
        proof, data_dir / "signing.pub", tmp_path, "--trusted-checkpoint", str(kept)
    )
    assert code == 1  # ...but not with what the auditor kept
    assert "INVALID" in output
    assert "the log was rewritten (a fork)" in output


def test_a_changed_consistency_path_is_invalid(grown, tmp_path):
    data_dir, kept = grown
    old = read_unverified(kept.read_text())
    bundle = json.loads(prove(data_dir, "--from", str(old.tree_size))[1])
    first = bytearray(base64.b64decode(bundle["consistencyPath"][0]))
    first[0] ^= 1
    bundle["consistencyPath"][0] = base64.b64encode(bytes(first)).decode()
    code, output = check(
        json.dumps(bundle), data_dir / "signing.pub", tmp_path, "--trusted-checkpoint", str(kept)
    )
    assert code == 1
    assert "INVALID: consistency proof: proof rebuilds" in output


def test_consistency_options_are_checked(grown):
    data_dir, _ = grown
    assert "needs --from SIZE" in prove(data_dir)[1]
    code, output = prove(data_dir, "--from", "100000")
    assert code == 1
    assert "--from must be between 1 and" in output
    both = runner.invoke(
        app, ["proof", "--data-dir", str(data_dir), "--event", "x", "--consistency"]
    )
    assert both.exit_code == 2
    assert "either --event ID (inclusion) or --consistency --from SIZE" in both.output
