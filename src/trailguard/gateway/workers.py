"""``serve --workers N``: the hook pipeline on N processes, the ledger still with one writer.

    supervisor (the `serve` process: binds the port, forks, restarts, orders the shutdown)
     ├─ writer process   Ledger (the data directory's only writer, group commit) behind a Unix
     │                   socket in a private directory; the archive job
     └─ N workers        uvicorn + the gateway app on the shared listening socket; each parses,
                         classifies, decides, redacts and canonicalises on its own core and
                         waits for the writer's durable acknowledgement before it answers

Gateway state is shared through the state file as for replicas of a shared ledger (session
starts at once, budgets from the ledger's cost events); a kill, an exhausted budget or a policy
put in force is announced through shared memory and taken in by every worker before its next
request (gateway/shared_changes.py); the hook rate limit is shared memory too. Worker 0 runs
the once-only jobs. A child that dies is restarted; while the writer is down the workers answer
503 (fail closed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("trailguard.workers")

WRITER_SOCKET = "writer.sock"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class WorkerStartError(RuntimeError):
    """The writer process could not start (the message says why); nothing is served."""


@dataclass(frozen=True)
class WorkerPlan:
    """What the children run, as callables (the children are forked, not spawned)."""

    data_dir: Path
    workers: int
    open_ledger: Callable[[], Any]
    """Opens the data directory's ``Ledger`` (in the writer process)."""
    make_app: Callable[[Any, int], Any]
    """(an EventLog, worker index) -> the ASGI app of that worker."""
    make_server: Callable[[Any], Any]
    """An ASGI app -> the ``uvicorn.Server`` that runs it."""
    start_jobs: Callable[[Any], Callable[[], None]] | None = None
    """Jobs of the writer process (the archive): started with the ledger, returns a stop."""


def _watch_parent(parent: int) -> None:
    """A child whose supervisor died stops too (it would otherwise hold the port or the lock)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="trailguard-parent-watch", daemon=True).start()


def _writer_main(plan: WorkerPlan, socket_path: Path, ready: int, parent: int) -> int:
    from trailguard.ledger.writer_service import WriterService

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor orders the shutdown
    _watch_parent(parent)
    try:
        ledger = plan.open_ledger()
    except Exception as exc:  # said to the supervisor, which fails with it
        os.write(ready, f"error: {exc}".encode()[:4000])
        return 1
    stop_jobs: Callable[[], None] | None = None
    service = WriterService(ledger, socket_path)
    reason = "shutdown"
    try:
        service.start()
        if plan.start_jobs is not None:
            stop_jobs = plan.start_jobs(ledger)
        os.write(ready, b"ok")
        os.close(ready)
        while not stop.wait(0.5):
            pass
    except BaseException as exc:
        reason = f"error: {type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        if stop_jobs is not None:
            stop_jobs()
        service.stop()
        ledger.close(reason=reason)
    return 0


def _worker_main(
    plan: WorkerPlan, index: int, socket_path: Path, listener: socket.socket, ready: int | None
) -> int:
    from trailguard.ledger.remote import RemoteLedger
    from trailguard.ledger.writer import LedgerError

    _watch_parent(os.getppid())
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            ledger = RemoteLedger(plan.data_dir, socket_path, leads=index == 0)
            break
        except LedgerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    server = plan.make_server(plan.make_app(ledger, index))
    if ready is not None:
        threading.Thread(
            target=_say_when_started, args=(server, ready), name="trailguard-ready", daemon=True
        ).start()
    try:
        server.run(sockets=[listener])
    finally:
        ledger.close()
    return 0


def _say_when_started(server: Any, ready: int) -> None:
    """Tell the supervisor once the lead worker's app has started (its start-up records are
    in the ledger), so the other workers never answer before them."""
    while not server.started and not server.should_exit:
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        os.write(ready, b"ok" if server.started else b"error: the lead worker did not start")
        os.close(ready)


def _wait_ready(read_end: int, until: Callable[[], bool]) -> bytes:
    """What a child wrote on its readiness pipe (b"ok..." or b"error: ...")."""
    answer = b""
    deadline = time.monotonic() + READY_TIMEOUT
    os.set_blocking(read_end, False)
    try:
        while time.monotonic() < deadline and not until():
            try:
                chunk = os.read(read_end, 4096)
            except BlockingIOError:
                time.sleep(0.02)
                continue
            answer += chunk
            if not chunk or answer.startswith(b"ok"):
                break
    finally:
        os.close(read_end)
    return answer


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _fork(run: Callable[[], int]) -> int:
    """Fork a child that runs ``run``. The stop signals are blocked across the fork and reset
    to their defaults in the child before they are unblocked: a SIGTERM that arrives while a
    child starts must stop it, not run the supervisor's handler in the child's copy."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    pid = os.fork()
    if pid == 0:  # the child: never returns into the supervisor's code
        code = 1
        try:
            for number in _STOP_SIGNALS:
                signal.signal(number, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            code = run()
        except BaseException:
            logging.getLogger("trailguard.workers").exception("trailguard: a child failed")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return pid


class Supervisor:
    """Runs ``plan`` on ``listener`` until SIGTERM or SIGINT."""

    def __init__(self, plan: WorkerPlan, listener: socket.socket) -> None:
        self.plan = plan
        self.listener = listener
        self.runtime = Path(tempfile.mkdtemp(prefix="trailguard-"))  # 0700: only this user
        self.socket_path = self.runtime / WRITER_SOCKET
        self.writer_pid = 0
        self.workers: dict[int, int] = {}
        """worker pid -> index"""
        self.restarts = 0
        self._signal: int | None = None

    def _start_writer(self) -> None:
        read_end, write_end = os.pipe()
        parent = os.getpid()
        pid = _fork(lambda: _writer_main(self.plan, self.socket_path, write_end, parent))
        os.close(write_end)
        answer = _wait_ready(read_end, lambda: self._signal is not None)
        self.writer_pid = pid
        if not answer.startswith(b"ok"):
            message = answer.decode(errors="replace").removeprefix("error: ")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.writer_pid = 0
            raise WorkerStartError(message or "the ledger writer process did not start")

    def _start_worker(self, index: int, *, wait: bool = False) -> None:
        read_end, write_end = os.pipe() if wait else (None, None)
        pid = _fork(
            lambda: _worker_main(self.plan, index, self.socket_path, self.listener, write_end)
        )
        self.workers[pid] = index
        if read_end is not None and write_end is not None:
            os.close(write_end)
            answer = _wait_ready(read_end, lambda: self._signal is not None)
            if not answer.startswith(b"ok") and self._signal is None:
                message = answer.decode(errors="replace").removeprefix("error: ")
                raise WorkerStartError(message or f"worker {index} did not start")

    def _on_signal(self, number: int, _frame: object) -> None:
        self._signal = number

    def run(self) -> int | None:
        """Serve until a signal; returns the signal that stopped it (None: none)."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._start_writer()
            self._start_worker(0, wait=True)  # the lead records the start-up events first
            for index in range(1, self.plan.workers):
                self._start_worker(index)
            while self._signal is None:
                self._reap()
                time.sleep(0.05)
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            shutil.rmtree(self.runtime, ignore_errors=True)
        return self._signal

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self._signal is not None:
                return
            self.restarts += 1
            if pid == self.writer_pid:
                log.error(
                    "trailguard: the ledger writer process exited (%s); hooks are refused "
                    "(503) until it is back; restarting it",
                    _describe(status),
                )
                self.writer_pid = 0
                self._restart_writer()
            elif pid in self.workers:
                index = self.workers.pop(pid)
                log.error(
                    "trailguard: worker %d exited (%s); restarting it", index, _describe(status)
                )
                self._start_worker(index)

    def _restart_writer(self) -> None:
        while self._signal is None:
            try:
                self._start_writer()
                return
            except WorkerStartError as exc:  # e.g. the disk is gone: keep trying, fail closed
                log.error("trailguard: the ledger writer does not start: %s", exc)
                time.sleep(1.0)

    def _shutdown(self) -> None:
        """Workers first (they stop taking requests and finish what they hold), then the
        writer (gateway_stop and the final checkpoint after the last worker event)."""
        self._stop_children(list(self.workers))
        self.workers.clear()
        if self.writer_pid:
            self._stop_children([self.writer_pid])
            self.writer_pid = 0

    @staticmethod
    def _stop_children(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        waiting = set(pids)
        while waiting and time.monotonic() < deadline:
            for pid in list(waiting):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    waiting.discard(pid)
            time.sleep(0.02)
        for pid in waiting:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
