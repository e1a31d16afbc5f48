"""Shared helpers for the benchmark scripts: event workloads, temp dirs, timing and reporting.

Not a benchmark itself; the ``bench_*.py`` scripts import it (they run with this directory on
``sys.path``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from trailguard.events import Event, Prompt, SessionEnd, SessionStart, ToolInvocation, ToolResult
from trailguard.store.sqlite import DATABASE_FILE

# -- workloads ------------------------------------------------------------------------------------


def sample_events(count: int, *, session: str = "sess_a8f3b21c") -> Iterator[Event]:
    """The mix of tests/conftest.py ``sample_events``: prompt, Bash call, Bash result, repeated.

    Small bodies (~300-400 bytes canonical). A generator so large ledgers need little memory.
    """
    common = {"session_id": session, "developer_id": "dev_jordan", "project_id": "proj_backend"}
    for i in range(count):
        kind = i % 3
        if kind == 0:
            yield Prompt(prompt=f"step {i}: list the files", **common)
        elif kind == 1:
            yield ToolInvocation(
                tool="Bash",
                tool_use_id=f"toolu_{i:06d}",
                input={"command": f"ls -la src/{i}", "description": "list"},
                policy_result="allowed",
                policy_rule="allow-all",
                **common,
            )
        else:
            yield ToolResult(
                tool="Bash",
                tool_use_id=f"toolu_{i - 1:06d}",
                status="success",
                output={"stdout": "a.py\nb.py\n", "stderr": ""},
                duration_ms=12,
                **common,
            )


_VOCABULARY = (
    "the file test function returns value config module error request handler update "
    "database query index table user session token cache build deploy check refactor import "
    "class method parse result output input path directory branch commit merge server client "
    "response status retry timeout logger fixture schema migration"
)
_WORDS = _VOCABULARY.split()

_COMMANDS = (
    "pytest -q tests/test_{w}.py -k 'not slow' --maxfail=1 2>&1 | tail -n 40",
    "git diff --stat HEAD~1 -- src/{w}/ && git log --oneline -n 5 -- src/{w}/",
    "rg -n --hidden 'def {w}_handler' src/ tests/ | head -n 50",
    "ruff check src/{w} --output-format=concise && mypy src/{w} --strict",
    "ls -la src/{w}/ && wc -l src/{w}/*.py | sort -n | tail -n 10",
    "npm run build -- --filter=@app/{w} 2>&1 | grep -E 'error|warn' | head",
)


def _text(rng: random.Random, length: int) -> str:
    words: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:length]


def _stdout(rng: random.Random, length: int) -> str:
    lines: list[str] = []
    size = 0
    while size < length:
        line = f"src/{rng.choice(_WORDS)}/{rng.choice(_WORDS)}.py:{rng.randint(1, 900)}: " + _text(
            rng, rng.randint(20, 70)
        )
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[:length]


def _file_content(rng: random.Random, length: int) -> str:
    lines: list[str] = []
    size = 0
    while size < length:
        name = rng.choice(_WORDS)
        line = rng.choice(
            (
                f"def {name}_{rng.randint(0, 99)}(value: str) -> str:",
                f'    """Return the {name} for {rng.choice(_WORDS)}."""',
                f"    {name} = config.get('{rng.choice(_WORDS)}', {rng.randint(0, 500)})",
                f'    return f"{{{name}}}-{rng.choice(_WORDS)}"',
                "",
            )
        )
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[:length]


def realistic_events(count: int, *, seed: int = 1) -> Iterator[Event]:
    """Exactly ``count`` events of a coding-agent session mix (deterministic for a seed).

    Sessions of ~400 events open with ``session_start`` and close with ``session_end``; each turn
    is a prompt (~200 chars) then 1-6 tool calls: Bash (command ~80 chars; result stdout ~500
    bytes, 1 in 10 about 4 KB) or Write (~1 KB of file content; short result).
    """
    rng = random.Random(seed)
    produced = 0
    session_number = 0
    while produced < count:
        session_number += 1
        session = f"sess_{seed:02d}{session_number:06d}"
        common = {
            "session_id": session,
            "developer_id": f"dev_{rng.choice(('jordan', 'amara', 'li', 'sofia'))}",
            "project_id": f"proj_{rng.choice(('backend', 'web', 'infra'))}",
            "source": "hook",
        }
        batch: list[Event] = [
            SessionStart(
                agent="claude-code",
                agent_version="2.1.3",
                model="claude-sonnet-4-5",
                permission_mode="default",
                cwd=f"/home/dev/{common['project_id']}",
                git_remote=f"git@github.com:acme/{common['project_id']}.git",
                git_branch=f"feature/{rng.choice(_WORDS)}-{rng.randint(1, 999)}",
                claimed_identity={"osUser": "dev", "gitEmail": "dev@acme.example"},
                start_source="startup",
                **common,
            )
        ]
        target = rng.randint(300, 500)
        tool_number = 0
        while len(batch) < target:
            batch.append(Prompt(prompt=_text(rng, rng.randint(150, 250)), **common))
            for _ in range(rng.randint(1, 6)):
                tool_number += 1
                use_id = f"toolu_{session_number:06d}{tool_number:05d}"
                if rng.random() < 0.75:
                    command = rng.choice(_COMMANDS).format(w=rng.choice(_WORDS))
                    batch.append(
                        ToolInvocation(
                            tool="Bash",
                            tool_use_id=use_id,
                            input={"command": command, "description": _text(rng, 30)},
                            policy_result="allowed",
                            policy_rule="default-allow",
                            policy_version="2026-01-01",
                            **common,
                        )
                    )
                    size = rng.randint(3500, 4500) if rng.random() < 0.1 else rng.randint(300, 700)
                    batch.append(
                        ToolResult(
                            tool="Bash",
                            tool_use_id=use_id,
                            status="success",
                            output={
                                "stdout": _stdout(rng, size),
                                "stderr": "",
                                "interrupted": False,
                            },
                            duration_ms=rng.randint(5, 30000),
                            **common,
                        )
                    )
                else:
                    path = f"/home/dev/{common['project_id']}/src/{rng.choice(_WORDS)}.py"
                    batch.append(
                        ToolInvocation(
                            tool="Write",
                            tool_use_id=use_id,
                            input={
                                "file_path": path,
                                "content": _file_content(rng, rng.randint(800, 1200)),
                            },
                            policy_result="allowed",
                            policy_rule="default-allow",
                            policy_version="2026-01-01",
                            **common,
                        )
                    )
                    batch.append(
                        ToolResult(
                            tool="Write",
                            tool_use_id=use_id,
                            status="success",
                            output={"type": "update", "filePath": path},
                            duration_ms=rng.randint(1, 40),
                            **common,
                        )
                    )
        batch.append(SessionEnd(reason="completed", **common))
        for event in batch:
            if produced >= count:
                return
            yield event
            produced += 1


WORKLOADS = {"sample": sample_events, "realistic": realistic_events}


def make_events(mix: str, count: int) -> Iterator[Event]:
    return WORKLOADS[mix](count)


# -- environment ----------------------------------------------------------------------------------


def build_ledger(data_dir: Path, events: Iterable[Event], checkpoint_every: int) -> float:
    """Write ``events`` in transactions of ``checkpoint_every`` events, each ending with a
    signed checkpoint; returns the seconds it took (callers report it as not timed)."""
    from trailguard.ledger.writer import Ledger, LedgerConfig

    started = time.perf_counter()
    ledger = Ledger.open(
        data_dir,
        config=LedgerConfig(
            checkpoint_every_events=checkpoint_every, checkpoint_interval_seconds=3600.0
        ),
        run_reason="benchmark",
    )
    try:
        ledger.append_many(events, chunk=checkpoint_every)
    finally:
        ledger.close()
    return time.perf_counter() - started


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes, about 10 seconds")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="parent of the temporary data directories (default: %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")


@contextlib.contextmanager
def scratch_dir(parent: Path, keep: bool) -> Iterator[Path]:
    """A fresh directory under ``parent``, removed afterwards unless ``keep``."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="trailguard-bench-", dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def environment(scratch: Path) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "dir": str(scratch),
        "same_fs_as_project": os.stat(scratch).st_dev == os.stat(Path(__file__)).st_dev,
    }


def print_header(title: str, scratch: Path) -> dict[str, Any]:
    """Print the title and the environment; returns the environment for the RESULT line."""
    env = environment(scratch)
    print(title)
    print(
        f"python {env['python']}, sqlite {env['sqlite']}, {env['cpus']} CPUs, "
        f"{env['machine']}, data in {env['dir']} "
        f"({'same' if env['same_fs_as_project'] else 'NOT the same'} file system as the project)"
    )
    return env


# -- reporting ------------------------------------------------------------------------------------


def section(title: str) -> None:
    print()
    print(title)


def metric(label: str, value: float | int | str, unit: str = "") -> None:
    """One aligned line: label, value, unit."""
    if isinstance(value, (bool, str)):
        text = str(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    elif abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3f}"
    print(f"  {label:<48} {text:>14} {unit}".rstrip())


def target(label: str, met: bool) -> None:
    metric(label, "MET" if met else "NOT MET")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (pct in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def print_result(result: dict[str, Any]) -> None:
    print()
    print("RESULT " + json.dumps(result, separators=(",", ":")))
    sys.stdout.flush()


# -- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_with_agent_token(
    stack: contextlib.ExitStack,
    data_dir: Path,
    log: Path,
    *extra: str,
    developer: str,
    src: Path | None = None,
) -> tuple[subprocess.Popen[Any], int, str]:
    """``trailguard serve`` on ``data_dir`` and a free port, without the per-token hook rate
    limit (one token drives every client of a benchmark), stopped when ``stack`` closes; then
    an agent token for ``developer``. ``src``: another checkout's ``src`` directory to run
    (before/after in one run). Returns the process, its port and the token."""
    trailguard = Path(sys.executable).with_name("trailguard")
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    port = free_port()
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [str(trailguard), "serve", "--data-dir", str(data_dir), "--port", str(port),
             "--hook-rate", "0", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file, env=env,
        )  # fmt: skip
    stack.callback(stop_process, process)
    wait_ready(process, f"http://127.0.0.1:{port}/healthz", log)
    made = subprocess.run(
        [str(trailguard), "token", "create", "--developer", developer, "--role", "agent",
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        raise SystemExit(f"trailguard token create failed:\n{made.stderr}")
    return process, port, made.stdout.strip().splitlines()[-1]


def stop_process(process: subprocess.Popen[Any], timeout: float = 60) -> int | None:
    """SIGTERM, then SIGKILL if it does not exit within ``timeout``; returns the exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=10)
    return process.returncode


def wait_ready(process: subprocess.Popen[Any], url: str, log: Path, *, context: Any = None) -> None:
    """Poll ``url`` until it answers 200; exit with the tail of ``log`` if it never does.
    ``context``: the ``ssl.SSLContext`` of an https URL."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer:\n{log.read_text(errors='replace')[-3000:]}")


def create_token(data_dir: Path, developer: str, role: str) -> str:
    """A new token made with `trailguard token create` (the CLI next to this Python)."""
    made = subprocess.run(
        [str(Path(sys.executable).with_name("trailguard")), "token", "create",
         "--developer", developer, "--role", role, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return made.stdout.strip().splitlines()[-1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc), for CPU of a multi-process server."""
    found = [pid]
    for parent in found:  # grows while it is walked
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                found.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants so far."""
    return sum(cpu_seconds(p) for p in process_tree(pid))


def ledger_counts(data_dir: Path) -> dict[str, int]:
    """Events in the ledger by type, read through a read-only connection."""
    uri = f"{(data_dir / DATABASE_FILE).as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        rows = db.execute("SELECT event_type, count(*) FROM events GROUP BY event_type")
        return {str(kind): int(count) for kind, count in rows}
    finally:
        db.close()


NOOP_HOOK_SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                self.rfile.read(size)
                self.rfile.readline()
        else:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

class Server(ThreadingHTTPServer):
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_noop_server(stack: contextlib.ExitStack) -> str:
    """A do-nothing HTTP hook server (``{}`` to every POST) in its own ``python -S`` process,
    stopped by ``stack``; returns its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-S", "-c", NOOP_HOOK_SERVER],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    stack.callback(stop_process, process, 30)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.isdigit():
        raise SystemExit(f"the no-op hook server did not start (printed {line!r})")
    return f"http://127.0.0.1:{line}"
