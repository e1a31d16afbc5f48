"""A writer process for the crash test: appends from several threads and prints every
acknowledgement (``ACK <seq> <eventId>``) only after the ledger has returned it."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from trailguard.events import Prompt
from trailguard.ledger.writer import Ledger, LedgerConfig


def main(data_dir: Path) -> None:
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=200))
    print_lock = threading.Lock()

    def write(worker: int) -> None:
        n = 0
        while True:
            n += 1
            event = Prompt(prompt=f"worker {worker} prompt {n}", session_id=f"sess_{worker}")
            receipt = ledger.append(event)
            with print_lock:
                sys.stdout.write(f"ACK {receipt.seq} {receipt.event_id}\n")
                sys.stdout.flush()

    print("READY", flush=True)
    for worker in range(4):
        threading.Thread(target=write, args=(worker,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
