"""Start-up of the `trailguard` command: each command's module is imported only when it runs.

Measured as processes, best of --repeat (wall time and CPU time): `trailguard --help`,
`trailguard version`, `trailguard report --help` and `trailguard report` on a small ledger.

Baseline, in the same run: the same commands with every command module imported first, as the
CLI did before it was lazy (`python -c "import trailguard.cli.<each>; main()"`).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    add_common_arguments,
    build_ledger,
    make_events,
    metric,
    print_header,
    print_result,
    scratch_dir,
    section,
)
from trailguard.cli._commands import COMMAND_MODULES

TRAILGUARD = Path(sys.executable).with_name("trailguard")
EAGER = (
    "import sys; "
    + "; ".join(f"import trailguard.cli.{module}" for module in COMMAND_MODULES)
    + "; from trailguard.__main__ import main; sys.argv[0] = 'trailguard'; main()"
)


def run_best(argv: list[str], repeat: int) -> tuple[float, float]:
    """Best wall time and best CPU time (user + system) of ``argv`` as a process."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header("CLI start-up: lazy command modules vs every module imported", scratch)
        data_dir = scratch / "ledger"
        build_ledger(data_dir, make_events("realistic", 2000), 1000)
        from trailguard.store.sqlite import SQLiteStore

        store = SQLiteStore.in_data_dir(data_dir, read_only=True)
        session = store.session_ids(limit=1)[0]
        store.close()
        report = ["report", "--data-dir", str(data_dir), "--session", session, "--format", "md",
                  "-o", str(scratch / "report.md")]  # fmt: skip
        commands: dict[str, list[str]] = {
            "--help": ["--help"],
            "version": ["version"],
            "report --help": ["report", "--help"],
            "report (2,000-event ledger, one session)": report,
        }
        results: dict[str, dict[str, float]] = {}
        for name, argv in commands.items():
            eager_wall, eager_cpu = run_best([sys.executable, "-c", EAGER, *argv], repeat)
            lazy_wall, lazy_cpu = run_best([str(TRAILGUARD), *argv], repeat)
            section(f"trailguard {name} (best of {repeat})")
            metric("baseline: every command module imported", eager_wall, "s")
            metric("  its CPU time", eager_cpu, "s")
            metric("lazy: only this command's module", lazy_wall, "s")
            metric("  its CPU time", lazy_cpu, "s")
            metric("  CPU time saved", eager_cpu - lazy_cpu, "s")
            metric("  ratio lazy / baseline (CPU)", lazy_cpu / eager_cpu, "x")
            results[name] = {
                "eager_s": round(eager_wall, 4),
                "eager_cpu_s": round(eager_cpu, 4),
                "lazy_s": round(lazy_wall, 4),
                "lazy_cpu_s": round(lazy_cpu, 4),
            }
        print_result({"benchmark": "cli_startup", "env": env, "repeat": repeat, **results})


if __name__ == "__main__":
    main()
