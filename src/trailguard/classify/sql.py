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
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from trailguard.classify._tool_common import max_access, max_risk
from trailguard.classify.files import resolve_path
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.classify.options import iter_options
from trailguard.events import ACCESS_LEVELS, RISK_LEVELS, Access, Operation, Risk

__all__ = ["PROGRAMS", "classify", "classify_sql"]

PROGRAMS: frozenset[str] = frozenset({"psql", "mysql", "mariadb", "sqlite3", "pgcli", "mycli"})

Category = Literal["read", "write", "ddl", "admin"]

_DIALECTS = {
    "psql": "postgres",
    "pgcli": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mycli": "mysql",
    "sqlite3": "sqlite",
}
MAX_STATEMENT_CHARS = 300
MAX_OPERATIONS = 100


class _DropCommandFallbackWarnings(logging.Filter):
    """sqlglot warns each time it keeps a statement it cannot parse as a raw Command; that is
    expected here (CREATE USER, VACUUM...) and would flood the gateway's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_DropCommandFallbackWarnings())


def _add(flags: list[str], flag: str) -> None:
    if flag not in flags:
        flags.append(flag)


# ---------------------------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------------------------


@dataclass
class Statement:
    """What one SQL statement does."""

    action: str
    category: Category
    access: Access
    risk: Risk
    tables: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    text: str = ""
    use_database: str | None = None
    """The database a ``USE db`` / ``\\c db`` switches to, for the statements after it."""


def _unknown(text: str, flag: str = "unparsed") -> Statement:
    return Statement("sql:Unknown", "write", "write", "medium", flags=[flag], text=text)


def _table_name(table: exp.Table) -> str:
    parts = [table.catalog, table.db, table.name]
    return ".".join(p for p in parts if p)


def _tables(node: exp.Expression) -> list[str]:
    cte_names = {cte.alias_or_name for cte in node.find_all(exp.CTE)}
    names: list[str] = []
    for table in node.find_all(exp.Table):
        name = _table_name(table)
        if name and name not in names and not (not table.db and name in cte_names):
            names.append(name)
    return names


def _target(node: exp.Expression) -> str | None:
    this = node.args.get("this")
    if isinstance(this, exp.Schema):
        this = this.this
    if isinstance(this, exp.Table):
        return _table_name(this) or None
    return None


def _is_tautology(condition: exp.Expression) -> bool:
    if isinstance(condition, exp.Boolean):
        return bool(condition.this)
    if isinstance(condition, exp.Literal) and not condition.is_string:
        return condition.this not in ("0", "0.0")
    if isinstance(condition, exp.EQ):
        left, right = condition.this, condition.expression
        if isinstance(left, exp.Literal) and isinstance(right, exp.Literal):
            return bool(left.this == right.this)
        if isinstance(left, exp.Column) and isinstance(right, exp.Column):
            return bool(left.sql() == right.sql())
    if isinstance(condition, exp.Or):
        return _is_tautology(condition.this) or _is_tautology(condition.expression)
    if isinstance(condition, exp.Paren):
        return _is_tautology(condition.this)
    return False


def _unbounded(node: exp.Expression) -> bool:
    where = node.args.get("where")
    if where is None:
        return node.args.get("limit") is None
    return _is_tautology(where.this)


_MODIFYING = (exp.Insert, exp.Update, exp.Delete, exp.Merge)

_ADMIN_FUNCTIONS = frozenset(
    {
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
        "lo_export", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "dblink_exec",
        "pg_drop_replication_slot", "pg_promote", "load_extension", "sys_exec", "sys_eval",
        "pg_write_file", "lo_from_bytea",
    }
)  # fmt: skip
_WRITE_FUNCTIONS = frozenset({"setval", "nextval", "set_config", "lo_import", "lo_unlink"})


def _modifying(node: exp.Expression) -> Statement:
    """INSERT, UPDATE, DELETE, MERGE at the top of a statement or inside a CTE."""
    tables = _tables(node)
    target = _target(node)
    attributes = {"target": target} if target else {}
    if isinstance(node, exp.Delete):
        if _unbounded(node):
            return Statement(
                "sql:Delete", "write", "delete", "critical", tables, ["unbounded"], attributes
            )
        return Statement("sql:Delete", "write", "delete", "medium", tables, [], attributes)
    if isinstance(node, exp.Update):
        if _unbounded(node):
            return Statement(
                "sql:Update", "write", "write", "critical", tables, ["unbounded"], attributes
            )
        return Statement("sql:Update", "write", "write", "medium", tables, [], attributes)
    if isinstance(node, exp.Merge):
        flags: list[str] = []
        access: Access = "write"
        if re.search(r"(?i)\bTHEN\s+DELETE\b", node.sql()):
            flags.append("merge-delete")
            access = "delete"
        return Statement("sql:Merge", "write", access, "medium", tables, flags, attributes)
    flags = []
    if node.args.get("conflict") is not None:
        flags.append("upsert")
    if node.args.get("overwrite"):
        flags.append("overwrite")
        return Statement("sql:Insert", "write", "delete", "high", tables, flags, attributes)
    return Statement("sql:Insert", "write", "write", "medium", tables, flags, attributes)


def _with_nested_modifications(root: Statement, node: exp.Expression) -> Statement:
    """Fold INSERT/UPDATE/DELETE hidden in CTEs (``WITH x AS (DELETE ... RETURNING *) ...``)
    into the statement: its access and risk become the worst of them."""
    nested = [n for n in node.find_all(*_MODIFYING) if n is not node]
    if not nested:
        return root
    inner = [_modifying(n) for n in nested]
    _add(root.flags, "data-modifying-cte")
    root.attributes["cte_actions"] = ",".join(dict.fromkeys(s.action for s in inner))
    worst = max(inner, key=lambda s: (ACCESS_LEVELS.index(s.access), RISK_LEVELS.index(s.risk)))
    if root.category == "read":
        root.action = worst.action
        root.category = "write"
        if worst.attributes.get("target"):
            root.attributes["target"] = worst.attributes["target"]
    root.access = max_access(root.access, *(s.access for s in inner))
    root.risk = max_risk(root.risk, *(s.risk for s in inner))
    for statement in inner:
        for flag in statement.flags:
            _add(root.flags, flag)
    return root


def _functions(node: exp.Expression, statement: Statement) -> Statement:
    names = {f.name.lower() for f in node.find_all(exp.Anonymous)}
    admin = sorted(names & _ADMIN_FUNCTIONS)
    write = sorted(names & _WRITE_FUNCTIONS)
    if admin:
        _add(statement.flags, "admin-function")
        statement.attributes["functions"] = ",".join(admin + write)
        statement.access = "admin"
        statement.risk = max_risk(statement.risk, "high")
        if statement.category == "read":
            statement.category = "admin"
    elif write:
        _add(statement.flags, "side-effect-function")
        statement.attributes["functions"] = ",".join(write)
        statement.access = max_access(statement.access, "write")
        statement.risk = max_risk(statement.risk, "low")
        if statement.category == "read":
            statement.category = "write"
    return statement


_DROP_CRITICAL = frozenset({"TABLE", "DATABASE", "SCHEMA", "MATERIALIZED VIEW", ""})


def _from_expression(node: exp.Expression, text: str, dialect: str) -> Statement:
    tables = _tables(node)
    if isinstance(node, exp.Select) and node.args.get("into") is not None:
        into = node.args["into"]
        attributes = {"target": _table_name(into.this)} if isinstance(into.this, exp.Table) else {}
        st = Statement("sql:SelectInto", "ddl", "write", "medium", tables, [], attributes)
        return _functions(node, _with_nested_modifications(st, node))
    if isinstance(node, exp.Select | exp.SetOperation | exp.Values | exp.Subquery):
        st = Statement("sql:Select", "read", "read", "low", tables)
        if isinstance(node, exp.Select) and node.args.get("locks"):
            st.flags.append("locking")
        return _functions(node, _with_nested_modifications(st, node))
    if isinstance(node, _MODIFYING):
        return _functions(node, _with_nested_modifications(_modifying(node), node))
    if isinstance(node, exp.Copy):
        source = "".join(str(f) for f in node.args.get("files") or [])
        if "PROGRAM" in source.upper() or re.search(r"(?i)\bPROGRAM\b", text):
            return Statement("sql:Copy", "admin", "admin", "critical", tables, ["shell-escape"], {})
        if node.args.get("kind"):
            target = _target(node)
            attributes = {"target": target} if target else {}
            return Statement(
                "sql:Copy", "write", "write", "medium", tables, ["copy-from"], attributes
            )
        to_server_file = bool(node.args.get("files")) and not re.search(r"(?i)\bSTDOUT\b", text)
        flags = ["copy-to", *(["server-file"] if to_server_file else [])]
        return Statement(
            "sql:Copy", "read", "read", "medium" if to_server_file else "low", tables, flags
        )
    if isinstance(node, exp.TruncateTable):
        return Statement("sql:Truncate", "ddl", "delete", "critical", tables)
    if isinstance(node, exp.Drop):
        kind = (node.args.get("kind") or "").upper()
        if kind in ("USER", "ROLE", "GROUP"):
            return Statement(f"sql:Drop{kind.title()}", "admin", "admin", "high", tables)
        flags = []
        if node.args.get("cascade"):
            flags.append("cascade")
        risk: Risk = "critical" if kind in _DROP_CRITICAL else "high"
        return Statement(
            "sql:Drop", "ddl", "delete", risk, tables, flags, {"object_type": kind.lower()}
        )
    if isinstance(node, exp.Create):
        kind = (node.args.get("kind") or "").upper()
        if kind in ("USER", "ROLE", "GROUP"):
            return Statement(f"sql:Create{kind.title()}", "admin", "admin", "high", tables)
        flags = []
        risk = "medium"
        access: Access = "write"
        if node.args.get("replace"):
            flags.append("replace")
        target = _target(node)
        attributes = {"object_type": kind.lower()}
        if target:
            attributes["target"] = target
        st = Statement("sql:Create", "ddl", access, risk, tables, flags, attributes)
        return _with_nested_modifications(st, node)
    if isinstance(node, exp.Alter):
        flags = []
        access = "write"
        risk = "medium"
        actions = node.args.get("actions") or []
        if any(isinstance(a, exp.Drop) for a in actions) or re.search(r"(?i)\bDROP\b", text):
            flags.append("drops-column")
            access = "delete"
            risk = "high"
        if any(isinstance(a, exp.AlterRename | exp.RenameColumn) for a in actions):
            flags.append("rename")
        kind = (node.args.get("kind") or "").upper()
        attributes = {"object_type": kind.lower()} if kind else {}
        return Statement("sql:Alter", "ddl", access, risk, tables, flags, attributes)
    if isinstance(node, exp.Grant | exp.Revoke):
        action = "sql:Grant" if isinstance(node, exp.Grant) else "sql:Revoke"
        flags = []
        risk = "high"
        if re.search(r"(?i)\bALL\b|\bPUBLIC\b|\bSUPERUSER\b|WITH\s+GRANT\s+OPTION", text):
            flags.append("broad-grant")
            risk = "critical" if action == "sql:Grant" else "high"
        return Statement(action, "admin", "admin", risk, tables, flags)
    if isinstance(node, exp.Describe):
        inner = node.this
        style = str(node.args.get("style") or "").upper()
        if style == "ANALYZE" and isinstance(inner, exp.Expression):
            st = _from_expression(inner, text, dialect)
            _add(st.flags, "explain-analyze")
            return st
        action = "sql:Explain" if re.match(r"(?i)\s*EXPLAIN\b", text) else "sql:Describe"
        return Statement(action, "read", "read", "low", tables)
    if isinstance(node, exp.Show):
        return Statement("sql:Show", "read", "read", "low", tables)
    if isinstance(node, exp.Use):
        database = _table_name(node.this) if isinstance(node.this, exp.Table) else None
        return Statement("sql:Use", "read", "read", "low", [], use_database=database)
    if isinstance(node, exp.Pragma):
        if "=" in text:
            return Statement("sql:Pragma", "write", "write", "low", [], ["setting"])
        return Statement("sql:Pragma", "read", "read", "low", [])
    if isinstance(node, exp.Transaction | exp.Commit | exp.Rollback):
        return Statement("sql:Transaction", "read", "read", "low", [])
    if isinstance(node, exp.Set):
        if re.search(r"(?i)\bSET\s+(SESSION\s+|LOCAL\s+)?(ROLE|AUTHORIZATION)\b", text):
            return Statement("sql:SetRole", "admin", "admin", "high", [])
        return Statement("sql:Set", "write", "write", "low", [])
    if isinstance(node, exp.Analyze):
        return Statement("sql:Analyze", "write", "write", "low", tables)
    if isinstance(node, exp.Comment):
        return Statement("sql:Comment", "ddl", "write", "low", tables)
    if isinstance(node, exp.Attach | exp.Detach):
        action = "sql:Attach" if isinstance(node, exp.Attach) else "sql:Detach"
        return Statement(action, "write", "write", "low", [])
    if isinstance(node, exp.Command):
        return _from_command(text, dialect)
    return _unknown(text)


def _from_command(text: str, dialect: str) -> Statement:
    """Statements sqlglot keeps as raw commands: judged by their leading keywords."""
    words = re.sub(r"\s+", " ", text.strip()).upper()
    head = words.split(" ", 1)[0] if words else ""
    rest = words[len(head) :].strip()

    def names(pattern: str) -> list[str]:
        found = re.search(pattern, text, flags=re.IGNORECASE)
        return [n.strip("`\"'") for n in found.group(1).split(",")] if found else []

    principal = re.match(r"(USER|ROLE|GROUP|LOGIN)\b", rest)
    if head in ("CREATE", "ALTER", "DROP") and principal:
        noun = {"LOGIN": "User", "GROUP": "Group"}.get(
            principal.group(1), principal.group(1).title()
        )
        return Statement(f"sql:{head.title()}{noun}", "admin", "admin", "high")
    if head == "CREATE" and re.match(r"(OR REPLACE )?(TRUSTED )?(EXTENSION|LANGUAGE)\b", rest):
        return Statement("sql:Create", "admin", "admin", "high", flags=["extension"])
    if head == "ALTER" and rest.startswith("SYSTEM"):
        return Statement("sql:AlterSystem", "admin", "admin", "high")
    if head in ("ALTER", "CREATE"):
        return Statement(f"sql:{head.title()}", "ddl", "write", "medium")
    if head == "DROP":
        critical = re.match(r"(TABLE|DATABASE|SCHEMA|OWNED)\b", rest)
        return Statement("sql:Drop", "ddl", "delete", "critical" if critical else "high")
    if head == "EXPLAIN":
        options = re.match(
            r"(\((?P<paren>[^)]*)\)|(?P<words>((ANALYZE|ANALYSE|VERBOSE|EXTENDED|PARTITIONS|"
            r"QUERY PLAN|FORMAT\s*=?\s*\w+)\s+)*))",
            rest,
        )
        opts = (options.group("paren") or options.group("words") or "") if options else ""
        analyze = re.search(r"\bANALY[SZ]E\b(?!\s+(FALSE|OFF|0)\b)", opts.upper())
        inner_text = text.strip()[len("EXPLAIN") :].strip()
        inner_text = inner_text[options.end() :] if options else inner_text
        if analyze:
            statements = list(_parse_statement(inner_text, dialect))
            if statements:
                st = statements[0]
                _add(st.flags, "explain-analyze")
                st.text = text
                return st
        return Statement("sql:Explain", "read", "read", "low")
    if head == "RESET" and re.match(r"(MASTER|SLAVE|REPLICA|BINARY LOGS|PERSIST)\b", rest):
        return Statement("sql:Reset", "admin", "admin", "high")
    if head in ("SET", "RESET"):
        if re.match(r"(SESSION |LOCAL )?(ROLE|SESSION AUTHORIZATION|AUTHORIZATION)\b", rest):
            return Statement("sql:SetRole", "admin", "admin", "high")
        if rest.startswith("PASSWORD"):
            return Statement("sql:AlterUser", "admin", "admin", "high")
        return Statement("sql:Set", "write", "write", "low")
    if head in ("GRANT", "REVOKE"):
        broad = re.search(r"\bALL\b|\bPUBLIC\b|\bSUPERUSER\b|WITH GRANT OPTION", words)
        risk: Risk = "critical" if broad and head == "GRANT" else "high"
        return Statement(
            f"sql:{head.title()}", "admin", "admin", risk, flags=["broad-grant"] if broad else []
        )
    if head in ("VACUUM", "REINDEX", "CLUSTER", "CHECKPOINT", "OPTIMIZE", "REPAIR"):
        return Statement(
            f"sql:{head.title()}",
            "admin",
            "admin",
            "medium",
            names(r"\b(?:FULL\s+|TABLE\s+)?(\w[\w.]*)\s*$"),
        )
    if head in ("FLUSH", "KILL", "SHUTDOWN", "RESTART", "INSTALL", "UNINSTALL", "PURGE", "RESET"):
        return Statement(f"sql:{head.title()}", "admin", "admin", "high")
    if head == "RENAME":
        return Statement(
            "sql:Rename", "ddl", "write", "medium", names(r"RENAME\s+TABLES?\s+([\w.`\"]+)")
        )
    if head == "REPLACE":
        tables = names(r"REPLACE\s+(?:LOW_PRIORITY\s+|DELAYED\s+)?(?:INTO\s+)?([\w.`\"]+)")
        attributes = {"target": tables[0]} if tables else {}
        return Statement("sql:Insert", "write", "write", "medium", tables, ["replace"], attributes)
    if head == "LOAD":
        return Statement(
            "sql:Load", "write", "write", "medium", names(r"INTO\s+TABLE\s+([\w.`\"]+)")
        )
    if head in ("CALL", "DO", "EXECUTE", "EXEC", "PERFORM", "HANDLER"):
        return Statement("sql:Call", "write", "write", "medium")
    if head == "LOCK":
        return Statement(
            "sql:Lock", "write", "write", "medium", names(r"LOCK\s+TABLES?\s+([\w.`\"]+)")
        )
    if head in ("SHOW", "DESCRIBE", "DESC", "LISTEN", "UNLISTEN", "FETCH", "HELP"):
        return Statement("sql:Show", "read", "read", "low")
    if head in ("BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END", "ABORT"):
        return Statement("sql:Transaction", "read", "read", "low")
    if head in ("DISCARD", "DEALLOCATE", "PREPARE", "NOTIFY", "DECLARE", "CLOSE", "MOVE"):
        return Statement(f"sql:{head.title()}", "write", "write", "low")
    if head == "TRUNCATE":
        return Statement("sql:Truncate", "ddl", "delete", "critical")
    if head == "USE":
        database = rest.split(" ", 1)[0].strip('`";').lower() if rest else None
        original = text.strip().split(None, 1)
        if len(original) > 1:
            database = original[1].strip().strip('`";')
        return Statement("sql:Use", "read", "read", "low", use_database=database)
    return _unknown(text, "unrecognized")


def _parse_statement(text: str, dialect: str) -> Iterator[Statement]:
    """The statements of one chunk of SQL (normally one), parsed in ``dialect`` and then in
    sqlglot's generic dialect."""
    expressions: list[Any] | None = None
    for read in (dialect, None):
        try:
            expressions = sqlglot.parse(text, read=read)
            break
        except Exception:  # noqa: S112 (ParseError, TokenError, and sqlglot's internal errors)
            continue
    if expressions is None:
        yield _unknown(text)
        return
    for expression in expressions:
        if not isinstance(expression, exp.Expression):
            continue
        try:
            statement = _from_expression(expression, text, dialect)
        except Exception:
            statement = _unknown(text)
        statement.text = statement.text or text
        yield statement


def _split_statements(sql: str, dialect: str) -> list[str]:
    """Statement texts separated by ``;`` outside strings, comments and dollar quotes."""
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    except Exception:
        return [part for part in sql.split(";") if part.strip()]
    chunks: list[str] = []
    start = 0
    for token in tokens:
        if token.token_type.name == "SEMICOLON":
            chunks.append(sql[start : token.start])
            start = token.end + 1
    chunks.append(sql[start:])
    return [chunk for chunk in chunks if _has_code(chunk)]


def _has_code(chunk: str) -> bool:
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/|#[^\n]*", "", chunk, flags=re.DOTALL)
    return bool(stripped.strip())


def classify_sql(sql: str, dialect: str) -> list[Statement]:
    """Every statement of a SQL script (no client meta-commands), in order."""
    statements: list[Statement] = []
    for chunk in _split_statements(sql, dialect):
        statements.extend(_parse_statement(chunk.strip(), dialect))
    return statements


# ---------------------------------------------------------------------------------------------
# Client meta-commands
# ---------------------------------------------------------------------------------------------


def _meta(line: str, program: str, context: ClassifyContext) -> Statement:
    """A psql backslash command, sqlite3 dot-command or mysql client command."""
    parts = line.strip().split(None, 1)
    name = parts[0] if parts else line
    argument = parts[1].strip() if len(parts) > 1 else ""
    attributes = {"command": name}
    lower = name.lower()
    if lower in ("\\i", "\\ir", "\\include", "\\include_relative", ".read", "source", "\\."):
        path = argument.split()[0].strip("'\"") if argument else ""
        st = _unknown(line, "sql-file")
        if path:
            st.attributes["file"] = resolve_path(path, context)[0]
        return st
    if lower in ("\\!", ".shell", ".system", "system"):
        return Statement(
            "sql:MetaCommand", "admin", "admin", "high", [], ["shell-escape"], attributes, line
        )
    if lower in (".load",):
        return Statement(
            "sql:MetaCommand", "admin", "admin", "high", [], ["extension"], attributes, line
        )
    if lower in ("\\c", "\\connect", ".open", "use", "\\u", "connect", "\\r"):
        database = argument.split()[0].strip("'\";") if argument else None
        st = Statement("sql:MetaCommand", "read", "read", "low", [], [], attributes, line)
        st.use_database = database
        return st
    if lower == "\\copy":
        table = re.match(r"\(?\s*([\w.\"]+)", argument)
        tables = [table.group(1).strip('"')] if table else []
        if re.search(r"(?i)\bfrom\b", argument):
            return Statement(
                "sql:Copy", "write", "write", "medium", tables, ["copy-from"], attributes, line
            )
        return Statement("sql:Copy", "read", "read", "low", tables, ["copy-to"], attributes, line)
    if lower in (".import",):
        words = argument.split()
        tables = [words[-1]] if len(words) >= 2 else []
        return Statement("sql:Import", "write", "write", "medium", tables, [], attributes, line)
    if lower in (".restore",):
        return Statement("sql:Restore", "write", "delete", "high", [], [], attributes, line)
    if lower in ("\\gexec", ".parameter"):
        return _unknown(line, "unrecognized")
    if lower in ("\\o", "\\out", ".output", ".once", ".save", ".backup", ".excel", "tee", "\\t"):
        return Statement(
            "sql:MetaCommand", "read", "read", "low", [], ["writes-local-file"], attributes, line
        )
    return Statement("sql:MetaCommand", "read", "read", "low", [], [], attributes, line)


def _split_psql_line(line: str) -> tuple[str, str | None]:
    """A psql input line split at the first backslash outside quotes: (SQL, meta-command)."""
    quote: str | None = None
    i = 0
    while i < len(line):
        char = line[i]
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif line.startswith("--", i):
            break
        elif char == "\\":
            return line[:i], line[i:]
        i += 1
    return line, None


_PSQL_TERMINATOR_RE = re.compile(r"\\g(x|set|desc)?(\s|$)")


def _script(sql: str, program: str) -> list[tuple[str, str]]:
    """Split a script into ("sql", text) and ("meta", line) parts, in order."""
    parts: list[tuple[str, str]] = []
    buffer: list[str] = []

    def flush() -> None:
        if buffer and _has_code("\n".join(buffer)):
            parts.append(("sql", "\n".join(buffer)))
        buffer.clear()

    for line in sql.splitlines():
        stripped = line.strip()
        if program in ("psql", "pgcli"):
            code, meta = _split_psql_line(line)
            buffer.append(code)
            if meta is not None and _PSQL_TERMINATOR_RE.match(meta):
                buffer.append(";")  # \g, \gx...: run the query buffer
            elif meta is not None:
                flush()
                parts.append(("meta", meta.strip()))
            continue
        is_meta = False
        if program == "sqlite3" and stripped.startswith("."):
            pending = "\n".join(buffer).strip()
            is_meta = not pending or pending.endswith(";")
        elif program in ("mysql", "mariadb", "mycli"):
            is_meta = (
                stripped.startswith("\\") and not stripped.upper().startswith(("\\G", "\\C"))
            ) or bool(
                re.match(r"(?i)(source|system|delimiter|connect|tee|exit|quit)(\s|$)", stripped)
            )
        if is_meta:
            flush()
            parts.append(("meta", stripped))
        elif program in ("mysql", "mariadb", "mycli"):
            buffer.append(re.sub(r"\\[Gg]\s*$", ";", line))
        else:
            buffer.append(line)
    flush()
    return parts


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
    secrets: list[str] = field(default_factory=list)
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
        if parts.password:
            connection.secrets.append(parts.password)
            connection.secrets.append(unquote(parts.password))
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
            if key in ("password", "sslpassword") and value:
                connection.secrets.append(value)
                connection.secrets.append(unquote(value))
            elif key == "host" and value:
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
        if key in ("password", "sslpassword") and value:
            connection.secrets.append(value)
        elif key in ("host", "hostaddr"):
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
            _add(connection.flags, "single-transaction")
    if positionals:
        _apply_database(connection, positionals[0])
    if len(positionals) > 1:
        connection.user = positionals[1]
    connection.host = connection.host or _env(command, context, "PGHOST")
    connection.port = connection.port or _env(command, context, "PGPORT")
    connection.database = connection.database or _env(command, context, "PGDATABASE")
    connection.user = connection.user or _env(command, context, "PGUSER")
    password = _env(command, context, "PGPASSWORD")
    if password:
        connection.secrets.append(password)
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
            if value:
                connection.secrets.append(value)
            _add(connection.flags, "password-on-command-line" if value else "password-prompt")
        elif name == "--init-command" and value:
            connection.sources.insert(0, ("sql", value))
    if positionals:
        _apply_database(connection, positionals[0])
    password = _env(command, context, "MYSQL_PWD")
    if password:
        connection.secrets.append(password)
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
                _add(connection.flags, "readonly")
            elif name == "-safe":
                _add(connection.flags, "safe-mode")
            continue
        positionals.append(arg)
    if positionals:
        connection.database = positionals[0]
    else:
        connection.database = ":memory:"
    connection.sources.extend(("sql", text) for text in commands)
    connection.sources.extend(("sql", text) for text in positionals[1:])
    return connection


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    """One operation per SQL statement or client meta-command the command would run."""
    try:
        return _classify(command, context)
    except Exception:  # a classifier must never break the hook
        return [
            Operation(
                kind="sql",
                action="sql:Unknown",
                access="write",
                risk="medium",
                flags=["classifier-error"],
                raw=command.text,
            )
        ]


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
            _add(flags, flag)
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
