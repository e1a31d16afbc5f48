"""The console's heavy pages are built in a separate process, never in the gateway's.

Reading thousands of events, decoding them and rendering the HTML is CPU work that holds
Python's GIL: in the gateway process it would slow every PreToolUse of every agent while an
auditor looks. So :class:`Renderer` sends a :class:`PageJob` (plain data: which page, its
query, who looks) to one worker process at lower CPU priority, which opens the data directory
read-only and returns the page's HTML and what was shown. The gateway process only checks the
session, records the ``audit_access`` and sends the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
from collections.abc import Hashable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, cast

from trailguard.console import views
from trailguard.console.templating import environment, session_href
from trailguard.cost.budgets import BudgetConfig
from trailguard.errors import FaultError, InvalidInputError, NotFoundError
from trailguard.store.backend import Backend
from trailguard.store.base import Store
from trailguard.store.state import GatewayStateStore

__all__ = ["PageJob", "PageResult", "Renderer", "ViewerInfo", "build_page"]

NICENESS: Final = 10
"""How much lower the renderer's CPU priority is than the gateway's (hooks come first)."""


@dataclass(frozen=True)
class ViewerInfo:
    developer_id: str
    role: str
    token_id: str
    csrf_token: str


@dataclass(frozen=True)
class PageJob:
    page: str
    backend: Backend
    """Where the ledger and the gateway state are (a data directory or PostgreSQL)."""
    params: tuple[tuple[str, str], ...]
    """The query parameters, repeated names kept (``has=denials&has=gaps``)."""
    viewer: ViewerInfo
    assets: tuple[tuple[str, str], ...]
    live_interval_ms: int = 5000
    budgets: BudgetConfig = field(default_factory=BudgetConfig)
    session_id: str | None = None
    fingerprint: str | None = None
    """For live updates: the page's current fingerprint (unchanged: no page, nothing shown)."""


@dataclass(frozen=True)
class PageResult:
    html: str | None
    """None: a live update with nothing new (answered 204, not recorded)."""
    action: str
    query: dict[str, Any]
    shown: int | None
    fingerprint: str | None = None


class _Params(Mapping[str, str]):
    """The query as a mapping (first value of each name) with ``getlist`` for repeated names."""

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self._pairs = pairs
        self._first: dict[str, str] = {}
        for name, value in pairs:
            self._first.setdefault(name, value)

    def __getitem__(self, name: str) -> str:
        return self._first[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


@lru_cache(maxsize=8)
def _opened(backend: Hashable) -> tuple[Store, GatewayStateStore, views.SessionIndex]:
    """The worker's read connections, kept between jobs (each query sees the latest commit),
    and its index of session reports. Backends are frozen dataclasses: hashable."""
    where = cast(Backend, backend)
    return where.open_reader(), where.open_state(), views.SessionIndex()


def _render(job: PageJob, template: str, **context: Any) -> str:
    assets = dict(job.assets)
    return (
        environment()
        .get_template(template)
        .render(
            viewer=job.viewer,
            csrf=job.viewer.csrf_token,
            asset=assets.__getitem__,
            live_interval_ms=job.live_interval_ms,
            **context,
        )
    )


_LISTS: Final = {
    "denials": (views.denials, (*views.DENIAL_FILTERS, *views.TIME_FILTERS), "denials.html"),
    "infrastructure": (
        views.infrastructure,
        (*views.INFRA_FILTERS, *views.TIME_FILTERS),
        "infrastructure.html",
    ),
    "alerts": (views.alerts, (*views.ALERT_FILTERS, *views.TIME_FILTERS), "alerts.html"),
    "access": (views.access_log, (*views.ACCESS_FILTERS, "since", "until"), "access.html"),
}


def _session_id(job: PageJob) -> str:
    session_id = job.session_id or ""
    if not session_id or len(session_id) > 256:
        raise InvalidInputError("a session id is 1 to 256 characters")
    return session_id


def build_page(job: PageJob) -> PageResult:
    """Build one page (in the renderer process). Raises InvalidInputError (a 4xx page) for a
    filter that cannot be used, NotFoundError for a session without events."""
    store, state, index = _opened(cast(Hashable, job.backend))
    params = _Params(job.params)
    if job.page in ("sessions", "sessions_live"):
        wanted = views.SessionFilters.parse(params, params.getlist("has"))
        live = job.page == "sessions_live"
        if live and views.sessions_fingerprint_for(state, wanted) == job.fingerprint:
            return PageResult(None, "", {}, None)
        listed = views.list_sessions(state, store, wanted, index=index)
        template = "_sessions_table.html" if live else "sessions.html"
        return PageResult(
            _render(job, template, nav="sessions", page=listed, filters=wanted),
            "GET /ui/sessions (live update)" if live else "GET /ui/sessions",
            wanted.as_query(),
            len(listed.rows),
            listed.fingerprint,
        )
    if job.page in ("session", "session_live"):
        session_id = _session_id(job)
        live = job.page == "session_live"
        if live and views.session_fingerprint(store, session_id) == job.fingerprint:
            return PageResult(None, "", {}, None)
        page = params.get("page", "1")
        if not page.isdigit() or not 1 <= int(page) <= 100_000:
            raise InvalidInputError(f"page: a number from 1, got {page[:20]!r}")
        base = session_href(session_id)
        view = views.session_view(
            store,
            state,
            session_id,
            page=int(page),
            page_link=lambda number: base + ("&" if "?" in base else "?") + f"page={number}",
        )
        action = "GET /ui/sessions/{id}" + (" (live update)" if live else "")
        if view is None:
            raise NotFoundError(f"no events for session {session_id!r} in this ledger")
        html = _render(
            job,
            "_timeline.html" if live else "session.html",
            nav="sessions",
            view=view,
            session_id=session_id,
            killed=params.get("killed") == "1",
        )
        return PageResult(html, action, {"session": session_id}, view.event_count, view.fingerprint)
    if job.page in _LISTS:
        reader, names, template = _LISTS[job.page]
        filters = views.ListFilters.parse(params, names)
        found = reader(store, filters)
        return PageResult(
            _render(job, template, nav=job.page, page=found, filters=filters),
            f"GET /ui/{job.page}",
            filters.as_query(),
            len(found.events),
        )
    if job.page == "cost":
        filters = views.ListFilters.parse(params, ("developer", "project", "since", "until"))
        shown = views.cost_view(store, filters)
        return PageResult(
            _render(job, "cost.html", nav="cost", filters=filters, budgets=job.budgets, **shown),
            "GET /ui/cost",
            filters.as_query(),
            shown["report"]["requests"],
        )
    raise NotFoundError(f"no console page {job.page!r}")


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.nice(NICENESS)


def _warm(backend: Backend) -> bool:
    """Load the templates and read the ledger into the session index ahead of the first page."""
    environment()
    store, _, index = _opened(cast(Hashable, backend))
    index.refresh(store)
    return True


class Renderer:
    """One worker process that builds pages, started on first use, restarted if it dies
    (``in_process`` builds them in a thread instead, where processes cannot be started)."""

    def __init__(self, *, in_process: bool = False) -> None:
        self.in_process = in_process
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["trailguard.console.pages"])
                self._executor = ProcessPoolExecutor(
                    max_workers=1, mp_context=context, initializer=_lower_priority
                )
            return self._executor

    def warm(self, backend: Backend) -> None:
        """Start the worker and its index ahead of the first page (the sign-in form calls
        this)."""
        if not self.in_process:
            self._pool().submit(_warm, backend)

    async def run(self, job: PageJob) -> PageResult:
        if self.in_process:
            return await asyncio.to_thread(build_page, job)
        pool = self._pool()
        try:
            return await asyncio.wrap_future(pool.submit(build_page, job))
        except BrokenProcessPool:
            with self._lock:
                if self._executor is pool:
                    self._executor = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise FaultError(
                "the console's page renderer stopped unexpectedly; it restarts with the next page"
            ) from None

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
