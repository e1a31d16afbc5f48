"""The entry point: a SQL client command line to one Operation per statement, and what its
shell escapes run."""

from __future__ import annotations

import re
from dataclasses import replace

from trailguard.classify._tool_common import add_flag, classifier_error, max_risk
from trailguard.classify.files import resolve_path
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.classify.sql.connection import _parse_mysql, _parse_postgres, _parse_sqlite
from trailguard.classify.sql.meta import _meta, _script
from trailguard.classify.sql.statements import (
    _DIALECTS,
    MAX_OPERATIONS,
    MAX_STATEMENT_CHARS,
    Statement,
    _unknown,
    classify_sql,
)
from trailguard.events import Operation

# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    """One operation per SQL statement or client meta-command the command would run."""
    try:
        return _classify(command, context)
    except Exception:  # a classifier must never break the hook
        return [classifier_error("sql:Unknown", raw=command.text)]


MAX_ESCAPE_NESTING = 3
"""Shell escapes inside shell escapes are followed this deep (the work per call is bounded)."""


def _shell_escapes(operations: list[Operation], context: ClassifyContext) -> list[Operation]:
    """What a client's shell escape runs (``psql -c '\\! rm -rf /data'``): its text is a shell
    script of its own, classified as one."""
    if context.nesting >= MAX_ESCAPE_NESTING:
        return []
    from trailguard.classify import classify_script

    inner_context = replace(context, nesting=context.nesting + 1)
    found: list[Operation] = []
    for operation in operations:
        statement = operation.attributes.get("statement", "")
        if "shell-escape" in operation.flags and "\\!" in statement:
            found.extend(classify_script(statement.split("\\!", 1)[1].strip(), inner_context))
    return found


def _classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    program = command.program
    if program not in _DIALECTS:
        return []
    if any(a in ("--version", "-V", "--help", "-?", "-version", "-help") for a in command.argv[1:]):
        return []
    if program in ("psql", "pgcli"):
        connection = _parse_postgres(command, context)
    elif program == "sqlite3":
        connection = _parse_sqlite(command, context)
    else:
        connection = _parse_mysql(command, context)

    # stdin: heredoc / here-string text, or a file redirected in
    stdin = command.stdin
    if stdin is None:
        for redirect in command.redirects:
            if redirect.operator in ("<<", "<<-", "<<<"):
                stdin = redirect.target
    if stdin is not None:
        connection.sources.append(("sql", stdin))
    for redirect in command.redirects:
        if redirect.operator in ("<", "0<"):
            connection.sources.append(("file", redirect.target))
    if not connection.sources and command.piped_from:
        connection.sources.append(("piped", ",".join(command.piped_from)))

    raw = command.text
    base = connection.attributes()
    statements: list[Statement] = []
    if connection.list_databases:
        statements.append(Statement("sql:ListDatabases", "read", "read", "low", text="\\l"))
    for kind, value in connection.sources:
        if kind == "file":
            st = _unknown("", "sql-file")
            st.attributes["file"] = resolve_path(value, context)[0]
            statements.append(st)
        elif kind == "piped":
            st = _unknown("", "piped-input")
            st.attributes["piped_from"] = value
            statements.append(st)
        else:
            for part_kind, part in _script(value, program):
                if part_kind == "meta":
                    statements.append(_meta(part, program, context))
                else:
                    statements.extend(classify_sql(part, connection.dialect))
    if not statements:
        statements.append(_unknown("", "interactive"))
        statements[-1].action = "sql:Connect"

    operations: list[Operation] = []
    database = connection.database
    for st in statements[:MAX_OPERATIONS]:
        if st.use_database:
            database = st.use_database
        flags = list(connection.flags)
        for flag in st.flags:
            add_flag(flags, flag)
        attributes = dict(base)
        if database:
            attributes["database"] = database
        attributes["category"] = st.category
        if st.tables:
            attributes["tables"] = ",".join(st.tables)
        attributes.update(st.attributes)
        if st.text:
            statement_text = re.sub(r"\s+", " ", st.text).strip()
            attributes["statement"] = statement_text[:MAX_STATEMENT_CHARS]
        resource = _resource(database, st.tables)
        risk = st.risk
        if "readonly" in flags and st.access != "read":
            risk = "low"  # sqlite3 -readonly refuses the write
        operations.append(
            Operation(
                kind="sql",
                action=st.action,
                resource=resource,
                access=st.access,
                risk=risk,
                flags=flags,
                attributes=attributes,
                raw=raw,
            )
        )
    if len(statements) > MAX_OPERATIONS:
        operations.append(
            Operation(
                kind="sql",
                action="sql:Unknown",
                access="write",
                risk=max_risk(*(s.risk for s in statements[MAX_OPERATIONS:])),
                flags=["truncated"],
                attributes={**base, "omitted_statements": str(len(statements) - MAX_OPERATIONS)},
                raw=raw,
            )
        )
    return [*operations, *_shell_escapes(operations, context)]


def _resource(database: str | None, tables: list[str]) -> str | None:
    if database and tables:
        return f"{database}/{','.join(tables)}"
    if database:
        return database
    if tables:
        return ",".join(tables)
    return None
