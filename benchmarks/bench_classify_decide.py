"""Classify + decide per tool call on the classification corpus, p50 and p99.

Baseline in the same run: tree-sitter-bash parsing alone, the floor of any shell classification.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import metric, percentile, print_result, section, target
from trailguard.classify import ClassifyContext, classify_tool_call
from trailguard.classify.shell import parse_shell
from trailguard.policy.engine import DecisionRequest, decide
from trailguard.policy.loader import load_policy_set

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "commands.jsonl"
TARGET_P50_MS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one round instead of five")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 5)
    entries = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    context = ClassifyContext(cwd="/home/dev/app", home="/home/dev", project_root="/home/dev/app")
    policy_set = load_policy_set()
    for entry in entries:  # warm up: lazy imports, botocore service models, Cedar
        classify_tool_call(entry["tool"], entry["input"], context)

    full: list[float] = []
    parse_only: list[float] = []
    clock = time.perf_counter
    for _ in range(rounds):
        for entry in entries:
            started = clock()
            operations = classify_tool_call(entry["tool"], entry["input"], context)
            command = entry["input"].get("command")
            decide(
                policy_set,
                DecisionRequest("dev", entry["tool"], operations, command=command),
            )
            full.append((clock() - started) * 1000)
            if entry["tool"] == "Bash":
                started = clock()
                parse_shell(entry["input"]["command"])
                parse_only.append((clock() - started) * 1000)

    section(f"classify + decide, {len(entries)} corpus tool calls x {rounds} rounds")
    p50 = statistics.median(full)
    metric("classify + decide p50", p50, "ms")
    metric("classify + decide p99", percentile(full, 99), "ms")
    metric("baseline: tree-sitter parse only p50", statistics.median(parse_only), "ms")
    metric("baseline: tree-sitter parse only p99", percentile(parse_only, 99), "ms")
    section("targets")
    target(f"p50 <= {TARGET_P50_MS} ms", p50 <= TARGET_P50_MS)
    print_result(
        {
            "benchmark": "classify_decide",
            "calls": len(full),
            "p50_ms": round(p50, 3),
            "p99_ms": round(percentile(full, 99), 3),
            "parse_p50_ms": round(statistics.median(parse_only), 3),
            "parse_p99_ms": round(percentile(parse_only, 99), 3),
            "target_p50_met": p50 <= TARGET_P50_MS,
        }
    )


if __name__ == "__main__":
    main()
