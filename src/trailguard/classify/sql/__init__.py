"""SQL command-line clients (psql, mysql, mariadb, sqlite3, pgcli, mycli) as ``sql:<Statement>``.

The SQL comes from ``-c``/``--command`` (psql), ``-e``/``--execute`` (mysql, mycli), the
arguments after the database file (sqlite3), a heredoc or here-string, or a file (``-f``,
``< dump.sql``, ``\\i``, ``.read``, ``source``: not read, so unknown, treated as a write with the
flag ``sql-file``). Each statement is parsed with sqlglot in the client's dialect (falling back to
the generic dialect) and becomes one operation; client meta-commands (``\\dt``, ``.tables``)
become ``sql:MetaCommand``.

Resources are ``database/table1,table2`` (``database`` alone when no table is named, the tables
alone when the database is unknown). Attributes: ``host``, ``port``, ``database``, ``user``,
``dialect``, ``category`` (read, write, ddl, admin), ``tables``, ``target`` (the table written),
``statement``. Passwords (URI, ``PGPASSWORD``, ``MYSQL_PWD``, ``-pSECRET``, ``--password=``,
``password=`` in a conninfo, ``PASSWORD '...'`` and ``IDENTIFIED BY '...'`` in SQL) stay in
``raw`` and ``statement`` as given: the redaction stage replaces them before storage.

Risk: reads low, writes and DDL medium, DELETE and UPDATE without WHERE (or with a tautology)
critical (flag ``unbounded``), DROP of tables, schemas or databases and TRUNCATE critical,
privilege changes high. Unparseable SQL is one ``sql:Unknown`` write (flag ``unparsed``).

Modules: ``statements`` (SQL parsed with sqlglot), ``meta`` (client meta-commands),
``connection`` (client command lines), ``entry`` (``classify``, and shell escapes).
"""

from __future__ import annotations

from trailguard.classify.sql.entry import MAX_ESCAPE_NESTING, classify
from trailguard.classify.sql.statements import (
    MAX_OPERATIONS,
    MAX_STATEMENT_CHARS,
    PROGRAMS,
    classify_sql,
)

__all__ = [
    "MAX_ESCAPE_NESTING",
    "MAX_OPERATIONS",
    "MAX_STATEMENT_CHARS",
    "PROGRAMS",
    "classify",
    "classify_sql",
]
