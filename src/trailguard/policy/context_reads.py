"""The parts of a Cedar request's context a policy set can read, and a context cut to them.

Cedar turns a request's context from JSON into its own values before it evaluates a single
policy, and for trailguard's contexts that costs more than the evaluation: 38 of 62 µs for one
Bash operation against the default pack (cedarpy's own metrics: ``build_request`` against
``authz``). A policy reads the context only through attribute accesses
(``context.operation.risk``) and ``has`` tests (``context has operation``), and the policy set's
JSON form (Cedar's EST, ``cedarpy.policies_to_json_str``) spells each of them out. So the
context sent to Cedar is cut to those paths:

- a path read as a value (``context.operation.flags``) is kept whole, everything below it too;
- a path only tested with ``has`` keeps its record (emptied of what nothing reads), so the test
  answers as it did;
- a policy set that uses ``context`` in any other way (``context == {...}``, ``context`` passed
  to a function, an expression form this module does not know) gets the full context: the cut
  is made only where it is certain to leave every decision as it was.

``tests/test_policy.py`` runs the shipped packs and policies of every shape over a corpus of
classified commands with and without the cut, and compares the decisions.
"""

from __future__ import annotations

from typing import Any

Reads = dict[str, "Reads | None"]
"""Attribute name → what is read below it; ``None``: the value is read whole."""


def context_reads(est: Any) -> Reads | None:
    """What the policies in ``est`` (a policy set's EST document, templates included) read of
    the context; ``None`` when they may read all of it."""
    reads: Reads = {}
    return reads if _visit(est, reads) else None


def cut_context(context: dict[str, Any], reads: Reads | None) -> dict[str, Any]:
    """``context`` with only what ``reads`` names (all of it when ``reads`` is None)."""
    if reads is None:
        return context
    return {name: _cut(context[name], below) for name, below in reads.items() if name in context}


def _cut(value: Any, reads: Reads | None) -> Any:
    if reads is None or not isinstance(value, dict):
        return value  # read whole, or not a record (an access into it fails with or without)
    return {name: _cut(value[name], below) for name, below in reads.items() if name in value}


def _visit(node: Any, reads: Reads) -> bool:
    """Record the context paths ``node`` reads; False when it uses the context otherwise."""
    if isinstance(node, list):
        return all(_visit(item, reads) for item in node)
    if not isinstance(node, dict):
        return True
    if node.get("Var") == "context":
        return False  # the context as a value: every attribute may matter
    for operator, record in (("read", node.get(".")), ("has", node.get("has"))):
        if len(node) == 1 and isinstance(record, dict) and isinstance(record.get("attr"), str):
            path = _context_path(record.get("left"))
            if path is not None:
                _add(reads, [*path, record["attr"]], whole=operator == "read")
                return True
    return all(_visit(value, reads) for value in node.values())


def _context_path(node: Any) -> list[str] | None:
    """The attribute names of an access chain that starts at ``context`` (``[]`` for
    ``context`` itself); None for any other expression."""
    if isinstance(node, dict) and len(node) == 1:
        if node.get("Var") == "context":
            return []
        record = node.get(".")
        if isinstance(record, dict) and isinstance(record.get("attr"), str):
            path = _context_path(record.get("left"))
            if path is not None:
                return [*path, record["attr"]]
    return None


def _add(reads: Reads, path: list[str], *, whole: bool) -> None:
    """Note ``path`` as read whole (``whole``) or only tested for presence."""
    level = reads
    for name in path[:-1]:
        if name in level and level[name] is None:
            return  # read whole already
        below = level.setdefault(name, {})
        assert below is not None
        level = below
    last = path[-1]
    if whole:
        level[last] = None
    else:
        level.setdefault(last, {})
