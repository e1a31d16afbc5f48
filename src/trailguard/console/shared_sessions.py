"""Console sign-ins shared by the worker processes of ``serve --workers N``: a browser's
requests reach any worker, so its session lives in a small SQLite file of the data directory
(``console-sessions.sqlite3``, 0600) instead of one process's memory. Only the SHA-256 of the
cookie is stored, as in memory; times are wall-clock seconds, since the file outlives a boot.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Final

from trailguard.console.auth import ConsoleSession, ConsoleSessions, digest
from trailguard.store.base import StoreError

SESSIONS_FILE: Final = "console-sessions.sqlite3"
_COLUMNS: Final = "session_hash, csrf_token, developer_id, role, token_id, created, last_seen"


class SharedConsoleSessions(ConsoleSessions):
    def __init__(self, data_dir: Path, **limits: Any) -> None:
        super().__init__(**limits)
        self.path = data_dir / SESSIONS_FILE
        self._local = threading.local()
        self._execute(
            "CREATE TABLE IF NOT EXISTS console_sessions (session_hash TEXT PRIMARY KEY, "
            "csrf_token TEXT NOT NULL, developer_id TEXT NOT NULL, role TEXT NOT NULL, "
            "token_id TEXT NOT NULL, created REAL NOT NULL, last_seen REAL NOT NULL)"
        )

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                if not self.path.exists():  # 0600 ourselves: sqlite3 would use the umask
                    os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA busy_timeout = 5000")
                db.execute("PRAGMA journal_mode = WAL")
            except (sqlite3.Error, OSError) as exc:
                raise StoreError(f"cannot open console sessions {self.path}: {exc}") from None
            self._local.db = db
        return db

    def _now(self) -> float:
        return time.time()

    def _execute(self, sql: str, parameters: tuple[object, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise StoreError(f"console sessions {self.path}: {exc}") from None

    def _keep(self, session: ConsoleSession) -> None:
        self._execute(
            f"INSERT INTO console_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                session.session_hash,
                session.csrf_token,
                session.developer_id,
                session.role,
                session.token_id,
                session.created,
                session.last_seen,
            ),
        )
        self._execute(
            "DELETE FROM console_sessions WHERE session_hash NOT IN (SELECT session_hash FROM "
            "console_sessions ORDER BY created DESC LIMIT ?)",
            (self.max_sessions,),
        )

    def get(self, cookie: str | None) -> ConsoleSession | None:
        if not cookie or len(cookie) > 128:
            return None
        key = digest(cookie)
        row = self._execute(
            f"SELECT {_COLUMNS} FROM console_sessions WHERE session_hash = ?",  # noqa: S608
            (key,),
        ).fetchone()
        if row is None:
            return None
        session = ConsoleSession(*row)
        now = self._now()
        if self.expired(session, now):
            self._execute("DELETE FROM console_sessions WHERE session_hash = ?", (key,))
            return None
        with contextlib.suppress(StoreError):  # busy: the touch can wait for the next request
            self._execute(
                "UPDATE console_sessions SET last_seen = ? WHERE session_hash = ?", (now, key)
            )
        session.last_seen = now
        return session

    def end(self, session: ConsoleSession) -> None:
        self._execute(
            "DELETE FROM console_sessions WHERE session_hash = ?", (session.session_hash,)
        )

    def end_for_token(self, token_id: str) -> int:
        cursor = self._execute("DELETE FROM console_sessions WHERE token_id = ?", (token_id,))
        return int(cursor.rowcount)

    def __len__(self) -> int:
        return int(self._execute("SELECT count(*) FROM console_sessions").fetchone()[0])
