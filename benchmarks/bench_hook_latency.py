"""PreToolUse hook latency as Claude Code itself measures it, for trailguard and do-nothing hooks.

Real ``claude -p`` sessions (the binary of tests/e2e, offline against its scripted model server)
make ``--calls`` Bash tool calls each, one per turn, with OpenTelemetry logs exported as OTLP/HTTP
JSON to a small receiver in this script. Claude Code logs one ``hook_execution_complete`` record
per hook event it ran; the PreToolUse ones carry ``total_duration_ms``, the time the agent waited
for its hooks before the tool could run. Four configurations, one project directory each, run in
interleaved rounds (one session of each per round, the order rotating) so they share the noise:

(a) trailguard, http mode: ``trailguard serve`` + ``trailguard install --mode http``;
(b) a do-nothing HTTP hook server (stdlib ThreadingHTTPServer in its own process, ``{}`` to every
    POST), configured as an http PreToolUse hook of the same shape (headers, allowedEnvVars,
    onFailure, timeout);
(c) trailguard, command mode: ``trailguard install --mode command`` (its default command hook,
    ``python -I -S .../trailguard/__main__.py hook``, or ``--hook-command``), against the same
    gateway;
(d) a bare command hook, ``python -S -c "import sys; sys.stdin.read(); print('{}')"`` (this
    interpreter), with the same shape as (c)'s.

(a) and (c) install trailguard's hooks on every event; only the PreToolUse latencies are compared.

What Claude Code 2.1.328 sends (observed): ``POST /v1/logs`` with ``resourceLogs[].scopeLogs[]
.logRecords[]`` (scope ``com.anthropic.claude_code.events``); each record's body is
``claude_code.<event>`` and its attributes include ``event.name`` (``hook_execution_complete``),
``session.id``, ``event.timestamp``, ``hook_event`` (``PreToolUse``), ``hook_name``
(``PreToolUse:Bash``), ``num_hooks``, ``num_success``, ``num_blocking`` and
``total_duration_ms`` -- the counts and the duration as *strings* (``"17"``). A
``hook_execution_start`` record precedes each one; the difference of their ``event.timestamp``
values is printed as a cross-check.

If no usable record arrives for a configuration, the script says so and, for the command
configurations only, falls back to the wall time of running the hook command itself (shell,
PreToolUse payload on stdin) from this process -- not what the agent measures.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import (
    add_common_arguments,
    free_port,
    metric,
    percentile,
    print_header,
    print_result,
    scratch_dir,
    section,
    start_noop_server,
    stop_process,
    target,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the e2e harness: tests/e2e/{claude,model_server}.py

from tests.e2e.claude import find_claude_binary, run_claude, trust_project  # noqa: E402
from tests.e2e.model_server import ModelServer, ToolCall, Turn  # noqa: E402

TRAILGUARD = Path(sys.executable).with_name("trailguard")
TARGET_RATIOS = {"http": 1.3, "command": 1.5}  # trailguard median / do-nothing median (issue 19)
FIRST_CALL_TARGET = 2.0  # (a) first PreToolUse of a session / (a) median
HOOK_PATH = "/hooks/claude-code"
FLUSH_MS = "500"

# -- the OTLP/HTTP JSON log receiver ---------------------------------------------------------------


def _any_value(value: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue as a plain Python value (int64 arrives as a string in JSON)."""
    for kind, inner in value.items():
        if kind == "arrayValue":
            return [_any_value(item) for item in inner.get("values", [])]
        if kind == "kvlistValue":
            return {item["key"]: _any_value(item["value"]) for item in inner.get("values", [])}
        if kind == "intValue":
            return int(inner)
        return inner
    return None


class _OtlpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _OtlpServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            raw = bytes(data)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        return raw

    def do_POST(self) -> None:
        receiver = self.server.receiver
        raw = self._body()
        receiver.note_post(self.path.split("?")[0], self.headers.get("Content-Type", ""), raw)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _OtlpServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: OtlpReceiver


class OtlpReceiver:
    """Collects the log records POSTed to /v1/logs, each flattened to ``{attribute: value}``
    plus ``"_body"``; counts everything else it is sent."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.posts: dict[str, int] = {}
        self.content_types: set[str] = set()
        self.unparsed = 0
        self._lock = threading.Lock()
        self._server = _OtlpServer(("127.0.0.1", 0), _OtlpHandler)
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def note_post(self, path: str, content_type: str, raw: bytes) -> None:
        records: list[dict[str, Any]] = []
        parsed = False
        if path.endswith("/v1/logs") and "json" in content_type:
            try:
                document = json.loads(raw)
                for resource_logs in document.get("resourceLogs", []):
                    for scope_logs in resource_logs.get("scopeLogs", []):
                        for record in scope_logs.get("logRecords", []):
                            flat = {
                                item["key"]: _any_value(item.get("value", {}))
                                for item in record.get("attributes", [])
                            }
                            flat["_body"] = _any_value(record.get("body") or {})
                            records.append(flat)
                parsed = True
            except (ValueError, AttributeError, KeyError, TypeError):
                parsed = False
        with self._lock:
            self.posts[path] = self.posts.get(path, 0) + 1
            self.content_types.add(content_type)
            self.records.extend(records)
            if path.endswith("/v1/logs") and not parsed:
                self.unparsed += 1

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.records)


def event_name(record: dict[str, Any]) -> str:
    name = record.get("event.name")
    if isinstance(name, str):
        return name
    body = record.get("_body")
    return body.removeprefix("claude_code.") if isinstance(body, str) else ""


def hook_event(record: dict[str, Any]) -> str:
    for key in ("hook_event", "hook_event_name"):
        if isinstance(record.get(key), str):
            return str(record[key])
    name = record.get("hook_name")
    return name.split(":", 1)[0] if isinstance(name, str) else ""


def pre_tool_use(records: list[dict[str, Any]], name: str, session: str) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if r.get("session.id") == session
        and event_name(r) == name
        and hook_event(r) == "PreToolUse"
    ]


def as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def timestamp_ms(value: Any) -> float | None:
    """``event.timestamp`` (RFC 3339 with ms, ``Z``) as epoch milliseconds."""
    from datetime import datetime

    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e3
    except ValueError:
        return None


# -- processes -------------------------------------------------------------------------------------


def start_gateway(stack: contextlib.ExitStack, data_dir: Path) -> tuple[str, Path]:
    """``trailguard serve`` on a free port with default checkpoint settings; stopped by
    ``stack``. Returns its URL and log file."""
    data_dir.mkdir(parents=True)
    port = free_port()
    log = data_dir.parent / "gateway.log"
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [str(TRAILGUARD), "serve", "--data-dir", str(data_dir), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    stack.callback(stop_process, process, 30)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return url, log
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the gateway did not start:\n{log.read_text(errors='replace')[-3000:]}")


def trailguard_cli(*args: str, home: Path) -> str:
    result = subprocess.run(
        [str(TRAILGUARD), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HOME": str(home)},
    )
    if result.returncode != 0:
        raise SystemExit(f"trailguard {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


# -- configurations --------------------------------------------------------------------------------


@dataclass
class Config:
    key: str
    label: str
    kind: str  # "http" or "command"
    project: Path
    command: str | None = None  # the PreToolUse command hook (for the fallback timing)
    sessions: list[str] = field(default_factory=list)
    session_seconds: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    timestamp_deltas: list[float] = field(default_factory=list)
    first_calls: list[float] = field(default_factory=list)  # each session's first PreToolUse
    fallback: list[float] = field(default_factory=list)


def write_pre_tool_use_settings(project: Path, hook: dict[str, Any]) -> None:
    settings = project / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    document = {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [hook]}]}}
    settings.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def pre_tool_use_hook(project: Path) -> dict[str, Any]:
    """The PreToolUse hook entry of a settings file (the first one)."""
    settings = json.loads((project / ".claude" / "settings.json").read_text(encoding="utf-8"))
    return dict(settings["hooks"]["PreToolUse"][0]["hooks"][0])


def bash(number: int) -> ToolCall:
    return ToolCall("Bash", {"command": f"echo {number}", "description": f"print {number}"})


def run_session(
    binary: Path,
    config: Config,
    *,
    home: Path,
    calls: int,
    env: dict[str, str],
    receiver: OtlpReceiver,
) -> None:
    script = [Turn(tool_calls=[bash(n)]) for n in range(calls)] + [Turn(text="done")]
    with ModelServer(script) as model:
        result = run_claude(
            binary,
            home=home,
            project=config.project,
            prompt="run the commands",
            model_url=model.url,
            env_extra=env,
            args=["--permission-mode", "bypassPermissions"],
            timeout=300,
        )
        results = model.tool_results()
    config.session_seconds.append(result.duration_s)
    session = result.session_id
    if result.is_error or session is None:
        config.problems.append("session failed: " + result.describe()[:600])
        return
    config.sessions.append(session)
    ran = [r for r in results if not r.is_error]
    if len(ran) != calls:
        config.problems.append(
            f"session {session}: {len(ran)} of {calls} Bash calls ran "
            f"(first error: {next((r.content for r in results if r.is_error), '')[:200]!r})"
        )
    # Claude Code exports its logs before it exits; give a late batch a few seconds.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if len(pre_tool_use(receiver.snapshot(), "hook_execution_complete", session)) >= calls:
            break
        time.sleep(0.1)


def collect(config: Config, records: list[dict[str, Any]]) -> None:
    def sequence(record: dict[str, Any]) -> float:
        return as_float(record.get("event.sequence")) or 0.0

    for session in config.sessions:
        completes = sorted(pre_tool_use(records, "hook_execution_complete", session), key=sequence)
        starts = sorted(pre_tool_use(records, "hook_execution_start", session), key=sequence)
        durations = [as_float(r.get("total_duration_ms")) for r in completes]
        config.durations += [d for d in durations if d is not None]
        if durations and durations[0] is not None:
            config.first_calls.append(durations[0])
        for record in completes:
            if record.get("num_success") != record.get("num_hooks"):
                config.problems.append(
                    f"hook failed in {session}: num_hooks={record.get('num_hooks')} "
                    f"num_success={record.get('num_success')}"
                )
        # start -> complete from the records' own ms timestamps, paired in sequence order
        for start, complete in zip(starts, completes, strict=False):
            began = timestamp_ms(start.get("event.timestamp"))
            ended = timestamp_ms(complete.get("event.timestamp"))
            if began is not None and ended is not None:
                config.timestamp_deltas.append(ended - began)


def tool_invocations(data_dir: Path) -> int:
    """tool_invocation rows in the gateway's ledger (read-only; the gateway may be running)."""
    uri = f"{(data_dir / 'ledger.sqlite3').as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        row = db.execute("SELECT count(*) FROM events WHERE event_type = 'tool_invocation'")
        return int(row.fetchone()[0])
    finally:
        db.close()


def time_command(command: str, env: dict[str, str], cwd: Path, count: int) -> list[float]:
    """Fallback: wall time (ms) of running a command hook the way Claude Code does (a shell,
    the PreToolUse payload on stdin), from this process."""
    session = str(uuid.uuid4())
    times: list[float] = []
    for number in range(count):
        payload = {
            "session_id": session,
            "transcript_path": str(cwd / "transcript.jsonl"),
            "cwd": str(cwd),
            "permission_mode": "bypassPermissions",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": f"echo {number}", "description": f"print {number}"},
            "tool_use_id": f"toolu_{uuid.uuid4().hex[:24]}",
        }
        began = time.perf_counter()
        subprocess.run(
            command,
            shell=True,
            input=json.dumps(payload).encode(),
            capture_output=True,
            cwd=cwd,
            env={**os.environ, **env},
            timeout=60,
            check=False,
        )
        times.append((time.perf_counter() - began) * 1e3)
    return times


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--calls", type=int, help="Bash calls per session (20 / --quick 5)")
    parser.add_argument("--rounds", type=int, help="sessions per configuration (5 / --quick 2)")
    parser.add_argument(
        "--hook-command",
        default=None,
        help="command hook for (a)/(c), e.g. '.venv/bin/trailguard hook' (default: what "
        "`trailguard install` writes, python -I -S .../trailguard/__main__.py hook)",
    )
    parser.add_argument(
        "--force-fallback",
        action="store_true",
        help="ignore the telemetry and use the fallback (to test that path)",
    )
    args = parser.parse_args()
    calls = args.calls or (5 if args.quick else 20)
    rounds = args.rounds or (2 if args.quick else 5)
    binary = find_claude_binary()
    if binary is None:
        raise SystemExit(
            "Claude Code not found: set TRAILGUARD_CLAUDE_BIN to the native claude binary "
            "(see tests/e2e/claude.py)"
        )
    version = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout.strip()

    with scratch_dir(args.dir, args.keep) as scratch, contextlib.ExitStack() as stack:
        env_info = print_header(
            "trailguard PreToolUse hook latency, as Claude Code measures it", scratch
        )
        print(
            f"claude {version} ({binary}); {rounds} round(s) x 4 configurations, "
            f"{calls} Bash calls per session, one per turn"
        )
        home = scratch / "home"
        home.mkdir()
        gateway_url, gateway_log = start_gateway(stack, scratch / "gateway-data")
        token = trailguard_cli(
            "token", "create", "--developer", "dev_bench", "--role", "agent",
            "--data-dir", str(scratch / "gateway-data"), home=home,
        ).strip().splitlines()[-1]  # fmt: skip
        noop_url = start_noop_server(stack)
        receiver = stack.enter_context(OtlpReceiver())

        bare_command = f"{sys.executable} -S -c \"import sys; sys.stdin.read(); print('{{}}')\""
        configs = {
            key: Config(key, label, kind, scratch / f"project-{key}")
            for key, label, kind in (
                ("a", "trailguard http", "http"),
                ("b", "no-op HTTP server", "http"),
                ("c", "trailguard command", "command"),
                ("d", "bare python -S command", "command"),
            )
        }
        for config in configs.values():
            config.project.mkdir()
            trust_project(home, config.project)
        for key, mode in (("a", "http"), ("c", "command")):
            extra = [] if args.hook_command is None else ["--hook-command", args.hook_command]
            trailguard_cli(
                "install", "--project", str(configs[key].project), "--gateway", gateway_url,
                "--mode", mode, *extra, home=home,
            )  # fmt: skip
        http_hook = pre_tool_use_hook(configs["a"].project)
        write_pre_tool_use_settings(configs["b"].project, http_hook | {"url": noop_url + HOOK_PATH})
        command_hook = pre_tool_use_hook(configs["c"].project)
        write_pre_tool_use_settings(configs["d"].project, command_hook | {"command": bare_command})
        configs["c"].command = command_hook["command"]
        configs["d"].command = bare_command
        print(f"(a)/(b) http hook: {json.dumps(http_hook)}")
        print(f"(c) command hook: {json.dumps(command_hook)}")
        print(f"(d) command hook: {bare_command}")

        env = {
            "TRAILGUARD_URL": gateway_url,
            "TRAILGUARD_TOKEN": token,
            "TRAILGUARD_SPOOL_DIR": str(scratch / "spool"),
            "TRAILGUARD_TIMEOUT": "5",
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_LOGS_EXPORT_INTERVAL": FLUSH_MS,
            "OTEL_BLRP_SCHEDULE_DELAY": FLUSH_MS,
        }

        started = time.perf_counter()
        order = list(configs.values())
        for number in range(rounds):
            shift = number % len(order)
            for config in order[shift:] + order[:shift]:
                run_session(binary, config, home=home, calls=calls, env=env, receiver=receiver)
        elapsed = time.perf_counter() - started

        records = receiver.snapshot()
        for config in configs.values():
            if not args.force_fallback:
                collect(config, records)
        fallback_used: list[str] = []
        for config in configs.values():
            if config.durations:
                continue
            fallback_used.append(config.key)
            if config.kind == "command" and config.command:
                config.fallback = time_command(config.command, env, config.project, calls * rounds)
        # Spooled events are <spool>/<eventId>.json; <spool>/transcripts/ is the usage reader's
        # cursor state and is always there after a session.
        spooled = sorted((scratch / "spool").glob("*.json"))
        if spooled:
            configs["c"].problems.append(
                f"trailguard hook spooled {len(spooled)} events (gateway unreachable?)"
            )
        gateway_problems = [  # anything but the start-up banner
            line
            for line in gateway_log.read_text(errors="replace").splitlines()
            if line.strip() and not line.startswith(("trailguard ", "listening on "))
        ]
        recorded = tool_invocations(scratch / "gateway-data")

    completes = [r for r in records if event_name(r) == "hook_execution_complete"]
    by_event: dict[str, int] = {}
    for record in completes:
        by_event[hook_event(record)] = by_event.get(hook_event(record), 0) + 1
    sample = next((r for r in completes if hook_event(r) == "PreToolUse"), None)
    section("what Claude Code sent (OTLP/HTTP JSON logs)")
    metric("POSTs by path", json.dumps(receiver.posts))
    metric("log records received", len(records), "records")
    metric("hook_execution_complete records", len(completes), "records")
    print(f"  hook_execution_complete by hook_event: {json.dumps(by_event)}")
    if sample is not None:
        print(f"  a PreToolUse one: body {sample['_body']!r}, attributes:")
        shown = {k: v for k, v in sample.items() if k not in ("_body", "user.id")}
        print(f"    {json.dumps(shown)}")
    else:
        print("  no PreToolUse hook_execution_complete record arrived")
    if receiver.unparsed:
        print(f"  {receiver.unparsed} /v1/logs POST(s) could not be parsed as OTLP JSON")

    result: dict[str, Any] = {
        "benchmark": "hook_latency",
        "claude_version": version,
        "calls_per_session": calls,
        "rounds": rounds,
        "seconds": round(elapsed, 1),
        "source": "telemetry",
    }
    section(
        "PreToolUse latency, hook_execution_complete.total_duration_ms "
        f"({rounds} session(s) x {calls} calls per configuration)"
    )
    for config in configs.values():
        print(f"  ({config.key}) {config.label}")
    medians: dict[str, float] = {}
    for config in configs.values():
        key = config.key
        values = config.durations
        if not values and config.fallback:
            values = config.fallback
            key += "*"  # the fallback measure, explained below
        result[f"{config.key}_count"] = len(values)
        if not values:
            metric(f"({key}) PreToolUse latency", "no data")
            continue
        medians[config.key] = statistics.median(values)
        result[f"{config.key}_median_ms"] = round(medians[config.key], 2)
        result[f"{config.key}_p90_ms"] = round(percentile(values, 90), 2)
        result[f"{config.key}_max_ms"] = round(max(values), 2)
        metric(f"({key}) count", len(values), "hooks")
        metric(f"({key}) median", medians[config.key], "ms")
        metric(f"({key}) p90", percentile(values, 90), "ms")
        if config.first_calls:
            first = statistics.median(config.first_calls)
            result[f"{config.key}_first_call_median_ms"] = round(first, 2)
            metric(f"({key}) first call of each session, median", first, "ms")
        if config.timestamp_deltas:
            delta = statistics.median(config.timestamp_deltas)
            result[f"{config.key}_start_to_complete_median_ms"] = round(delta, 2)
            metric(f"({key}) start->complete log timestamps, median", delta, "ms")
        if config.session_seconds:
            wall = statistics.median(config.session_seconds)
            result[f"{config.key}_session_median_s"] = round(wall, 3)
            metric(f"({key}) claude -p session wall time, median", wall, "s")

    ratios: dict[str, float | None] = {}
    for name, (top, bottom) in {"http": ("a", "b"), "command": ("c", "d")}.items():
        ratios[name] = (
            medians[top] / medians[bottom] if top in medians and bottom in medians else None
        )
        result[f"{name}_ratio"] = None if ratios[name] is None else round(ratios[name] or 0, 3)

    section("ratios of medians")
    for name, (top, bottom) in {"http": ("a", "b"), "command": ("c", "d")}.items():
        ratio = ratios[name]
        if ratio is None:
            metric(f"({top})/({bottom}) {name}", "no data")
        else:
            metric(f"({top})/({bottom}) {name}", ratio, "x")

    section("targets")
    for name, (top, bottom) in {"http": ("a", "b"), "command": ("c", "d")}.items():
        ratio = ratios[name]
        limit = TARGET_RATIOS[name]
        label = f"({top})/({bottom}) median <= {limit}"
        if ratio is None:
            result[f"target_{name}_met"] = None
            metric(label, "no data")
        else:
            result[f"target_{name}_met"] = ratio <= limit
            target(label, ratio <= limit)
    first_calls = configs["a"].first_calls
    label = f"(a) first PreToolUse of a session, median <= {FIRST_CALL_TARGET} x (a) median"
    if first_calls and "a" in medians:
        first_ratio = statistics.median(first_calls) / medians["a"]
        result["a_first_call_ratio"] = round(first_ratio, 3)
        metric("(a) first call / (a) median", first_ratio, "x")
        result["target_first_call_met"] = first_ratio <= FIRST_CALL_TARGET
        target(label, first_ratio <= FIRST_CALL_TARGET)
    else:
        result["target_first_call_met"] = None
        metric(label, "no data")
    if configs["b"].first_calls and "b" in medians:
        # Claude Code's own first HTTP hook of a session (a connection to open, ...): the
        # no-op server's first call, against its median, is the reference for (a)'s.
        baseline_first = statistics.median(configs["b"].first_calls) / medians["b"]
        result["b_first_call_ratio"] = round(baseline_first, 3)
        metric("(b) first call / (b) median (reference: nothing to warm)", baseline_first, "x")
    result["load_average"] = [round(value, 2) for value in os.getloadavg()]
    metric("load average (1, 5, 15 min) at the end", " ".join(map(str, result["load_average"])))

    if fallback_used:
        result["source"] = "fallback"
        result["fallback_configs"] = fallback_used
        section("FALLBACK")
        reason = (
            "--force-fallback given"
            if args.force_fallback
            else "no hook_execution_complete record with total_duration_ms arrived"
        )
        for key in fallback_used:
            config = configs[key]
            how = (
                f"({key})* above is the wall time of the hook command run {calls * rounds} times "
                "from this script (shell, PreToolUse payload on stdin), not the agent's measure"
                if config.kind == "command"
                else "no fallback for http hooks"
            )
            print(f"  ({key}) {config.label}: {reason}; {how}")
    expected = calls * rounds
    for config in configs.values():
        if config.durations and len(config.durations) != expected:
            config.problems.append(
                f"{len(config.durations)} PreToolUse hook_execution_complete records for "
                f"{expected} Bash calls"
            )
    tg_calls = calls * (len(configs["a"].sessions) + len(configs["c"].sessions))
    section("trailguard's own record")
    metric("tool_invocation rows in the gateway's ledger", recorded, "events")
    metric("Bash calls made in (a) and (c) sessions", tg_calls, "calls")
    result["trailguard_recorded"] = recorded
    problems = [f"({c.key}) {p}" for c in configs.values() for p in c.problems]
    if recorded != tg_calls:
        problems.append(f"the gateway recorded {recorded} tool calls, expected {tg_calls}")
    problems += [f"gateway stderr: {line}" for line in gateway_problems[:5]]
    if problems:
        section("problems")
        for problem in problems[:20]:
            print(f"  {problem}")
    result["problems"] = len(problems)
    result["env"] = env_info
    print_result(result)


if __name__ == "__main__":
    main()
