"""Shared fixtures: ledgers in temporary directories and realistic sample events."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends import backend  # noqa: F401 - fixture: each test taking it runs on both stores
from pg import pg_database  # noqa: F401 - fixture: a fresh PostgreSQL database per test
from trailguard.events import Event, Prompt, ToolInvocation, ToolResult
from trailguard.ledger.keys import load_verifier
from trailguard.ledger.note import Verifier
from trailguard.ledger.verify import VerificationReport, verify_ledger
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.store.sqlite import SQLiteStore


def _shared_redaction_dir() -> Path:
    """The steering repo's shared/redaction: beside this clone, else /work/shared (where these
    machines keep it), unless TRAILGUARD_SHARED_DIR says otherwise."""
    configured = os.environ.get("TRAILGUARD_SHARED_DIR")
    candidates = [Path(configured)] if configured else []
    candidates += [Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")]
    for candidate in candidates:
        if (candidate / "redaction").is_dir():
            return candidate / "redaction"
    return candidates[0] / "redaction"


SHARED_REDACTION = _shared_redaction_dir()
"""gitleaks-derived data (its rule set converted for trailguard, and its own rule test cases as an
external corpus). Data from a fetched public repository is kept outside this repository, in the
steering repo's shared/ (/work/shared), never committed here."""
SHARED_RULES = SHARED_REDACTION / "gitleaks-rules.json"
SHARED_CORPUS = SHARED_REDACTION / "gitleaks-corpus.jsonl"
if SHARED_RULES.is_file():
    # Set before anything loads the rules; gateways the tests start inherit it.
    os.environ.setdefault("TRAILGUARD_SECRET_RULES", str(SHARED_RULES))


def require_shared_redaction_data() -> None:
    """Fail under CI, skip elsewhere, when the gitleaks-derived data is not on this machine."""
    if SHARED_RULES.is_file() and SHARED_CORPUS.is_file():
        return
    why = f"the gitleaks-derived rules and corpus are not in {SHARED_REDACTION}"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def sample_events(count: int, *, session: str = "sess_a8f3b21c") -> list[Event]:
    """A realistic mix: prompts, tool calls and their results."""
    events: list[Event] = []
    for i in range(count):
        kind = i % 3
        common = {"session_id": session, "developer_id": "dev_jordan", "project_id": "proj_backend"}
        if kind == 0:
            events.append(Prompt(prompt=f"step {i}: list the files", **common))
        elif kind == 1:
            events.append(
                ToolInvocation(
                    tool="Bash",
                    tool_use_id=f"toolu_{i:06d}",
                    input={"command": f"ls -la src/{i}", "description": "list"},
                    policy_result="allowed",
                    policy_rule="allow-all",
                    **common,
                )
            )
        else:
            events.append(
                ToolResult(
                    tool="Bash",
                    tool_use_id=f"toolu_{i - 1:06d}",
                    status="success",
                    output={"stdout": "a.py\nb.py\n", "stderr": ""},
                    duration_ms=12,
                    **common,
                )
            )
    return events


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "ledger"


@pytest.fixture
def open_ledger(data_dir: Path) -> Iterator[Callable[..., Ledger]]:
    """Opens ledgers in ``data_dir`` (small checkpoint interval) and closes them afterwards."""
    opened: list[Ledger] = []

    def opener(**config: object) -> Ledger:
        settings = {"checkpoint_every_events": 50, "checkpoint_interval_seconds": 3600.0}
        settings.update(config)
        ledger = Ledger.open(data_dir, config=LedgerConfig(**settings))  # type: ignore[arg-type]
        opened.append(ledger)
        return ledger

    yield opener
    for ledger in opened:
        with contextlib.suppress(Exception):  # a test that broke the disk on purpose
            ledger.close()


def pinned_verifier(data_dir: Path) -> Verifier:
    return load_verifier(str(data_dir / "signing.pub"))


def verify_dir(
    data_dir: Path,
    *,
    verifier: Verifier | None = None,
    trusted_checkpoint: str | None = None,
    workers: int = 1,
) -> VerificationReport:
    opener = functools.partial(SQLiteStore.in_data_dir, data_dir, read_only=True)
    store = opener()
    try:
        return verify_ledger(
            store,
            opener,
            verifier or pinned_verifier(data_dir),
            trusted_checkpoint=trusted_checkpoint,
            workers=workers,
        )
    finally:
        store.close()


@pytest.fixture(scope="session")
def claude_binary() -> Path:
    """The real CLI. Installed from npm when missing; in CI a failed install fails the run."""
    from e2e.claude import BINARY_ENV, ClaudeCodeUnavailable, ensure_claude_code, find_claude_binary

    binary = find_claude_binary()
    if binary is None:
        try:
            binary = ensure_claude_code()
        except ClaudeCodeUnavailable as exc:
            if os.environ.get("CI"):
                pytest.fail(f"Claude Code is required in CI: {exc}")
            pytest.skip(f"Claude Code unavailable ({exc}); set {BINARY_ENV} to its binary")
    return binary
