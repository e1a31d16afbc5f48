"""tree-sitter-bash, created once per process on first use, with a time budget per parse."""

from __future__ import annotations

import functools
import threading
import time

import tree_sitter_bash
from tree_sitter import Language, Node, Parser, Point, Query, QueryCursor, Tree

from trailguard.classify.shell.limits import _SMALL_INPUT

# --------------------------------------------------------------------------------------------
# tree-sitter, created once per process on first use


class _ParseTimeout(Exception):
    pass


class _Engine:
    def __init__(self) -> None:
        language = Language(tree_sitter_bash.language())
        self._parser = Parser(language)
        self._heredoc_query = Query(language, "(heredoc_start) @start")
        self._lock = threading.Lock()  # a Parser is not safe to share between threads

    def parse(self, data: bytes, deadline: float) -> Tree:
        """Parse ``data``; raise _ParseTimeout past ``deadline`` (time.monotonic())."""
        if len(data) <= _SMALL_INPUT:  # the common case: fast, and no input this small is slow
            if time.monotonic() > deadline:
                raise _ParseTimeout
            with self._lock:
                return self._parser.parse(data)
        view = memoryview(data)

        def read(offset: int, _point: Point) -> memoryview:
            return view[offset:]

        def cancel(_offset: int, _has_error: bool) -> bool:
            return time.monotonic() > deadline

        with self._lock:
            try:
                return self._parser.parse(read, progress_callback=cancel)
            except ValueError as exc:  # cancelled
                self._parser.reset()
                raise _ParseTimeout from exc

    def heredoc_starts(self, root: Node) -> list[Node]:
        return QueryCursor(self._heredoc_query).captures(root).get("start", [])


@functools.cache
def _engine() -> _Engine:
    return _Engine()
