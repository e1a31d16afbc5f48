"""A gateway replica for the failover tests: joins the shared ledger (with a sequencer
candidate), appends COUNT events from THREADS threads and prints one line per acknowledged
event (``ack <event id> <seq>``), flushed before the next append, so whatever it printed had
been acknowledged when it was printed. Run: pg_replica.py URL KEY_FILE COUNT THREADS TAG."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from trailguard.events import Prompt
from trailguard.ledger.shared import SharedLedger
from trailguard.ledger.writer import LedgerConfig, LedgerError


def main() -> None:
    url, key_file, count, threads, tag = sys.argv[1:6]
    ledger = SharedLedger.open(
        url,
        key_file=Path(key_file),
        config=LedgerConfig(checkpoint_every_events=100, checkpoint_interval_seconds=1.0),
    )
    print(f"ready {ledger.replica}", flush=True)
    lock = threading.Lock()

    def work(worker: int) -> None:
        for i in range(int(count) // int(threads)):
            event = Prompt(prompt=f"{tag} {worker} {i}", session_id=f"sess_{tag}_{worker}")
            try:
                receipt = ledger.append(event)
            except LedgerError as exc:
                with lock:
                    print(f"error {event.event_id} {exc}", flush=True)
                continue
            with lock:
                print(f"ack {receipt.event_id} {receipt.seq}", flush=True)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(int(threads))]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    ledger.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
