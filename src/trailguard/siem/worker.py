"""The sink worker: a process of its own that runs every forwarder of one gateway, so that
formatting and sending never compete with the hook path for the gateway's interpreter.

``python -m trailguard.siem.worker --data-dir D --parent-pid P --verifier-key K`` reads the
sinks from stdin (JSON: ``[{"url": ..., "overrides": {...}}]``, parsed again here, secret files
read here), holds ``sinks.lock`` so that one worker at a time forwards from a data directory,
records alerts through the gateway state's queue (the reaper appends them, redacted, like a CLI
process's records), drains for ``--drain-seconds`` on SIGTERM, and exits when its gateway is
gone (a SIGKILLed gateway leaves no orphan forwarding beside the next one).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Final

from trailguard.events import Alert
from trailguard.ledger.note import Verifier
from trailguard.siem.config import SinkConfig, SinkConfigError, parse_sink_url
from trailguard.siem.cursors import CursorStore
from trailguard.siem.forwarder import Forwarder
from trailguard.store.base import StoreError
from trailguard.store.gateway_state import GatewayState

LOCK_FILE: Final = "sinks.lock"
log = logging.getLogger("trailguard.siem")


def specs(configs: list[SinkConfig]) -> str:
    """What the worker reads on stdin to re-create ``configs``."""
    return json.dumps([{"url": c.url, "overrides": dict(c.overrides)} for c in configs])


class QueuedAlerts:
    """Alerts handed to the gateway's reaper through ``state.sqlite3`` (the ledger has one
    writer, in the gateway process)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._lock = threading.Lock()

    def __call__(self, alert: Alert) -> None:
        with self._lock:
            state = GatewayState(self.data_dir)
            try:
                state.enqueue_events([alert.model_dump_json(by_alias=True)])
            finally:
                state.close()


def _lock(data_dir: Path, timeout: float) -> int:
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise SystemExit(
                    f"trailguard sinks: another sink worker holds {data_dir / LOCK_FILE}"
                ) from None
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trailguard-sink-worker")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--verifier-key", required=True)
    parser.add_argument("--drain-seconds", type=float, default=3.0)
    parser.add_argument("--poll-interval", type=float, default=0.1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the gateway, which stops us
    print("ready", flush=True)  # SIGTERM now drains: the gateway may stop us from here on

    try:
        configs = [
            parse_sink_url(spec["url"], overrides=spec["overrides"])
            for spec in json.loads(sys.stdin.read())
        ]
    except (SinkConfigError, ValueError, KeyError, TypeError) as exc:
        log.error("trailguard sinks: cannot start: %s", exc)
        return 2
    lock = _lock(args.data_dir, timeout=30.0)
    cursors = CursorStore(args.data_dir)
    record = QueuedAlerts(args.data_dir)
    forwarders = [
        Forwarder(
            config,
            data_dir=args.data_dir,
            verifier=Verifier.from_string(args.verifier_key),
            cursors=cursors,
            hostname=socket.gethostname(),
            record_alert=record,
            poll_interval=args.poll_interval,
        )
        for config in configs
    ]
    for forwarder in forwarders:
        forwarder.start()
    orphaned = False
    while not stop.wait(0.2):
        if os.getppid() != args.parent_pid:  # the gateway died (SIGKILL): stop at once
            orphaned = True
            break
    for forwarder in forwarders:
        forwarder.request_stop(0.0 if orphaned else args.drain_seconds)
    for forwarder in forwarders:
        forwarder.join()
    try:
        cursors.close()
    except StoreError as exc:
        log.error("trailguard sinks: %s", exc)
    os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
