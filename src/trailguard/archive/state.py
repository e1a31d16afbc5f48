"""What the exporter remembers between runs, in ``<data dir>/archive-state.json``: the archive,
the last run and its outcome, the next scheduled run. A convenience for ``archive status``:
nothing is decided from it (every run and prune reads the archive itself)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

STATE_FILE = "archive-state.json"


def read_state(data_dir: Path) -> dict[str, Any]:
    try:
        value = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_state(data_dir: Path, **values: Any) -> None:
    """Merge ``values`` into the state file (written durably; a failure to write is ignored:
    the state is only ever informative)."""
    from trailguard.ledger.keys import write_file_durably

    state = read_state(data_dir)
    state.update(values)
    with contextlib.suppress(OSError):
        write_file_durably(
            data_dir / STATE_FILE, json.dumps(state, indent=2) + "\n", mode=0o600, replace=True
        )
