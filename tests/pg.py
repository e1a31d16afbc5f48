"""Test databases on the real PostgreSQL (127.0.0.1:5432, trust auth): a fresh database and a
fresh gateway role for every test, dropped afterwards. Without a reachable server a test skips,
and under CI it fails (saying how to start the server)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

ADMIN_URL = os.environ.get(
    "TRAILGUARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
HOW_TO_START = (
    "start it with `pg_ctlcluster 15 main start` (Debian: apt-get install postgresql), or point "
    "TRAILGUARD_TEST_POSTGRES at a server where this user may create databases and roles"
)


def _admin_connection():  # type: ignore[no-untyped-def]
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        message = f"PostgreSQL is not reachable at {ADMIN_URL} ({exc}); {HOW_TO_START}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass(frozen=True)
class Database:
    name: str
    gateway_role: str

    def url(self, user: str = "postgres") -> str:
        base = ADMIN_URL.rsplit("/", 1)[0].split("@", 1)[-1]
        return f"postgresql://{user}@{base}/{self.name}"

    @property
    def owner_url(self) -> str:
        return self.url("postgres")

    @property
    def gateway_url(self) -> str:
        return self.url(self.gateway_role)

    def install(self) -> None:
        """The schema, created by its owner, with the gateway role's grants."""
        from trailguard.store.postgres import schema
        from trailguard.store.postgres.connect import open_connection

        conn = open_connection(self.owner_url)
        try:
            schema.install(conn, self.gateway_role)
        finally:
            conn.close()

    def execute(self, statement: str, params: tuple[object, ...] = (), *, user: str = "postgres"):  # type: ignore[no-untyped-def]
        """Run one statement as ``user`` (the superuser by default) and return its rows."""
        import psycopg

        with psycopg.connect(self.url(user), autocommit=True) as conn:
            conn.execute("SET search_path = trailguard")
            cursor = conn.execute(statement.encode(), params)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def pg_database() -> Iterator[Database]:
    with fresh_database() as database:
        yield database


@contextlib.contextmanager
def fresh_database() -> Iterator[Database]:
    admin = _admin_connection()
    suffix = uuid.uuid4().hex[:12]
    database = Database(f"tg_test_{suffix}", f"tg_test_{suffix}_gw")
    admin.execute(f"CREATE DATABASE {database.name}")
    admin.execute(f"CREATE ROLE {database.gateway_role} LOGIN")
    try:
        yield database
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {database.name} WITH (FORCE)")
        with contextlib.suppress(Exception):
            admin.execute(f"DROP ROLE IF EXISTS {database.gateway_role}")
        admin.close()
