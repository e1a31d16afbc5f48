"""Start-up cost of the command hook client: what each tool call pays in command mode.

Fresh processes, in interleaved rounds (every case once per round) so they share the machine's
noise. The hook commands get a PreToolUse payload on stdin and answer it:

- ``bare python -S hook``: ``python -S -c "import sys; sys.stdin.read(); print('{}')"``, the
  baseline of bench_hook_latency.py's command mode (d);
- ``installed hook``: the command ``trailguard install`` writes by default
  (``python -I -S .../trailguard/__main__.py hook``), against a do-nothing HTTP server (its own
  process), so the figure is the client alone, without the gateway's own work;
- ``console script hook``: ``<venv>/bin/trailguard hook`` against the same server;
- ``--help`` of both (the entry point without any I/O), ``import trailguard.capture.hook_client``,
  and bare interpreters (``python -c pass``, ``python -S -c pass``).

Target (issue 19): the installed hook within 1.5x of the bare ``python -S`` hook.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    add_common_arguments,
    metric,
    print_header,
    print_result,
    scratch_dir,
    section,
    start_noop_server,
    target,
)
from trailguard.capture.install import default_hook_command

TARGET_RATIO = 1.5
PAYLOAD = json.dumps(
    {
        "session_id": "ae1e1885-0000-4000-8000-00000000bead",
        "transcript_path": "/nonexistent/transcript.jsonl",
        "cwd": "/tmp",
        "permission_mode": "bypassPermissions",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "echo 1", "description": "print 1"},
        "tool_use_id": "toolu_bench0001",
    }
).encode()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms of the process: user + system) of one run."""
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or (stdin and done.stdout.strip() != b"{}"):
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stdout!r} {done.stderr!r}")
    return elapsed * 1000, (_children_cpu() - cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--runs", type=int, default=None, help="rounds (default 30, quick 10)")
    parser.add_argument(
        "--compare-with",
        type=Path,
        default=None,
        help="another trailguard console script (e.g. an older checkout's venv) run as a case",
    )
    args = parser.parse_args()
    runs = args.runs or (10 if args.quick else 30)
    python = sys.executable
    console = str(Path(python).with_name("trailguard"))
    installed = shlex.split(default_hook_command())
    bare_hook = [python, "-S", "-c", "import sys; sys.stdin.read(); print('{}')"]
    with scratch_dir(args.dir, args.keep) as scratch, contextlib.ExitStack() as stack:
        info = print_header("trailguard hook client start-up (command mode)", scratch)
        env = {
            **os.environ,
            "HOME": str(scratch),
            "TRAILGUARD_URL": start_noop_server(stack),
            "TRAILGUARD_TOKEN": "tg_bench_0123456789abcdef",
            "TRAILGUARD_SPOOL_DIR": str(scratch / "spool"),
        }
        cases: dict[str, tuple[list[str], bytes]] = {
            "bare_python_ms": ([python, "-c", "pass"], b""),
            "bare_python_S_ms": ([python, "-S", "-c", "pass"], b""),
            "bare_python_S_hook_ms": (bare_hook, PAYLOAD),
            "installed_hook_ms": (installed, PAYLOAD),
            "console_script_hook_ms": ([console, "hook"], PAYLOAD),
            "installed_help_ms": ([*installed, "--help"], b""),
            "console_script_help_ms": ([console, "hook", "--help"], b""),
            "import_hook_client_ms": ([python, "-c", "import trailguard.capture.hook_client"], b""),
        }
        if args.compare_with is not None:
            cases["compared_console_script_hook_ms"] = ([str(args.compare_with), "hook"], PAYLOAD)
        print(f"installed hook: {shlex.join(installed)}")
        print(f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
        for argv, stdin in cases.values():  # warm the page cache and the bytecode caches
            run_once(argv, stdin, env)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for number in range(runs):
            order = list(cases.items())
            shift = number % len(order)
            for name, (argv, stdin) in order[shift:] + order[:shift]:
                wall, used = run_once(argv, stdin, env)
                samples[name].append(wall)
                cpu[name].append(used)
        load = os.getloadavg()

    section(f"median wall time of {runs} fresh processes per case (interleaved rounds)")
    timings = {name: round(statistics.median(values), 2) for name, values in samples.items()}
    for name, value in timings.items():
        metric(name.removesuffix("_ms").replace("_", " "), value, "ms")
    section("mean CPU time (user + system) per process, less sensitive to the machine's load")
    cpu_means = {name: round(statistics.mean(values), 2) for name, values in cpu.items()}
    for name, value in cpu_means.items():
        metric(name.removesuffix("_ms").replace("_", " ") + " CPU", value, "ms")
    cpu_ratio = cpu_means["installed_hook_ms"] / cpu_means["bare_python_S_hook_ms"]
    ratio = timings["installed_hook_ms"] / timings["bare_python_S_hook_ms"]
    console_ratio = timings["console_script_hook_ms"] / timings["bare_python_S_hook_ms"]
    section("ratios to the bare python -S hook")
    if "compared_console_script_hook_ms" in timings:
        compared = timings["compared_console_script_hook_ms"] / timings["bare_python_S_hook_ms"]
        result_extra = {
            "compared_ratio": round(compared, 3),
            "compared_with": str(args.compare_with),
        }
        metric(f"{args.compare_with} hook / bare python -S hook", compared, "x")
    else:
        result_extra = {}
    metric("installed hook / bare python -S hook", ratio, "x")
    metric("console script hook / bare python -S hook", console_ratio, "x")
    metric("installed hook / bare python -S hook, CPU time", cpu_ratio, "x")
    metric("load average (1, 5, 15 min) at the end", " ".join(f"{v:.2f}" for v in load))
    section("targets")
    target(f"installed hook <= {TARGET_RATIO} x the bare python -S hook", ratio <= TARGET_RATIO)
    result = {"benchmark": "hook_import", "runs": runs, "env": info, **timings}
    result["installed_ratio"] = round(ratio, 3)
    result["installed_cpu_ratio"] = round(cpu_ratio, 3)
    result["cpu_ms"] = cpu_means
    result["console_script_ratio"] = round(console_ratio, 3)
    result["target_met"] = ratio <= TARGET_RATIO
    result["load_average"] = [round(v, 2) for v in load]
    result.update(result_extra)
    print_result(result)


if __name__ == "__main__":
    main()
