"""SQL client command lines (psql, mysql, sqlite3, pgcli, mycli): where they connect and where
the SQL comes from."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from trailguard.classify._tool_common import add_flag
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.classify.options import iter_options

# ---------------------------------------------------------------------------------------------
# Command lines
# ---------------------------------------------------------------------------------------------


@dataclass
class _Connection:
    dialect: str
    host: str | None = None
    port: str | None = None
    database: str | None = None
    user: str | None = None
    flags: list[str] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    """("sql", text), ("file", path) in the order the client runs them."""
    list_databases: bool = False

    def attributes(self) -> dict[str, str]:
        values = {
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "dialect": self.dialect,
        }
        return {k: v for k, v in values.items() if v}


def _env(command: SimpleCommand, context: ClassifyContext, name: str) -> str | None:
    return command.env.get(name) or context.env.get(name) or None


def _apply_uri(connection: _Connection, uri: str) -> None:
    """postgres://user:password@host:port/db?options, mysql://..."""
    try:
        parts = urlsplit(uri)
        if parts.username:
            connection.user = unquote(parts.username)
        if parts.hostname:
            connection.host = parts.hostname
        if parts.port:
            connection.port = str(parts.port)
        database = parts.path.lstrip("/")
        if database:
            connection.database = unquote(database)
        for pair in parts.query.split("&"):
            key, _, value = pair.partition("=")
            if key == "host" and value:
                connection.host = unquote(value)
            elif key == "user" and value:
                connection.user = unquote(value)
            elif key == "dbname" and value:
                connection.database = unquote(value)
    except ValueError:
        connection.flags.append("bad-connection-uri")


def _apply_conninfo(connection: _Connection, conninfo: str) -> None:
    """libpq ``host=... dbname=... password=...``."""
    try:
        words = shlex.split(conninfo)
    except ValueError:
        words = conninfo.split()
    for word in words:
        key, _, value = word.partition("=")
        key = key.strip().lower()
        if key in ("host", "hostaddr"):
            connection.host = value
        elif key == "port":
            connection.port = value
        elif key == "dbname":
            if "://" in value:
                _apply_uri(connection, value)
            else:
                connection.database = value
        elif key == "user":
            connection.user = value


def _apply_database(connection: _Connection, value: str) -> None:
    if "$" in value or "`" in value:
        connection.flags.append("dynamic-connection")
        connection.database = value
    elif re.match(r"^[a-z][a-z0-9+.\-]*://", value, flags=re.IGNORECASE):
        _apply_uri(connection, value)
    elif "=" in value:
        _apply_conninfo(connection, value)
    else:
        connection.database = value


def _parse_postgres(command: SimpleCommand, context: ClassifyContext) -> _Connection:
    connection = _Connection("postgres")
    pgcli = command.program == "pgcli"
    positionals: list[str] = []
    short_value = "hpUudD" if pgcli else "cdfhpUvoLPFRT"
    long_value = frozenset(
        {
            "--command", "--dbname", "--file", "--host", "--port", "--username", "--set",
            "--variable", "--output", "--log-file", "--pset", "--field-separator",
            "--record-separator", "--table-attr", "--user", "--dsn", "--prompt", "--prompt-dsn",
            "--row-limit", "--pgclirc",
        }
    )  # fmt: skip
    for name, value in iter_options(
        command.argv[1:], short_value=short_value, long_value=long_value
    ):
        if name == "":
            positionals.append(value or "")
        elif name in ("-c", "--command") and value is not None and not pgcli:
            connection.sources.append(("sql", value))
        elif name in ("-f", "--file") and value is not None and not pgcli:
            connection.sources.append(("file", value))
        elif name in ("-d", "--dbname") and value:
            _apply_database(connection, value)
        elif name in ("-h", "--host") and value:
            connection.host = value
        elif name in ("-p", "--port") and value:
            connection.port = value
        elif name in ("-U", "--username", "-u", "--user") and value:
            connection.user = value
        elif name in ("-l", "--list"):
            connection.list_databases = True
        elif name in ("-1", "--single-transaction"):
            add_flag(connection.flags, "single-transaction")
    if positionals:
        _apply_database(connection, positionals[0])
    if len(positionals) > 1:
        connection.user = positionals[1]
    connection.host = connection.host or _env(command, context, "PGHOST")
    connection.port = connection.port or _env(command, context, "PGPORT")
    connection.database = connection.database or _env(command, context, "PGDATABASE")
    connection.user = connection.user or _env(command, context, "PGUSER")
    return connection


def _parse_mysql(command: SimpleCommand, context: ClassifyContext) -> _Connection:
    connection = _Connection("mysql")
    mycli = command.program == "mycli"
    positionals: list[str] = []
    short_value = "ehuPDSRlp" if mycli else "ehuPDS"
    long_value = frozenset(
        {
            "--execute", "--host", "--user", "--port", "--database", "--socket", "--prompt",
            "--logfile", "--myclirc", "--dsn", "--init-command", "--login-path",
            "--defaults-file", "--defaults-extra-file", "--character-sets-dir",
            "--default-character-set", "--pass", *(("--password",) if mycli else ()),
        }
    )  # fmt: skip
    for name, value in iter_options(
        command.argv[1:],
        short_value=short_value,
        long_value=long_value,
        optional_short="" if mycli else "p",
    ):
        if name == "":
            positionals.append(value or "")
        elif name in ("-e", "--execute") and value is not None:
            connection.sources.append(("sql", value))
        elif name in ("-h", "--host") and value:
            connection.host = value
        elif name in ("-P", "--port") and value:
            connection.port = value
        elif name in ("-u", "--user") and value:
            connection.user = value
        elif name in ("-D", "--database") and value:
            _apply_database(connection, value)
        elif name in ("-p", "--password", "--pass"):
            add_flag(connection.flags, "password-on-command-line" if value else "password-prompt")
        elif name == "--init-command" and value:
            connection.sources.insert(0, ("sql", value))
    if positionals:
        _apply_database(connection, positionals[0])
    connection.host = connection.host or _env(command, context, "MYSQL_HOST")
    return connection


_SQLITE_VALUE_OPTIONS = frozenset(
    {
        "-cmd", "-init", "-separator", "-newline", "-nullvalue", "-vfs", "-mmap", "-maxsize",
        "-escape", "-pagecache", "-heap", "-nonce", "-A", "-lookaside",
    }
)  # fmt: skip


def _parse_sqlite(command: SimpleCommand, context: ClassifyContext) -> _Connection:
    connection = _Connection("sqlite")
    argv = command.argv
    positionals: list[str] = []
    commands: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg.startswith("-") and len(arg) > 1 and not positionals[1:]:
            name = "-" + arg.lstrip("-")
            if name in _SQLITE_VALUE_OPTIONS:
                value = argv[i] if i < len(argv) else ""
                i += 2 if name == "-lookaside" else 1
                if name == "-cmd":
                    commands.append(value)
                elif name == "-init":
                    connection.sources.append(("file", value))
            elif name == "-readonly":
                add_flag(connection.flags, "readonly")
            elif name == "-safe":
                add_flag(connection.flags, "safe-mode")
            continue
        positionals.append(arg)
    if positionals:
        connection.database = positionals[0]
    else:
        connection.database = ":memory:"
    connection.sources.extend(("sql", text) for text in commands)
    connection.sources.extend(("sql", text) for text in positionals[1:])
    return connection
