"""SQL statements as ``Statement`` values: parsed with sqlglot in the client's dialect, each with
its action, access, risk, tables and flags."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from trailguard.classify._tool_common import add_flag, max_access, max_risk
from trailguard.events import ACCESS_LEVELS, RISK_LEVELS, Access, Risk

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
    add_flag(root.flags, "data-modifying-cte")
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
            add_flag(root.flags, flag)
    return root


def _functions(node: exp.Expression, statement: Statement) -> Statement:
    names = {f.name.lower() for f in node.find_all(exp.Anonymous)}
    admin = sorted(names & _ADMIN_FUNCTIONS)
    write = sorted(names & _WRITE_FUNCTIONS)
    if admin:
        add_flag(statement.flags, "admin-function")
        statement.attributes["functions"] = ",".join(admin + write)
        statement.access = "admin"
        statement.risk = max_risk(statement.risk, "high")
        if statement.category == "read":
            statement.category = "admin"
    elif write:
        add_flag(statement.flags, "side-effect-function")
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
            add_flag(st.flags, "explain-analyze")
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
                add_flag(st.flags, "explain-analyze")
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
