"""The ledger writer: durable appends, group commit, checkpoints, restarts, keys and locks."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
import rfc8785

import tamper
from conftest import sample_events, verify_dir
from trailguard.events import Cost, EventType, Prompt, ToolInvocation
from trailguard.ledger import merkle
from trailguard.ledger.checkpoint import open_checkpoint
from trailguard.ledger.keys import SIGNING_KEY_ENV, SIGNING_KEY_FILE, SigningKeyError
from trailguard.ledger.note import Signer
from trailguard.ledger.stored_tree import StoredTree
from trailguard.ledger.writer import (
    EventRejectedError,
    Ledger,
    LedgerConfig,
    LedgerError,
    LedgerIntegrityError,
)
from trailguard.store.sqlite import SQLiteStore


def stored_rows(data_dir: Path) -> list:
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return list(store.rows())
    finally:
        store.close()


def test_append_is_stored_as_rfc8785_bytes_of_the_event_with_its_seq(open_ledger, data_dir):
    ledger = open_ledger()
    event = sample_events(2)[1]
    receipt = ledger.append(event)
    row = next(r for r in stored_rows(data_dir) if r.event_id == event.event_id)
    expected = event.to_json_dict() | {"seq": receipt.seq}
    assert row.body == rfc8785.dumps(expected)
    assert row.leaf_hash == receipt.leaf_hash == merkle.hash_leaf(row.body)
    assert row.seq == receipt.seq


def test_first_event_is_gateway_start_and_close_records_stop_then_checkpoint(open_ledger, data_dir):
    ledger = open_ledger()
    ledger.append_many(sample_events(3))
    ledger.close(reason="test finished")
    rows = stored_rows(data_dir)
    assert rows[0].event_type == EventType.GATEWAY_START
    assert [r.event_type for r in rows[-2:]] == [EventType.GATEWAY_STOP, EventType.CHECKPOINT]
    assert orjson.loads(rows[-2].body)["reason"] == "test finished"
    assert [r.seq for r in rows] == list(range(len(rows)))


def test_checkpoint_every_n_events_covers_exactly_the_events_before_it(open_ledger, data_dir):
    ledger = open_ledger(checkpoint_every_events=10)
    for event in sample_events(45):
        ledger.append(event)
    ledger.close()
    rows = stored_rows(data_dir)
    verifier = Signer.from_string((data_dir / SIGNING_KEY_FILE).read_text()).verifier
    checkpoints = [r for r in rows if r.event_type == EventType.CHECKPOINT]
    assert len(checkpoints) >= 5
    leaf_hashes = [merkle.hash_leaf(r.body) for r in rows]
    for row in checkpoints:
        signed = open_checkpoint(orjson.loads(row.body)["note"], verifier)
        assert signed.tree_size == row.seq
        assert signed.root_hash == merkle.root_of(leaf_hashes[: row.seq])
    gaps = [b.seq - a.seq for a, b in itertools.pairwise(checkpoints)]
    assert max(gaps) <= 12  # every 10 events, plus the checkpoint itself and start/stop


def test_checkpoint_every_t_seconds_when_there_are_new_events(open_ledger, data_dir):
    ledger = open_ledger(checkpoint_every_events=10_000, checkpoint_interval_seconds=0.2)
    receipt = ledger.append(sample_events(1)[0])

    def checkpoints_after_event() -> int:
        return sum(
            r.event_type == EventType.CHECKPOINT and r.seq > receipt.seq
            for r in stored_rows(data_dir)
        )

    pause = threading.Event()
    for _ in range(50):
        if checkpoints_after_event():
            break
        pause.wait(0.05)
    assert checkpoints_after_event() == 1
    pause.wait(0.6)  # no new events: no new checkpoints
    assert checkpoints_after_event() == 1


def test_concurrent_writers_are_group_committed_without_lost_or_duplicated_seq(
    open_ledger, data_dir
):
    ledger = open_ledger(checkpoint_every_events=100)
    commits = 0
    original_append = ledger._store.append

    def counting_append(rows, nodes, signed_head=None):
        nonlocal commits
        commits += 1
        original_append(rows, nodes, signed_head)

    ledger._store.append = counting_append  # type: ignore[method-assign]
    receipts: list = []
    lock = threading.Lock()

    def writer(worker: int) -> None:
        for event in sample_events(150, session=f"sess_{worker}"):
            receipt = ledger.append(event)
            with lock:
                receipts.append((receipt, event.event_id))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.close()

    assert len(receipts) == 16 * 150
    seqs = [receipt.seq for receipt, _ in receipts]
    assert len(set(seqs)) == len(seqs)
    rows = stored_rows(data_dir)
    assert [r.seq for r in rows] == list(range(len(rows)))
    by_seq = {r.seq: r.event_id for r in rows}
    assert all(by_seq[receipt.seq] == event_id for receipt, event_id in receipts)
    assert commits < len(receipts) / 2, "appends were not batched into shared commits"
    report = verify_dir(data_dir)
    assert report.intact, report.failures


def test_replayed_event_id_is_acknowledged_as_duplicate_and_not_stored_twice(open_ledger, data_dir):
    ledger = open_ledger()
    event = sample_events(1)[0]
    first = ledger.append(event)
    again = ledger.append(event)
    in_one_batch = ledger.append_many([sample_events(1)[0]] * 2)
    assert not first.duplicate
    assert again.duplicate
    assert again.seq == first.seq
    assert [r.duplicate for r in in_one_batch] == [False, True]
    assert in_one_batch[0].seq == in_one_batch[1].seq
    ids = [r.event_id for r in stored_rows(data_dir)]
    assert len(ids) == len(set(ids))


def test_event_that_already_has_a_seq_is_rejected_and_the_rest_of_the_call_is_stored(
    open_ledger, data_dir
):
    ledger = open_ledger()
    good = sample_events(2)
    positioned = Prompt(prompt="replayed from another ledger", seq=7)
    with pytest.raises(EventRejectedError, match="already has seq 7") as caught:
        ledger.append_many([good[0], positioned, good[1]])
    assert len(caught.value.receipts) == 2
    stored = {r.event_id for r in stored_rows(data_dir)}
    assert {good[0].event_id, good[1].event_id} <= stored
    assert positioned.event_id not in stored


def test_reopening_continues_the_same_tree_and_marks_the_previous_stop(open_ledger, data_dir):
    first = open_ledger()
    first.append_many(sample_events(300))
    first.close()
    second = open_ledger()
    second.append_many(sample_events(300))
    second.close()
    rows = stored_rows(data_dir)
    starts = [orjson.loads(r.body) for r in rows if r.event_type == EventType.GATEWAY_START]
    assert starts[0]["previousStopClean"] is None
    assert starts[1]["previousStopClean"] is True
    assert starts[1]["previousTreeSize"] == starts[1]["seq"]
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        # The cached subtrees (written across two runs) give the same root as a full rehash.
        leaf_hashes = [merkle.hash_leaf(r.body) for r in rows]
        assert StoredTree(store).root(len(rows)) == merkle.root_of(leaf_hashes)
    finally:
        store.close()
    assert verify_dir(data_dir).intact


def test_second_writer_on_the_same_directory_is_refused(open_ledger, data_dir):
    open_ledger()
    with pytest.raises(LedgerError, match="in use by another trailguard writer"):
        Ledger.open(data_dir)


def test_signing_key_is_created_mode_0600_and_a_different_key_is_refused(
    open_ledger, data_dir, monkeypatch, tmp_path
):
    open_ledger().close()
    key_file = data_dir / SIGNING_KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    other = Signer.generate("intruder")
    monkeypatch.setenv(SIGNING_KEY_ENV, other.to_string())
    with pytest.raises(LedgerIntegrityError, match="not the key this ledger was created with"):
        Ledger.open(data_dir)


def test_signing_key_from_environment_signs_a_new_ledger(monkeypatch, tmp_path):
    signer = Signer.generate("ops-key")
    monkeypatch.setenv(SIGNING_KEY_ENV, signer.to_string())
    ledger = Ledger.open(tmp_path / "d", config=LedgerConfig())
    ledger.close()
    assert not (tmp_path / "d" / SIGNING_KEY_FILE).exists()
    report = verify_dir(tmp_path / "d", verifier=signer.verifier)
    assert report.intact
    assert report.checkpoints == 2  # one right after start, one at close


def test_world_readable_key_file_is_refused(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(Signer.generate("k").to_string())
    key_file.chmod(0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        Ledger.open(tmp_path / "d", key_file=key_file)


def test_writer_refuses_a_ledger_whose_stored_tree_no_longer_matches_its_checkpoint(data_dir):
    ledger = Ledger.open(data_dir)
    ledger.append_many(sample_events(20))
    ledger.close()
    tamper.edit_event(data_dir, 5, lambda event: event.update(prompt="rewritten"))
    tamper.rehash_everything(data_dir)  # hashes consistent, signatures now stale
    with pytest.raises(
        LedgerIntegrityError, match=r"signed tree head does not verify|latest checkpoint"
    ):
        Ledger.open(data_dir)


def test_event_that_cannot_be_canonicalised_is_rejected_with_its_id(open_ledger):
    ledger = open_ledger()
    bad = Prompt(prompt="lone surrogate \ud800 here")
    with pytest.raises(EventRejectedError, match=bad.event_id):
        ledger.append(bad)
    assert ledger.append(sample_events(1)[0]).seq > 0  # the writer carries on


@pytest.mark.parametrize(
    "event",
    [
        ToolInvocation(tool="Bash", input={"timeout": 1.5, "ratio": 1e21, "n": 10.0}),
        ToolInvocation(tool="Edit", input={"\u00e9t\u00e9": 1, "\U0001f600": "x", "\u20ac": 2}),
        Cost(model="claude-opus-5-5", cost_usd=0.0207, input_tokens=3900),
        Prompt(prompt="nested", extra={"deep": [[[{"k": -0.0}]]], "big": 2**53 - 1}),
    ],
)
def test_stored_bytes_equal_rfc8785_for_floats_and_non_ascii_keys(open_ledger, data_dir, event):
    receipt = open_ledger().append(event)
    row = next(r for r in stored_rows(data_dir) if r.seq == receipt.seq)
    assert row.body == rfc8785.dumps(event.to_json_dict() | {"seq": receipt.seq})


def test_every_field_that_can_hold_floats_or_free_json_is_inspected_by_the_canonicaliser():
    from typing import get_args

    from trailguard.events import Event

    for event_class in get_args(get_args(Event)[0]):
        for name, info in event_class.model_fields.items():
            text = repr(info.annotation)
            if any(word in text for word in ("JsonValue", "float", "Any", "dict")):
                assert (info.alias or name) in event_class.free_form_fields(), (event_class, name)


def test_integer_beyond_2_53_in_a_typed_field_is_rejected_not_rounded(open_ledger):
    with pytest.raises(EventRejectedError, match="cannot be canonicalised"):
        open_ledger().append(Cost(input_tokens=2**60))


def test_callers_cannot_append_events_only_the_writer_writes(open_ledger):
    from trailguard.events import Checkpoint, GatewayStop

    ledger = open_ledger()
    forged = Checkpoint(origin="x", tree_size=1, root_hash="AAAA", note="x\n1\nAAAA\n\n")
    for event in (forged, GatewayStop(reason="pretend")):
        with pytest.raises(EventRejectedError, match="written by the ledger itself"):
            ledger.append(event)


def test_a_rejected_event_does_not_stop_later_chunks(open_ledger, data_dir):
    ledger = open_ledger()
    events = sample_events(6)
    events[2] = Prompt(prompt="already positioned", seq=3)
    with pytest.raises(EventRejectedError) as caught:
        ledger.append_many(events, chunk=2)
    stored = {r.event_id for r in stored_rows(data_dir)}
    assert {e.event_id for i, e in enumerate(events) if i != 2} <= stored
    assert len(caught.value.receipts) == 5


def test_close_under_load_records_nothing_after_gateway_stop(open_ledger, data_dir):
    ledger = open_ledger()
    stop = threading.Event()
    refused: list[Exception] = []

    def keep_appending() -> None:
        while not stop.is_set():
            try:
                ledger.append(sample_events(1)[0])
            except LedgerError as exc:
                refused.append(exc)
                return

    workers = [threading.Thread(target=keep_appending) for _ in range(4)]
    for worker in workers:
        worker.start()
    threading.Event().wait(0.3)
    ledger.close()
    stop.set()
    for worker in workers:
        worker.join()
    types = [r.event_type for r in stored_rows(data_dir)]
    assert types[-2:] == [EventType.GATEWAY_STOP, EventType.CHECKPOINT]
    assert refused, "appends racing close() must be refused, not silently dropped"


# The writer thread is made to crash on purpose; pytest's report of that crash is expected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_crashing_writer_fails_waiting_appends_instead_of_hanging(open_ledger):
    ledger = open_ledger()

    def broken(rows, nodes, signed_head=None):
        raise RuntimeError("simulated bug in the store")

    ledger._store.append = broken  # type: ignore[method-assign]
    future = ledger.submit(sample_events(1)[0])
    with pytest.raises(LedgerError, match="writer has stopped"):
        future.result(timeout=10)
    with pytest.raises(LedgerError, match="writer has stopped"):
        ledger.append(sample_events(1)[0])
    assert not ledger.healthy


def test_unsigned_tail_edited_after_a_crash_is_not_signed_by_the_next_writer(data_dir):
    crash = (
        "import os, sys; sys.path.insert(0, 'tests'); from conftest import sample_events;"
        "from trailguard.ledger.writer import Ledger, LedgerConfig;"
        f"ledger = Ledger.open(__import__('pathlib').Path({str(data_dir)!r}),"
        " config=LedgerConfig(checkpoint_every_events=10_000));"
        "ledger.append_many(sample_events(5)); os._exit(0)"  # no stop, no final checkpoint
    )
    subprocess.run([sys.executable, "-c", crash], check=True)
    last = stored_rows(data_dir)[-1].seq
    tamper.edit_event(data_dir, last, lambda e: e.update(prompt="rewritten while down"))
    with pytest.raises(LedgerIntegrityError, match=f"seq {last}, written after the latest"):
        Ledger.open(data_dir)


def test_a_public_key_file_left_empty_by_a_crash_is_rewritten_at_the_next_start(data_dir):
    Ledger.open(data_dir).close()
    public = data_dir / "signing.pub"
    expected = public.read_text()
    public.write_text("")  # what ext4 left after a power cut before this was fsynced
    Ledger.open(data_dir).close()
    assert public.read_text() == expected
    assert not list(data_dir.glob(".*.tmp"))  # no temporary file left behind
