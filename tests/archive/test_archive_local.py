"""The archive format and its verifier on a local (file://) archive, where a local user can
do anything to the files: each tampering is performed and must be named by `archive verify`.
Also pruning (only after a read-back verification), verification of a pruned hot store, the
merged hot + archive query, the index, the Parquet copy, and an independent re-derivation of
the roots from the documented layout."""

from __future__ import annotations

import base64
import gzip
import hashlib
import itertools
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from typer.testing import CliRunner

import tamper
from conftest import sample_events, verify_dir
from trailguard.archive import layout
from trailguard.archive.seal import SealConfig, _due, _Pending
from trailguard.archive.tiles import TileBuilder, new_tiles, tile_path, tiles_for_size
from trailguard.cli import app
from trailguard.ledger import merkle
from trailguard.ledger.note import Signer
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.gateway_state import GatewayState

from .conftest import fill_ledger

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def archive_run(data_dir: Path, url: str, *extra: str) -> tuple[int, str]:
    return cli(
        "archive", "run", "--data-dir", str(data_dir), "--archive", url,
        "--segment-events", "1000", *extra,
    )  # fmt: skip


def archive_verify(url: str, data_dir: Path, *extra: str) -> tuple[int, dict]:
    code, output = cli(
        "archive", "verify", "--archive", url, "--key", str(data_dir / "signing.pub"),
        "--format", "json", *extra,
    )  # fmt: skip
    return code, json.loads(output)


def failures(report: dict) -> list[str]:
    return [
        f"{f['where']}: {f['problem']}" for f in report["findings"] if f["severity"] == "failure"
    ]


def writable(path: Path) -> Path:
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return path


@pytest.fixture(scope="module")
def archived(tmp_path_factory) -> tuple[Path, Path]:
    """A ledger of 3,000 events and a file:// archive of it (copied fresh for each test)."""
    base = tmp_path_factory.mktemp("archived")
    data_dir = base / "ledger"
    fill_ledger(data_dir, 3000)
    code, output = archive_run(data_dir, f"file://{base / 'archive'}")
    assert code == 0, output
    return data_dir, base / "archive"


@pytest.fixture
def copy(archived, tmp_path) -> tuple[Path, Path, str]:
    data_dir, archive = archived
    shutil.copytree(data_dir, tmp_path / "ledger")
    shutil.copytree(archive, tmp_path / "archive")
    return tmp_path / "ledger", tmp_path / "archive", f"file://{tmp_path / 'archive'}"


# -- the format -----------------------------------------------------------------------------------


def test_tile_paths_follow_c2sp_tlog_tiles():
    assert tile_path(0, 0) == "tile/0/000"
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(1, 1234067, 8) == "tile/1/x001/x234/067.p/8"
    assert tile_path(2, 1000) == "tile/2/x001/000"
    assert tiles_for_size(257) == [(0, 0, 256), (0, 1, 1), (1, 0, 1)]
    assert new_tiles(256, 257) == [(0, 1, 1)]


def test_tiles_give_the_rfc6962_root_and_can_be_resumed_at_any_size():
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(70_000)]
    builder = TileBuilder()
    for size, leaf in enumerate(leaves, start=1):
        builder.append(leaf)
        if size in (1, 255, 256, 257, 65_535, 65_536, 65_537, 70_000) or size % 9973 == 0:
            assert builder.root() == merkle.root_of(leaves[:size]), size
            opened = [[] for _ in builder.open]
            for level, _, width, data in builder.partial_tiles():
                opened[level] = [data[i : i + 32] for i in range(0, 32 * width, 32)]
            assert TileBuilder(size, opened).root() == builder.root()


def test_a_run_writes_deterministic_objects_and_a_rerun_writes_nothing(copy):
    data_dir, archive, url = copy
    before = {p: p.read_bytes() for p in archive.rglob("*") if p.is_file()}
    code, output = archive_run(data_dir, url)
    assert code == 0, output
    assert "nothing new to seal" in output, output
    after = {p: p.read_bytes() for p in archive.rglob("*") if p.is_file()}
    assert after == before
    assert all(not p.stat().st_mode & 0o222 for p in after), "archive files are read-only"


def test_segments_are_cut_at_checkpoints_and_chain_without_gaps(copy):
    _, archive, _ = copy
    spans = sorted(layout.parse_segment_element(p.name) for p in (archive / "segments").iterdir())
    assert spans[0][0] == 0
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == end
    for first, size in spans[1:]:
        manifest = layout.Manifest.from_bytes(
            (archive / layout.manifest_key(first, size)).read_bytes()
        )
        lines = gzip.decompress((archive / layout.events_key(first, size)).read_bytes())
        first_event = json.loads(lines.split(b"\n")[0])
        assert first_event["eventType"] == "checkpoint"
        assert first_event["note"] == manifest.previous_checkpoint


def test_daily_cut_happens_at_the_first_checkpoint_of_a_new_utc_day():
    config = SealConfig(segment_events=1000)
    pending = _Pending(0, [], None, documents=[{"timestamp": "2026-04-15T23:59:58.000Z"}])
    assert not _due(pending, 10, {"timestamp": "2026-04-15T23:59:59.999Z"}, config)
    assert _due(pending, 10, {"timestamp": "2026-04-16T00:00:00.100Z"}, config)
    assert not _due(pending, 10, {"timestamp": "2026-04-16T00:00:00.100Z"}, SealConfig(daily=False))
    assert _due(pending, 1000, {"timestamp": "2026-04-15T23:59:59.000Z"}, config)


def test_the_documented_layout_verifies_with_an_independent_implementation(copy):
    """docs/archive-format.md claims the archive verifies with any RFC 6962 and signed-note
    implementation: this one uses hashlib and cryptography only, none of trailguard's code."""
    data_dir, archive, _ = copy
    name, key_id_hex, key_b64 = (data_dir / "signing.pub").read_text().strip().split("+", 2)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_b64)[1:])

    def mth(hashes: list[bytes]) -> bytes:
        if len(hashes) == 1:
            return hashes[0]
        k = 1 << ((len(hashes) - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + mth(hashes[:k]) + mth(hashes[k:])).digest()

    leaves: list[bytes] = []
    manifests = sorted((archive / "segments").glob("*/manifest.json"))
    for path in manifests:
        manifest = json.loads(path.read_bytes())
        events = gzip.decompress((archive / manifest["files"][0]["key"]).read_bytes())
        assert (
            hashlib.sha256((archive / manifest["files"][0]["key"]).read_bytes()).hexdigest()
            == (manifest["files"][0]["sha256"])
        )
        for line in events.split(b"\n")[:-1]:
            assert json.loads(line)["seq"] == len(leaves)
            leaves.append(hashlib.sha256(b"\x00" + line).digest())
        text, _, signature_line = manifest["checkpoint"].partition("\n\n")
        _origin, size, root = text.split("\n")
        assert int(size) == len(leaves) == manifest["treeSize"]
        assert base64.b64decode(root) == mth(leaves)
        signer, blob = signature_line.removeprefix("\u2014 ").strip().split(" ")
        raw = base64.b64decode(blob)
        assert signer == name
        assert raw[:4].hex() == key_id_hex
        public.verify(raw[4:], (text + "\n").encode())  # raises if it does not verify
    level0 = (archive / "tile/0/000").read_bytes()
    assert level0 == b"".join(leaves[:256])


# -- tampering with a local archive ---------------------------------------------------------------


def _segment(archive: Path, number: int) -> Path:
    return sorted((archive / "segments").iterdir())[number]


def _rewrite_a_prompt(events: Path) -> bytes:
    """Segment events with one prompt's text changed (same length), gzip-compressed."""
    lines = gzip.decompress(events.read_bytes()).split(b"\n")
    target = next(i for i, line in enumerate(lines) if b"list the files" in line)
    lines[target] = lines[target].replace(b"list the files", b"list no files!")
    return gzip.compress(b"\n".join(lines), mtime=0)


def _edit_event(archive: Path) -> str:
    events = _segment(archive, 1) / "events.jsonl.gz"
    writable(events).write_bytes(_rewrite_a_prompt(events))
    return f"{events.relative_to(archive)}: the object's bytes differ"


def _edit_event_and_manifest(archive: Path) -> str:
    """The attacker also fixes the manifest's SHA-256: only the signed root can tell."""
    segment = _segment(archive, 1)
    events = segment / "events.jsonl.gz"
    data = _rewrite_a_prompt(events)
    writable(events).write_bytes(data)
    manifest = json.loads((segment / "manifest.json").read_bytes())
    manifest["files"][0].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    writable(segment / "manifest.json").write_bytes(json.dumps(manifest).encode())
    return "the events do not lead to the root its checkpoint signed"


def _delete_segment_file(archive: Path) -> str:
    events = _segment(archive, 2) / "events.jsonl.gz"
    events.unlink()
    return f"{events.relative_to(archive)}: named by the manifest"


def _delete_whole_segment(archive: Path) -> str:
    shutil.rmtree(_segment(archive, 1))
    return "are not in the archive: no sealed segment holds them"


def _replay_older_segment(archive: Path) -> str:
    """Segment 1's directory replaced by a copy of segment 0's files under segment 1's name."""
    zero, one = _segment(archive, 0), _segment(archive, 1)
    shutil.rmtree(one)
    shutil.copytree(zero, one)
    return "the manifest seals another range than its key names"


def _swap_tile(archive: Path) -> str:
    tile = archive / "tile/0/001"
    data = bytearray(tile.read_bytes())
    data[0] ^= 1
    writable(tile).write_bytes(bytes(data))
    return "tile/0/001: the object's bytes differ"


def _steer_the_index(archive: Path) -> str:
    segment = _segment(archive, 1)
    index = json.loads((segment / "index.json").read_bytes())
    index["sessions"].pop(next(iter(index["sessions"])))
    data = json.dumps(index).encode()
    writable(segment / "index.json").write_bytes(data)
    manifest_path = segment / "manifest.json"
    manifest = json.loads(manifest_path.read_bytes())
    for entry in manifest["files"]:
        if entry["role"] == "index":
            entry.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    writable(manifest_path).write_bytes(json.dumps(manifest).encode())
    return "the index differs from the one rebuilt from the events"


def _forge_checkpoint_object(archive: Path) -> str:
    path = sorted((archive / "checkpoints").iterdir())[-1]
    writable(path).write_text(path.read_text().replace("\n\n", "\n \n", 1))
    return "is not a checkpoint signed by the key"


@pytest.mark.parametrize(
    "attack",
    [
        _edit_event,
        _edit_event_and_manifest,
        _delete_segment_file,
        _delete_whole_segment,
        _replay_older_segment,
        _swap_tile,
        _steer_the_index,
        _forge_checkpoint_object,
    ],
)
def test_tampering_a_file_archive_is_detected_by_archive_verify(copy, attack):
    data_dir, archive, url = copy
    code, report = archive_verify(url, data_dir)
    assert code == 0, failures(report)
    expected = attack(archive)
    code, report = archive_verify(url, data_dir)
    assert code == 1
    assert any(expected in f for f in failures(report)), failures(report)


def test_an_archive_verified_with_another_key_fails_every_signature(copy, tmp_path):
    _, _, url = copy
    other = tmp_path / "other.pub"
    other.write_text(Signer.generate("trailguard.local/someone-else").verifier.to_string())
    code, output = cli("archive", "verify", "--archive", url, "--key", str(other))
    assert code == 1
    assert "does not verify" in output or "no signature by key" in output


# -- forks and refusals ---------------------------------------------------------------------------


def test_a_ledger_rewritten_and_resigned_by_an_insider_is_refused_by_the_next_run(copy):
    data_dir, _, url = copy
    insider = Signer.from_string((data_dir / "signing.key").read_text())
    tamper.edit_event(data_dir, 40, lambda e: e.update(prompt="nothing to see"))
    tamper.rehash_everything(data_dir, resign_with=insider)
    assert verify_dir(data_dir).intact, "self-consistent: only the archive can tell"
    code, output = archive_run(data_dir, url)
    assert code == 1
    assert "differ from what" in output, output
    assert "fork" in output, output
    # The refusal is recorded for the ledger (queued for its one writer).
    state = GatewayState(data_dir)
    try:
        queued = [document for _, document in state.pending_events()]
    finally:
        state.close()
    assert any("archive_refused" in str(document) for document in queued)


def test_a_changed_hot_event_is_not_archived(tmp_path):
    data_dir = tmp_path / "ledger"
    fill_ledger(data_dir, 600)
    tamper.edit_event(data_dir, 300, lambda e: e.update(prompt="rewritten"))
    code, output = archive_run(data_dir, f"file://{tmp_path / 'archive'}")
    assert code == 1
    assert "seq 300" in output
    assert "refusing to archive a changed event" in output


# -- pruning --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> tuple[Path, Path]:
    """40,000 events archived to a file:// archive in segments of about 10,000."""
    base = tmp_path_factory.mktemp("big")
    data_dir = base / "ledger"
    fill_ledger(data_dir, 40_000, batch=500, sessions=8)
    code, output = cli(
        "archive", "run", "--data-dir", str(data_dir), "--archive", f"file://{base / 'archive'}",
        "--segment-events", "10000",
    )  # fmt: skip
    assert code == 0, output
    return data_dir, base / "archive"


@pytest.fixture
def big_copy(big, tmp_path) -> tuple[Path, Path, str]:
    data_dir, archive = big
    shutil.copytree(data_dir, tmp_path / "ledger")
    shutil.copytree(archive, tmp_path / "archive")
    return tmp_path / "ledger", tmp_path / "archive", f"file://{tmp_path / 'archive'}"


def prune(data_dir: Path, url: str, *extra: str) -> tuple[int, str]:
    return cli(
        "archive", "prune", "--data-dir", str(data_dir), "--archive", url, "--hot-days", "0",
        "--allow-not-write-once", *extra,
    )  # fmt: skip


def query_json(data_dir: Path, *extra: str) -> list[dict]:
    result = runner.invoke(app, ["query", "--data-dir", str(data_dir), "--format", "json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_prune_removes_only_verified_events_and_verify_reports_them_as_archived(big_copy):
    data_dir, _, url = big_copy
    before = query_json(data_dir, "--session", "sess_0006")  # seq 30000..34999: both sides
    whole = query_json(data_dir, "--session", "sess_0003")
    code, output = prune(data_dir, url)
    assert code == 0, output
    assert "removed seq 0..32767" in output
    report = verify_dir(data_dir)
    assert report.intact, [str(f) for f in report.failures]
    assert report.archived == 32768
    assert any("archived to file://" in f.problem for f in report.warnings)
    result = runner.invoke(app, ["verify", "--data-dir", str(data_dir), "--key",
                                 str(data_dir / "signing.pub")])  # fmt: skip
    assert result.exit_code == 0
    assert "seq 0..32767 archived, pruned here" in result.output
    # The hot store alone no longer has them; with --archive the answer is unchanged.
    assert 0 < len(query_json(data_dir, "--session", "sess_0006")) < len(before)
    assert query_json(data_dir, "--session", "sess_0006", "--archive", url) == before
    assert query_json(data_dir, "--session", "sess_0003", "--archive", url) == whole
    first_prompts = query_json(data_dir, "--archive", url, "--type", "prompt", "--limit", "7")
    assert len(first_prompts) == 7
    assert all(d["eventType"] == "prompt" and d["seq"] < 32768 for d in first_prompts)


def test_a_pruned_store_goes_on_extending_the_same_tree(big_copy):
    data_dir, _, url = big_copy
    assert prune(data_dir, url)[0] == 0
    config = LedgerConfig(checkpoint_every_events=1000, checkpoint_interval_seconds=3600.0)
    with Ledger.open(data_dir, config=config) as ledger:
        ledger.append_many(sample_events(12_000, session="sess_after"))
    report = verify_dir(data_dir)
    assert report.intact, [str(f) for f in report.failures]
    assert archive_run(data_dir, url)[0] == 0
    code, archive_report = archive_verify(url, data_dir)
    assert code == 0, failures(archive_report)
    assert archive_report["treeSize"] > 52_000
    # A second prune goes on from where the first stopped.
    code, output = prune(data_dir, url)
    assert code == 0, output
    assert "removed seq 32768..49151" in output
    report = verify_dir(data_dir)
    assert report.intact, [str(f) for f in report.failures]
    assert report.archived == 49152


def test_prune_refuses_when_a_local_segment_was_deleted(big_copy):
    data_dir, archive, url = big_copy
    (_segment(archive, 1) / "events.jsonl.gz").unlink()
    code, output = prune(data_dir, url)
    assert code == 1, output
    assert "nothing was pruned" in output, output
    assert verify_dir(data_dir).archived == 0
    assert len(query_json(data_dir, "--session", "sess_0001")) > 0


def test_prune_refuses_when_a_hot_event_differs_from_the_archived_one(big_copy):
    """The hot copy was rewritten (leaf hash and all) after archiving: deleting it would
    destroy the evidence, so nothing is pruned."""
    data_dir, _, url = big_copy
    tamper.edit_event(data_dir, 20_000, lambda e: e.update(prompt="after the fact"))
    tamper.rehash_leaf(data_dir, 20_000)
    code, output = prune(data_dir, url)
    assert code == 1, output
    assert "seq 20000" in output, output
    assert verify_dir(data_dir).archived == 0


def test_prune_refuses_a_replayed_older_segment_in_place_of_a_newer_one(big_copy):
    data_dir, archive, url = big_copy
    assert _replay_older_segment(archive)
    code, output = prune(data_dir, url)
    assert code == 1, output
    assert "nothing was pruned" in output, output
    assert verify_dir(data_dir).archived == 0


def test_prune_keeps_the_hot_period_and_needs_write_once_storage_or_consent(big_copy):
    data_dir, _, url = big_copy
    code, output = cli("archive", "prune", "--data-dir", str(data_dir), "--archive", url,
                       "--hot-days", "0")  # fmt: skip
    assert code == 2
    assert "not write-once" in output
    code, output = prune(data_dir, url, "--hot-days", "90")
    assert code == 0, output
    assert "nothing to prune" in output, output
    code, output = prune(data_dir, url, "--dry-run")
    assert code == 0
    assert "would remove seq 0..32767" in output
    assert verify_dir(data_dir).archived == 0


def test_prune_is_refused_while_a_gateway_writes(big_copy):
    data_dir, _, url = big_copy
    with Ledger.open(data_dir):
        code, output = prune(data_dir, url)
    assert code == 2, output
    assert "stop it first" in output, output


# -- the index, find and Parquet ------------------------------------------------------------------


def test_archive_find_answers_from_the_index_alone(big_copy):
    data_dir, archive, url = big_copy
    for path in archive.rglob("events.jsonl.gz"):
        path.unlink()  # find must not need a single segment
    code, output = cli("archive", "find", "--archive", url, "--session", "sess_0002",
                       "--format", "json")  # fmt: skip
    assert code == 0, output
    hits = json.loads(output)
    expected = [d["seq"] for d in query_json(data_dir, "--session", "sess_0002")]
    assert sum(hit["count"] for hit in hits) == len(expected)
    assert min(hit["firstSeq"] for hit in hits) == min(expected)
    assert max(hit["lastSeq"] for hit in hits) == max(expected)
    day = query_json(data_dir, "--limit", "1")[0]["timestamp"][:10]
    code, output = cli("archive", "find", "--archive", url, "--date", day, "--developer",
                       "dev_jordan", "--format", "json")  # fmt: skip
    assert code == 0
    assert sum(hit["count"] for hit in json.loads(output)) > 39_000
    code, output = cli("archive", "find", "--archive", url, "--date", "2026-13-01")
    assert code == 2
    assert "is not a date" in output
    code, output = cli("archive", "find", "--archive", url, "--developer", "dev_nobody")
    assert code == 0
    assert "0 segment(s)" in output


def test_the_parquet_copy_is_hive_partitioned_by_date_and_equals_the_events(big_copy):
    import pyarrow.dataset as ds

    data_dir, archive, _ = big_copy
    dataset = ds.dataset(archive / "parquet", format="parquet", partitioning="hive")
    table = dataset.to_table(columns=["seq", "sessionId", "event", "date"])
    seqs = table.column("seq").to_pylist()
    assert sorted(seqs) == list(range(len(seqs)))
    days = {str(day) for day in table.column("date").to_pylist()}
    assert days == {d["timestamp"][:10] for d in query_json(data_dir, "--limit", "1")}
    sessions = [s for s in table.column("sessionId").to_pylist() if s == "sess_0004"]
    assert len(sessions) == len(query_json(data_dir, "--session", "sess_0004"))


def test_bad_archive_urls_and_options_are_named(copy):
    data_dir, _, url = copy
    code, output = archive_run(data_dir, "ftp://example/x")
    assert code == 2
    assert "use s3://BUCKET/PREFIX" in output
    code, output = archive_run(data_dir, "file://relative/path")
    assert code == 2
    assert "three slashes" in output
    code, output = archive_run(data_dir, url, "--retention", "pci")
    assert code == 2
    assert "soc2, hipaa" in output
    code, output = archive_run(data_dir, url, "--retention", "soc2", "--retention-days", "9")
    assert code == 2
    assert "not both" in output
    assert os.path.exists(data_dir / "ledger.sqlite3")


def test_events_removed_by_root_and_claimed_as_archived_are_caught_against_the_archive(big_copy):
    """Root deletes hot events the archive never received and writes the prune marker by hand:
    the hot store alone still joins up (its cached subtrees are intact), so only the archive
    can tell, and `verify --trusted-checkpoint <archive>` does."""
    data_dir, _, url = big_copy
    config = LedgerConfig(checkpoint_every_events=1000, checkpoint_interval_seconds=3600.0)
    with Ledger.open(data_dir, config=config) as ledger:
        ledger.append_many(sample_events(12_000, session="sess_unarchived"))
    tamper.execute(data_dir, "DELETE FROM events WHERE seq < 49152")
    tamper.execute(data_dir, "INSERT INTO meta (key, value) VALUES ('pruned_before', '49152')")
    assert verify_dir(data_dir).intact, "the hot store alone cannot tell"
    key = str(data_dir / "signing.pub")
    result = runner.invoke(
        app,
        ["verify", "--data-dir", str(data_dir), "--key", key, "--trusted-checkpoint", url],
    )
    assert result.exit_code == 1, result.output
    assert "events were removed without being archived" in result.output
