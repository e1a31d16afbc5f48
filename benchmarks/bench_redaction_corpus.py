"""Redaction measured on an external corpus (gitleaks' own rule test cases), end to end.

(1) ``trailguard serve`` runs as a subprocess on a fresh data directory; every case of
the external corpus (``tests/redaction_corpus.EXTERNAL``, kept outside this repository) is sent
over HTTP as a Bash and as a Write PreToolUse;
then the gateway is stopped and the ledger's stored bytes are scored: how many secrets are
stored (recall), how many negatives were changed (false positives), by context and tool.
(2) The redaction stage alone (``Redactor.redact_events``, what the hook path runs after the
decision) on the same tool calls and on a realistic event mix: p50 / p99 per event. Baseline in
the same run: RFC 8785 canonicalisation of the same events, which the ledger does next anyway.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import statistics
import subprocess
import sys
import time
import types
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from _common import (
    add_common_arguments,
    metric,
    percentile,
    print_header,
    print_result,
    realistic_events,
    scratch_dir,
    section,
    serve_with_agent_token,
    stop_process,
    target,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import redaction_corpus as rc
from trailguard.events import ToolInvocation
from trailguard.ledger.canonical import canonical_json
from trailguard.redact import Redactor
from trailguard.store.sqlite import SQLiteStore

TARGET_RECALL = 0.99
TARGET_FP = 0.05
HOOK_BUDGET_P99_MS = 2.0
"""The redaction stage's share of the hook path: classify + decide p99 is ~2.6 ms here."""


def _gateway_run(scratch: Path, cases: list[rc.Case]) -> tuple[rc.Score, list[float]]:
    data_dir = scratch / "gateway-data"
    data_dir.mkdir()
    log = scratch / "gateway.log"
    with contextlib.ExitStack() as stack:
        process, port, token = serve_with_agent_token(stack, data_dir, log, developer="dev_corpus")
        latencies: list[float] = []
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            for payload in rc.payloads(cases):
                started = time.perf_counter()
                response = client.post("/hooks/claude-code", json=payload, timeout=60)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"hook answered {response.status_code}: {response.text}")
        code = stop_process(process)
        if code not in (0, None, -15):
            raise SystemExit(f"gateway exited {code}:\n{log.read_text(errors='replace')[-2000:]}")
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        return rc.score(cases, (row.body for row in store.rows())), latencies
    finally:
        store.close()


class _SourcesAt(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the ``trailguard.redact`` package of an earlier commit under another name, so
    that its engine runs with *its* placeholder guard and rule code, not today's."""

    def __init__(self, name: str, sources: dict[str, str]) -> None:
        self.name = name
        self.sources = sources  # module name inside the package ("" for __init__) -> source

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name and not fullname.startswith(self.name + "."):
            return None
        inner = fullname[len(self.name) + 1 :]
        if inner not in self.sources:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=inner == "")

    def exec_module(self, module: types.ModuleType) -> None:
        inner = module.__name__[len(self.name) + 1 :]
        source = self.sources[inner].replace("trailguard.redact", self.name)
        exec(compile(source, f"{self.name}/{inner or '__init__'}.py", "exec"), module.__dict__)


def _load_before(ref: str) -> Any:
    """The redactor of an earlier commit (its whole ``trailguard.redact`` package, or the
    single ``redact.py`` of older commits), loaded beside today's: the "before" of a
    before/after in the same run."""
    root = Path(__file__).resolve().parents[1]

    def show(path: str) -> str | None:
        shown = subprocess.run(
            ["git", "-C", str(root), "show", f"{ref}:{path}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return shown.stdout if shown.returncode == 0 else None

    name = f"redact_before_{''.join(c if c.isalnum() else '_' for c in ref)}"
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-tree", "--name-only", f"{ref}:src/trailguard/redact"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if listed.returncode == 0:
        sources = {}
        for file in listed.stdout.split():
            if file.endswith(".py") and (text := show(f"src/trailguard/redact/{file}")):
                sources["" if file == "__init__.py" else file[:-3]] = text
        sys.meta_path.insert(0, _SourcesAt(name, sources))
        return importlib.import_module(name).Redactor(b"bench-redaction-key")
    single = show("src/trailguard/redact.py")
    if single is None:
        raise SystemExit(f"--before {ref}: no redactor found at that commit")
    module = types.ModuleType(name)
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(single, f"{ref}:src/trailguard/redact.py", "exec"), module.__dict__)
    return module.Redactor(b"bench-redaction-key")


def _stage_timing(cases: list[rc.Case], rounds: int, before: Any | None) -> dict[str, list[float]]:
    """Per event, CPU time of this thread: redact_events and canonical_json (and, with
    ``--before``, the earlier redactor) on corpus tool calls and a realistic mix."""
    redactor = Redactor(b"bench-redaction-key")
    corpus_events = []
    for i, case in enumerate(cases):
        for tool, tool_input in (
            ("Bash", {"command": case.text}),
            ("Write", {"file_path": rc.WRITE_PATH, "content": case.text}),
        ):
            corpus_events.append(
                ToolInvocation(
                    session_id=rc.SESSION,
                    developer_id="dev",
                    project_id="proj",
                    tool=tool,
                    tool_use_id=rc.tool_use_id(i, tool),
                    input=tool_input,
                    policy_result="allowed",
                )
            )
    mix = list(realistic_events(3000))
    timings: dict[str, list[float]] = defaultdict(list)
    clock = time.thread_time  # CPU time: a neighbour's load does not count as ours
    for events in (corpus_events, mix):  # warm-up: rule set, caches
        for event in events[:200]:
            redactor.redact_events([event])
    runs: list[tuple[str, Callable[[Any], object]]] = [("", lambda e: redactor.redact_events([e]))]
    if before is not None:
        runs.append(("_before", before.redact_event))
    for round_number in range(rounds):
        for name, events in (("corpus", corpus_events), ("mix", mix)):
            for i, event in enumerate(events):
                # whichever runs first on an event pays for what the second finds cached (the
                # re module's pattern cache, the interpreter's): the order alternates
                for suffix, redact in runs[:: -1 if (i + round_number) % 2 else 1]:
                    started = clock()
                    redact(event)
                    timings[name + suffix].append((clock() - started) * 1000)
                document = event.model_dump(mode="json", by_alias=True)
                started = clock()
                canonical_json(document)
                timings[f"{name}_c14n"].append((clock() - started) * 1000)
    return timings


def _score_in_process(redactor: Any, cases: list[rc.Case]) -> rc.Score:
    """The corpus scored on redacted events serialised as the ledger would (no gateway): the
    one measure an earlier redactor can be given in this run."""
    bodies = []
    for i, case in enumerate(cases):
        for tool, tool_input in (
            ("Bash", {"command": case.text}),
            ("Write", {"file_path": rc.WRITE_PATH, "content": case.text}),
        ):
            event = ToolInvocation(
                session_id=rc.SESSION, developer_id="dev", project_id="proj", tool=tool,
                tool_use_id=rc.tool_use_id(i, tool), input=tool_input, policy_result="allowed",
            )  # fmt: skip
            redacted = redactor.redact_event(event)
            bodies.append(canonical_json(redacted.model_dump(mode="json", by_alias=True)))
    return rc.score(cases, bodies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 3)")
    parser.add_argument("--misses", type=int, default=60, help="how many misses to list")
    parser.add_argument(
        "--before",
        metavar="REF",
        help="also score and time the redactor of this git commit (e.g. main) in the same run",
    )
    add_common_arguments(parser)
    args = parser.parse_args()
    # gitleaks' converted rules beside the corpus, as tests/conftest.py sets them (the gateway
    # subprocess inherits the variable); an operator's own setting wins
    os.environ.setdefault(
        "TRAILGUARD_SECRET_RULES", str(rc.EXTERNAL.with_name("gitleaks-rules.json"))
    )
    print(f"rules: {os.environ['TRAILGUARD_SECRET_RULES']}")
    provenance, cases = rc.load()
    if args.quick:
        cases = cases[::5]
    rounds = args.rounds or (1 if args.quick else 3)
    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header("trailguard redaction on an external corpus", scratch)
        print(
            f"corpus: {provenance.get('source')} @ {str(provenance.get('commit'))[:12]} "
            f"({provenance.get('license')}); {sum(c.positive for c in cases)} true positives, "
            f"{sum(not c.positive and not c.contested for c in cases)} negatives, "
            f"{sum(bool(c.contested) for c in cases)} contested; each as Bash and as Write"
        )
        started = time.monotonic()
        score, latencies = _gateway_run(scratch, cases)
        elapsed = time.monotonic() - started

    section("on the bytes the ledger stores (trailguard serve, over HTTP)")
    metric("tool calls with a secret", score.positives)
    metric("secrets stored in the ledger", score.stored)
    metric("recall", score.recall * 100, "%")
    metric("negatives", score.negatives)
    metric("negatives changed (false positives)", score.changed)
    metric("false-positive rate", score.fp_rate * 100, "%")
    metric("contested negatives changed", f"{score.contested_changed}/{score.contested}")
    metric("providers (rule files) with a true positive", len(score.providers))
    metric("events missing from the ledger", score.missing)
    metric("hook round trip p50", statistics.median(latencies), "ms")
    metric("hook round trip p99", percentile(latencies, 99), "ms")
    metric("whole run", elapsed, "s")
    section("recall by context (stored / sent)")
    for context, (sent, stored) in sorted(score.by_context.items(), key=lambda kv: -kv[1][1]):
        if stored or context in ("bare", "literal"):
            metric(f"{context}", f"{stored}/{sent}")
    section("recall by tool (stored / sent)")
    for tool, (sent, stored) in sorted(score.by_tool.items()):
        metric(tool, f"{stored}/{sent}")
    rules_fired = Counter(score.tags)
    section(f"rules that fired: {len(rules_fired)} (most frequent)")
    for kind, count in rules_fired.most_common(8):
        metric(kind, count)
    if score.missed:
        section(f"stored secrets (first {args.misses} of {len(score.missed)})")
        for where in score.missed[: args.misses]:
            print(f"  {where}")
    if score.false_positives:
        section(f"negatives changed (first {args.misses} of {len(score.false_positives)})")
        for where in score.false_positives[: args.misses]:
            print(f"  {where}")

    before = _load_before(args.before) if args.before else None
    old: rc.Score | None = None
    if before is not None:
        section(f"before ({args.before}) and now: Redactor.redact_event in process, same cases")
        old = _score_in_process(before, cases)
        new = _score_in_process(Redactor(b"bench-redaction-key"), cases)
        metric(f"before: secrets left of {old.positives}", old.stored)
        metric("before: recall", old.recall * 100, "%")
        metric(f"before: negatives changed of {old.negatives}", old.changed)
        metric("before: false-positive rate", old.fp_rate * 100, "%")
        metric("now: recall", new.recall * 100, "%")
        metric("now: false-positive rate", new.fp_rate * 100, "%")
    timings = _stage_timing(cases, rounds, before)
    section(f"the redaction stage alone, CPU per event ({rounds} round(s))")
    for name in ("corpus", "mix"):
        label = "corpus tool calls" if name == "corpus" else "realistic mix (3,000 events)"
        metric(f"{label}: redact p50", statistics.median(timings[name]), "ms")
        metric(f"{label}: redact p99", percentile(timings[name], 99), "ms")
        if timings.get(f"{name}_before"):
            metric("  before: p50", statistics.median(timings[f"{name}_before"]), "ms")
            metric("  before: p99", percentile(timings[f"{name}_before"], 99), "ms")
        metric("  baseline: canonical JSON p50", statistics.median(timings[f"{name}_c14n"]), "ms")
    p99_mix = percentile(timings["mix"], 99)
    p99_corpus = percentile(timings["corpus"], 99)
    section("targets")
    target(f"recall >= {TARGET_RECALL:.0%} on stored bytes", score.recall >= TARGET_RECALL)
    target(f"false positives <= {TARGET_FP:.0%}", score.fp_rate <= TARGET_FP)
    target(f"redaction CPU p99 <= {HOOK_BUDGET_P99_MS} ms (corpus and mix)",
           max(p99_mix, p99_corpus) <= HOOK_BUDGET_P99_MS)  # fmt: skip
    print_result(
        {
            "benchmark": "redaction_corpus",
            **score.summary(),
            "hook_p50_ms": round(statistics.median(latencies), 3),
            "hook_p99_ms": round(percentile(latencies, 99), 3),
            "redact_corpus_p50_ms": round(statistics.median(timings["corpus"]), 4),
            "redact_corpus_p99_ms": round(p99_corpus, 4),
            "redact_mix_p50_ms": round(statistics.median(timings["mix"]), 4),
            "redact_mix_p99_ms": round(p99_mix, 4),
            "c14n_mix_p50_ms": round(statistics.median(timings["mix_c14n"]), 4),
            **(
                {
                    "before": args.before,
                    "before_recall": round(old.recall, 4) if old else None,
                    "before_fp_rate": round(old.fp_rate, 4) if old else None,
                    "before_mix_p99_ms": round(percentile(timings["mix_before"], 99), 4),
                    "before_corpus_p99_ms": round(percentile(timings["corpus_before"], 99), 4),
                }
                if old is not None
                else {}
            ),
            "environment": env,
        }
    )


if __name__ == "__main__":
    main()
