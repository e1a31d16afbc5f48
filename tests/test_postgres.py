"""The shared ledger on the real PostgreSQL: what the database itself refuses, replicas racing,
the sequencer killed mid-load, partitions, and tampering a superuser can do (and verify sees).
Each test has its own fresh database and gateway role (tests/pg.py)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from conftest import sample_events
from pg import Database
from trailguard.events import Prompt
from trailguard.ledger.note import Signer
from trailguard.ledger.verify import VerificationReport, verify_ledger
from trailguard.ledger.writer import LedgerConfig, LedgerError

psycopg = pytest.importorskip("psycopg")

from trailguard.ledger.shared import SharedLedger  # noqa: E402
from trailguard.store.postgres import PostgresStore  # noqa: E402

REPLICA = Path(__file__).parent / "pg_replica.py"
FAST = LedgerConfig(checkpoint_every_events=50, checkpoint_interval_seconds=3600.0)


@pytest.fixture
def db(pg_database: Database) -> Database:
    pg_database.install()
    return pg_database


def open_replica(db: Database, tmp_path: Path, **options: object) -> SharedLedger:
    return SharedLedger.open(
        db.gateway_url,
        config=options.pop("config", FAST),  # type: ignore[arg-type]
        key_file=tmp_path / "signing.key",
        **options,  # type: ignore[arg-type]
    )


def verify(db: Database, tmp_path: Path) -> VerificationReport:
    opener = functools.partial(PostgresStore, db.gateway_url, read_only=True)
    verifier = Signer.from_string((tmp_path / "signing.key").read_text()).verifier
    store = opener()
    try:
        return verify_ledger(store, opener, verifier, workers=1)
    finally:
        store.close()


def seqs(db: Database) -> list[int]:
    return [int(seq) for (seq,) in db.execute("SELECT seq FROM events ORDER BY seq")]


# -- what the database refuses ------------------------------------------------------------------


def test_the_gateway_role_cannot_update_delete_or_truncate_ledger_rows(db, tmp_path):
    ledger = open_replica(db, tmp_path)
    ledger.append_many(sample_events(60))
    ledger.close()
    partition = db.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'trailguard.events'::regclass LIMIT 1"
    )[0][0]
    role = db.gateway_role
    refused = [
        "UPDATE events SET body = '\\x00' WHERE seq = 3",
        "DELETE FROM events WHERE seq = 3",
        "TRUNCATE events",
        f"UPDATE {partition} SET body = '\\x00' WHERE seq = 3",
        f"DELETE FROM {partition}",
        f"TRUNCATE {partition}",
        "DELETE FROM tree_nodes",
        "UPDATE meta SET value = 'x' WHERE key = 'verifier_key'",
        "DELETE FROM meta",
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
        "DROP TABLE events",
        "CREATE TABLE trailguard.events_1999_01 PARTITION OF events FOR VALUES FROM "
        "('1999-01') TO ('1999-02')",
    ]
    for statement in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(statement, user=role)
    # What it may update is refused by the triggers when it would roll the ledger back.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot shrink"):
        db.execute("UPDATE ledger_head SET next_seq = 10", user=role)
    old_head = "trailguard.shared/x\n5\nAAAA\n"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot move back"):
        db.execute("UPDATE ledger_head SET signed_head = %s", (old_head,), user=role)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="covered by the signed"):
        db.execute("SELECT quarantine_from(10, 'cover-up', 'now')", user=role)
    assert seqs(db) == list(range(len(seqs(db))))
    assert verify(db, tmp_path).intact


def test_an_insert_that_does_not_continue_the_ledger_is_refused_whoever_makes_it(db, tmp_path):
    ledger = open_replica(db, tmp_path)
    ledger.append_many(sample_events(5))
    ledger.close()
    size = len(seqs(db))
    row = db.execute('SELECT event_id, "timestamp", body FROM events WHERE seq = 1')[0]
    insert = (
        'INSERT INTO events (seq, event_id, "timestamp", event_type, leaf_hash, body) '
        "VALUES (%s, %s, %s, 'prompt', '\\x00', %s)"
    )
    for seq in (size - 1, size + 1, 0):  # a duplicate, a gap, a rewrite of the start
        for user in (db.gateway_role, "postgres"):
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="must continue"):
                db.execute(insert, (seq, "forged", row[1], row[2]), user=user)
    assert seqs(db) == list(range(size))


def test_a_row_changed_by_a_superuser_is_caught_by_verify(db, tmp_path):
    ledger = open_replica(db, tmp_path)
    ledger.append_many(sample_events(40))
    ledger.close()
    assert verify(db, tmp_path).intact
    seq, victim = db.execute(
        "SELECT seq, body FROM events WHERE event_type = 'prompt' AND seq > 5 ORDER BY seq LIMIT 1"
    )[0]
    forged = bytes(victim).replace(b"list the files", b"nothing at all")
    assert forged != bytes(victim)
    # A superuser can switch the triggers off for its own session: the bytes change.
    with psycopg.connect(db.owner_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE trailguard.events SET body = %s WHERE seq = %s", (forged, seq))
    report = verify(db, tmp_path)
    assert not report.intact
    assert any(f.where == f"seq {seq}" and "changed" in f.problem for f in report.failures)


def test_an_event_inserted_beyond_the_signed_head_is_quarantined_never_signed(db, tmp_path):
    ledger = open_replica(db, tmp_path)
    ledger.append_many(sample_events(10))
    ledger.close()
    size = len(seqs(db))
    template = db.execute('SELECT "timestamp", leaf_hash, body FROM events WHERE seq = 2')[0]
    # The gateway role may insert (the sequencer does): a forger with its password appends a
    # row that continues the ledger but was never signed.
    db.execute(
        'INSERT INTO events (seq, event_id, "timestamp", event_type, leaf_hash, body) '
        "VALUES (%s, 'forged-event', %s, 'prompt', %s, %s)",
        (size, template[0], template[1], template[2]),
        user=db.gateway_role,
    )
    ledger = open_replica(db, tmp_path)
    ledger.append(Prompt(prompt="after", session_id="s"))
    ledger.close()
    assert db.execute("SELECT event_id FROM quarantine") == [("forged-event",)]
    alerts = db.execute("SELECT body FROM events WHERE event_type = 'alert'")
    assert any(b"unsigned_events_quarantined" in bytes(body) for (body,) in alerts)
    report = verify(db, tmp_path)
    assert report.intact, [str(f) for f in report.failures]
    assert report.quarantined == 1


# -- replicas and the sequencer -----------------------------------------------------------------


def test_two_replicas_racing_appends_never_duplicate_or_skip_a_seq(db, tmp_path):
    first = open_replica(db, tmp_path)
    second = open_replica(db, tmp_path)
    receipts: list = []
    lock = threading.Lock()

    def hammer(ledger: SharedLedger, worker: int) -> None:
        for i in range(60):
            receipt = ledger.append(Prompt(prompt=f"{worker} {i}", session_id=f"s{worker}"))
            with lock:
                receipts.append(receipt)

    threads = [
        threading.Thread(target=hammer, args=(ledger, n))
        for n, ledger in enumerate([first, second] * 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.leads != second.leads  # exactly one sequencer
    first.close()
    second.close()
    assert len(receipts) == 480
    assert len({r.seq for r in receipts}) == 480
    assert not any(r.duplicate for r in receipts)
    stored = seqs(db)
    assert stored == list(range(len(stored)))
    assert {r.event_id for r in receipts} <= {
        str(e) for (e,) in db.execute("SELECT event_id FROM events")
    }
    assert verify(db, tmp_path).intact


def test_a_replayed_event_id_on_another_replica_is_recorded_once(db, tmp_path):
    first = open_replica(db, tmp_path)
    second = open_replica(db, tmp_path)
    event = Prompt(prompt="once", session_id="s")
    original = first.append(event)
    replay = second.append(event)
    first.close()
    second.close()
    assert not original.duplicate
    assert replay.duplicate
    assert replay.seq == original.seq
    assert db.execute("SELECT count(*) FROM events WHERE event_id = %s", (event.event_id,)) == [
        (1,)
    ]


def _leader_pid(db: Database) -> int | None:
    rows = db.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
    )
    if not rows:
        return None
    # application_name: "trailguard sequencer <host>:<pid>:<id>"
    return int(str(rows[0][0]).rsplit(" ", 1)[1].split(":")[1])


@pytest.mark.slow
def test_the_sequencer_killed_mid_load_is_replaced_and_nothing_acknowledged_is_lost(db, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPLICA),
                db.gateway_url,
                str(tmp_path / "signing.key"),
                "600",
                "3",
                tag,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for tag in ("a", "b")
    ]
    lines: dict[int, list[str]] = {p.pid: [] for p in processes}

    def read(process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines[process.pid].append(line.strip())

    readers = [threading.Thread(target=read, args=(p,)) for p in processes]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        acks = sum(1 for pid in lines for line in lines[pid] if line.startswith("ack"))
        leader = _leader_pid(db)
        if acks >= 150 and leader is not None:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the replicas did not get going: {lines}")
    assert leader in lines, "the sequencer is one of the two replicas"
    victim = next(p for p in processes if p.pid == leader)
    survivor = next(p for p in processes if p.pid != leader)
    killed_at = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    while _leader_pid(db) != survivor.pid and time.monotonic() < killed_at + 20:
        time.sleep(0.05)
    takeover = time.monotonic() - killed_at
    assert _leader_pid(db) == survivor.pid, "the surviving replica took over the sequencer"
    assert takeover < 10
    assert survivor.wait(timeout=120) == 0, survivor.stderr.read() if survivor.stderr else ""
    for reader in readers:
        reader.join(timeout=10)
    acknowledged = {
        line.split()[1]: int(line.split()[2])
        for pid in lines
        for line in lines[pid]
        if line.startswith("ack")
    }
    assert lines[survivor.pid][-1] == "done"
    assert not [line for line in lines[survivor.pid] if line.startswith("error")]
    stored = dict(db.execute("SELECT event_id, seq FROM events"))
    assert {event_id: stored.get(event_id) for event_id in acknowledged} == acknowledged
    assert seqs(db) == list(range(len(stored)))
    assert db.execute("SELECT count(*) FROM intake") == [(0,)]
    report = verify(db, tmp_path)
    assert report.intact, [str(f) for f in report.failures]


def test_a_replica_without_a_sequencer_acknowledges_once_one_runs(db, tmp_path):
    front = open_replica(db, tmp_path)  # leads: the first replica to start
    follower = open_replica(db, tmp_path, sequencer=False, sequencing_timeout=3.0)
    future = follower.submit(Prompt(prompt="waits for the sequencer", session_id="s"))
    (receipt,) = future.result(timeout=30)
    front.close()
    with pytest.raises(LedgerError, match="no sequencer"):
        follower.submit(Prompt(prompt="nobody sequences", session_id="s")).result(timeout=60)
    follower.close()
    assert receipt.seq in seqs(db)


# -- partitions ---------------------------------------------------------------------------------


def test_events_roll_over_into_monthly_partitions_and_read_across_them(db, tmp_path):
    ledger = open_replica(db, tmp_path)
    months = ["2026-01-31T23:59:59.999Z", "2026-02-01T00:00:00.000Z", "2026-03-15T12:00:00.000Z"]
    ledger.append_many(
        [Prompt(prompt=f"p{i}", session_id="s", timestamp=at) for i, at in enumerate(months)]
    )
    ledger.close()
    partitions = {
        str(name)
        for (name,) in db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'trailguard.events'::regclass"
        )
    }
    assert {"events_2026_01", "events_2026_02", "events_2026_03"} <= partitions
    # This month's and next month's partitions are made ahead by the sequencer, outside any
    # sequencing transaction (creating one locks the parent table).
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    ahead = now.replace(day=1) + timedelta(days=32)
    assert {now.strftime("events_%Y_%m"), ahead.strftime("events_%Y_%m")} <= partitions
    owners = db.execute(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relname ~ '^events_[0-9]'"
    )
    assert owners == [("postgres",)]  # created by the owner's function, not the gateway role
    placed = dict(
        db.execute("SELECT tableoid::regclass::text, count(*) FROM events WHERE event_type = "
                   "'prompt' GROUP BY 1")
    )  # fmt: skip
    assert placed == {
        "events_2026_01": 1,
        "events_2026_02": 1,
        "events_2026_03": 1,
    }
    store = PostgresStore(db.gateway_url, read_only=True)
    try:
        from trailguard.store.base import EventFilter

        found = store.query(EventFilter(session_id="s", since="2026-01-31T00:00:00.000Z"))
        assert [orjson.loads(r.body)["prompt"] for r in found] == ["p0", "p1", "p2"]
    finally:
        store.close()
    assert verify(db, tmp_path).intact


def test_a_second_signing_key_is_refused_by_a_shared_ledger(db, tmp_path):
    open_replica(db, tmp_path).close()
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(LedgerError, match="not the key this ledger was created with"):
        open_replica(db, other)


# -- migrate ------------------------------------------------------------------------------------


def test_migrate_copies_a_sqlite_ledger_exactly_and_replicas_continue_it(
    pg_database, tmp_path, open_ledger, data_dir
):
    from trailguard.ledger.stored_tree import StoredTree
    from trailguard.store.gateway_state import GatewayState
    from trailguard.store.sqlite import SQLiteStore

    ledger = open_ledger(checkpoint_every_events=40)
    ledger.append_many(sample_events(700))
    ledger.close()
    state = GatewayState(data_dir)
    token, _ = state.create_token("dev_jordan", "agent")
    state.close()
    result = subprocess.run(
        [sys.executable, "-m", "trailguard", "migrate", "--from", str(data_dir), "--to",
         pg_database.owner_url],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INTACT" in result.stdout
    source = SQLiteStore.in_data_dir(data_dir, read_only=True)
    copy = PostgresStore(pg_database.owner_url, read_only=True)
    try:
        assert list(copy.rows()) == list(source.rows())
        size = source.tree_size()
        assert StoredTree(copy).root(size) == StoredTree(source).root(size)
        assert copy.get_meta("signed_head") == source.get_meta("signed_head")
        assert copy.get_meta("verifier_key") == source.get_meta("verifier_key")
        assert copy.tree_nodes(8, 0, 100) == source.tree_nodes(8, 0, 100)
    finally:
        source.close()
        copy.close()
    again = subprocess.run(
        [sys.executable, "-m", "trailguard", "migrate", "--from", str(data_dir), "--to",
         pg_database.owner_url],
        capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 1
    assert "already holds a ledger" in again.stderr
    # The data directory's key signs on: a replica continues the copied tree.
    shared = SharedLedger.open(
        pg_database.owner_url, config=FAST, key_file=data_dir / "signing.key"
    )
    receipt = shared.append(Prompt(prompt="after the move", session_id="s"))
    shared.close()
    assert receipt.seq >= size
    from trailguard.store.postgres.state import PostgresGatewayState

    moved = PostgresGatewayState(pg_database.owner_url)
    try:
        assert moved.identify(token) is not None
    finally:
        moved.close()
    opener = functools.partial(PostgresStore, pg_database.owner_url, read_only=True)
    store = opener()
    try:
        verifier = Signer.from_string((data_dir / "signing.key").read_text()).verifier
        assert verify_ledger(store, opener, verifier, workers=1).intact
    finally:
        store.close()
