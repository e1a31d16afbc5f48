"""Connections to the shared store: URLs, a description safe to print, and errors that say
what to do."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import conninfo

from trailguard.store.base import StoreError

URL_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(value: str | None) -> bool:
    return value is not None and value.startswith(URL_SCHEMES)


def describe(url: str) -> str:
    """``user@host:port/dbname`` of a connection URL: never its password."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable PostgreSQL URL"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql://{user}{host}:{port}/{parts.get('dbname') or ''}"


def open_connection(
    url: str, *, read_only: bool = False, **options: Any
) -> psycopg.Connection[Any]:
    """An autocommit connection with the trailguard schema first on its search path."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10, **options)
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot connect to {describe(url)}: {first_line(exc)}; is PostgreSQL running "
            "and the URL (user, database, password) right?"
        ) from None
    configure(conn, read_only=read_only)
    return conn


def configure(conn: psycopg.Connection[Any], *, read_only: bool = False) -> None:
    conn.execute("SET search_path = trailguard, pg_temp")
    if read_only:
        conn.execute("SET default_transaction_read_only = on")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def int_array(values: Iterable[int]) -> str:
    """A bigint[] literal (``= ANY(%s::bigint[])``): psycopg's list dumper costs far more per
    element than the query it feeds."""
    return "{" + ",".join(str(int(value)) for value in values) + "}"


def text_array(values: Iterable[str]) -> str:
    """A text[] literal, each element quoted and escaped (array syntax, not SQL)."""
    quoted = ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"
