"""Start-up cost of the command hook client: what each tool call pays before any I/O.

Measures, in fresh interpreters: importing ``trailguard.capture.hook_client`` and running
``trailguard hook --help`` (the whole entry point, no gateway). Baseline in the same run: a
bare interpreter (``python -c pass``) and ``python -S -c pass``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import add_common_arguments, metric, print_header, print_result, section


def median_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--runs", type=int, default=None, help="runs per case (default 30)")
    args = parser.parse_args()
    runs = args.runs or (10 if args.quick else 30)
    env = print_header("trailguard hook client start-up", Path(args.dir))
    python = sys.executable
    cases = {
        "bare_python_ms": [python, "-c", "pass"],
        "bare_python_S_ms": [python, "-S", "-c", "pass"],
        "import_hook_client_ms": [python, "-c", "import trailguard.capture.hook_client"],
        "hook_help_ms": [python, "-m", "trailguard", "hook", "--help"],
    }
    section(f"median wall time of {runs} fresh processes")
    timings = {name: round(median_ms(argv, runs), 2) for name, argv in cases.items()}
    for name, value in timings.items():
        metric(name.removesuffix("_ms").replace("_", " "), value, "ms")
    import_cost = timings["import_hook_client_ms"] - timings["bare_python_ms"]
    metric("hook client import over a bare interpreter", import_cost, "ms")
    result = {"benchmark": "hook_import", "runs": runs, "env": env, **timings}
    result["import_over_bare_ms"] = round(import_cost, 2)
    print_result(result)


if __name__ == "__main__":
    main()
