"""Client meta-commands (``\\dt``, ``\\i file``, ``.tables``, ``\\!``) as Statements."""

from __future__ import annotations

import re

from trailguard.classify.files import resolve_path
from trailguard.classify.model import ClassifyContext
from trailguard.classify.sql.statements import Statement, _has_code, _unknown

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
