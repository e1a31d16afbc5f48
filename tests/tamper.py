"""What an attacker with write access to the data directory can do, for the tamper tests.

Each function edits the SQLite file directly (dropping the append-only triggers first, as an
attacker would) and some rebuild every derived hash so only the signatures can give them away.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from pathlib import Path

import orjson

from trailguard.ledger import merkle
from trailguard.ledger.canonical import canonical_json
from trailguard.ledger.checkpoint import checkpoint_text
from trailguard.ledger.note import SIGNATURE_PREFIX, Signer, parse
from trailguard.store.base import row_of

DATABASE = "ledger.sqlite3"


def connect(data_dir: Path) -> sqlite3.Connection:
    db = sqlite3.connect(data_dir / DATABASE, isolation_level=None)
    db.execute("DROP TRIGGER IF EXISTS events_are_append_only_update")
    db.execute("DROP TRIGGER IF EXISTS events_are_append_only_delete")
    return db


def execute(data_dir: Path, sql: str, params: tuple = ()) -> None:
    db = connect(data_dir)
    try:
        db.execute(sql, params)
    finally:
        db.close()


def edit_event(data_dir: Path, seq: int, change: Callable[[dict], None]) -> None:
    """Rewrite one event's JSON (canonically), leaving its stored leaf hash as it was."""
    db = connect(data_dir)
    try:
        (body,) = db.execute("SELECT body FROM events WHERE seq = ?", (seq,)).fetchone()
        document = orjson.loads(body)
        change(document)
        db.execute("UPDATE events SET body = ? WHERE seq = ?", (canonical_json(document), seq))
    finally:
        db.close()


def rehash_leaf(data_dir: Path, seq: int) -> None:
    """Make one event's cached leaf hash match its (edited) bytes again."""
    db = connect(data_dir)
    try:
        (body,) = db.execute("SELECT body FROM events WHERE seq = ?", (seq,)).fetchone()
        db.execute("UPDATE events SET leaf_hash = ? WHERE seq = ?", (merkle.hash_leaf(body), seq))
    finally:
        db.close()


def rehash_everything(data_dir: Path, *, resign_with: Signer | None = None) -> None:
    """Recompute every leaf hash, cached subtree and checkpoint root from the current bytes,
    as an attacker covering their tracks would. Without ``resign_with`` the old signature lines
    are kept (the attacker has no key); with it, every checkpoint is re-signed by that key."""
    db = connect(data_dir)
    try:
        rows = db.execute("SELECT seq, event_type, body FROM events ORDER BY seq").fetchall()
        tree = merkle.CompactRange(record_from_level=8)
        db.execute("BEGIN")
        for position, (seq, event_type, body) in enumerate(rows):
            if event_type == "checkpoint":
                document = orjson.loads(body)
                root = tree.root()
                text = checkpoint_text(document["origin"], position, root)
                if resign_with is None:
                    old = parse(document["note"])
                    signatures = "".join(
                        f"{SIGNATURE_PREFIX}{name} " + base64.b64encode(kid + sig).decode() + "\n"
                        for name, kid, sig in old.signatures
                    )
                    note = f"{text}\n{signatures}"
                else:
                    note = f"{text}\n{resign_with.signature_line(text)}"
                document.update(
                    note=note,
                    treeSize=position,
                    rootHash=base64.b64encode(root).decode(),
                    seq=position,
                )
                body = canonical_json(document)
            leaf = merkle.hash_leaf(body)
            db.execute("UPDATE events SET body = ?, leaf_hash = ? WHERE seq = ?", (body, leaf, seq))
            tree.append(leaf)
        db.execute("DELETE FROM tree_nodes")
        db.executemany("INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", tree.completed)
        # The signed tree head too: re-signed with the key, or its old signature kept.
        (head,) = db.execute("SELECT value FROM meta WHERE key = 'signed_head'").fetchone()
        old = parse(head)
        text = checkpoint_text(old.text.split("\n", 1)[0], tree.size, tree.root())
        if resign_with is None:
            signatures = "".join(
                f"{SIGNATURE_PREFIX}{name} " + base64.b64encode(kid + sig).decode() + "\n"
                for name, kid, sig in old.signatures
            )
        else:
            signatures = resign_with.signature_line(text)
        db.execute(
            "UPDATE meta SET value = ? WHERE key = 'signed_head'", (f"{text}\n{signatures}",)
        )
        db.execute("COMMIT")
    finally:
        db.close()


def append_forged_event(data_dir: Path, document: dict) -> int:
    """Append an event with sqlite3 as the writer would (next seq, canonical bytes, a correct
    leaf hash), without the signing key. Returns its seq."""
    db = connect(data_dir)
    try:
        (last,) = db.execute("SELECT max(seq) FROM events").fetchone()
        seq = int(last) + 1
        body = canonical_json({**document, "seq": seq})
        db.execute(
            "INSERT INTO events (seq, event_id, timestamp, event_type, session_id, developer_id, "
            "project_id, tool, leaf_hash, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tuple(row_of(body, {**document, "seq": seq})),
        )
        return seq
    finally:
        db.close()


def truncate_to_checkpoint(data_dir: Path, at_most: int) -> int:
    """A clean cut of every event from the last checkpoint event at or before seq ``at_most``
    on, with the signed tree head rolled back to that checkpoint's note (a valid signed head for
    exactly the events left), as an attacker who read the code would do. Returns the new size."""
    db = connect(data_dir)
    try:
        (cut,) = db.execute(
            "SELECT max(seq) FROM events WHERE event_type = 'checkpoint' AND seq <= ?", (at_most,)
        ).fetchone()
        (body,) = db.execute("SELECT body FROM events WHERE seq = ?", (cut,)).fetchone()
        note = orjson.loads(body)["note"]
        db.execute("DELETE FROM events WHERE seq >= ?", (cut,))
        db.execute("UPDATE meta SET value = ? WHERE key = 'signed_head'", (note,))
        return int(cut)
    finally:
        db.close()


def replace_signing_key(data_dir: Path, signer: Signer) -> None:
    """Swap in the attacker's key everywhere the data directory records one."""
    (data_dir / "signing.key").write_text(signer.to_string() + "\n")
    (data_dir / "signing.pub").write_text(signer.verifier.to_string() + "\n")
    execute(
        data_dir,
        "UPDATE meta SET value = ? WHERE key = 'verifier_key'",
        (signer.verifier.to_string(),),
    )
