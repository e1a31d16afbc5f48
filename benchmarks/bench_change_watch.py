"""What the per-request check of ``serve --workers N`` costs (gateway/shared_changes.py): every
hook request compares the shared change counters with the ones it last acted on
(``ChangeWatch.stale``), and only after a kill, an exhausted budget or a policy change re-reads
what changed (``ChangeWatch.refresh``).

CPU time per call (``time.thread_time``), best of ``--rounds`` interleaved rounds, for N = 2
and N = 8 workers. Baselines in the same run: an empty method call (the floor of any check)
and the shared hook rate limit's ``check`` (the other shared-memory look-up every request
already makes). Then the slow paths once each: a refresh after a kill (the state file's kills
and recent ends) and after a policy change (the lead's snapshot of the default pack).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import metric, print_result, section
from trailguard.gateway.sessions import SessionRegistry
from trailguard.gateway.shared_changes import POLICY, SESSIONS, ChangeWatch, SharedChanges
from trailguard.gateway.shared_limits import SharedRateLimiter
from trailguard.ledger.writer import Ledger
from trailguard.policy.loader import load_policy_set
from trailguard.policy.store import PolicyStore
from trailguard.store.gateway_state import GatewayState


class _Empty:
    def check(self) -> bool:
        return False


def _per_call(work: Callable[[], object], calls: int) -> float:
    """CPU seconds per call of ``work``."""
    started = time.thread_time()
    for _ in range(calls):
        work()
    return (time.thread_time() - started) / calls


def _cpu(work: Callable[[], object]) -> float:
    started = time.thread_time()
    work()
    return time.thread_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="200,000 calls, 3 rounds")
    args = parser.parse_args()
    calls, rounds = (200_000, 3) if args.quick else (args.calls, args.rounds)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"
        Ledger.open(data_dir).close()
        state = GatewayState(data_dir)
        state.shared = True
        sessions = SessionRegistry(state)
        watches = {}
        for workers in (2, 8):
            changes = SharedChanges(workers, Path(scratch)).as_worker(0)
            watch = ChangeWatch(changes, sessions, PolicyStore(None), None)
            watch.refresh()
            watches[workers] = watch
        empty = _Empty()
        limiter = SharedRateLimiter(1e9, 1e9)
        best: dict[str, float] = {}
        for _ in range(rounds):
            candidates: dict[str, Callable[[], object]] = {
                "empty": empty.check,
                "rateLimit": lambda: limiter.check("tok_bench"),
                "stale2": watches[2].stale,
                "stale8": watches[8].stale,
            }
            for name, work in candidates.items():
                best[name] = min(best.get(name, float("inf")), _per_call(work, calls))
        for workers in (2, 8):
            assert not watches[workers].stale(), "nothing changed, yet the check says stale"

        watch = watches[2]
        for n in range(200):
            state.request_kill(f"sess_bench_{n}", "admin", "bench")
        watch.changes.bump(SESSIONS)
        kill_refresh = _cpu(watch.refresh)
        assert watch.sessions.kill_request("sess_bench_0") is not None
        pack = Path(scratch) / "pack"
        pack.mkdir()
        for name, text in load_policy_set(None).sources:
            (pack / name).write_text(text + "\n// changed\n")
        watch.changes.publish_policy(load_policy_set(pack))
        watch.changes.bump(POLICY)
        policy_refresh = _cpu(watch.refresh)
        assert watch.policies.version == load_policy_set(pack).version
        state.close()

    load = os.getloadavg()
    section(f"{calls:,} calls per figure, best of {rounds}, load average {load[0]:.2f}")
    metric("baseline: empty method call", best["empty"] * 1e9, "ns CPU")
    metric("baseline: shared rate limit check", best["rateLimit"] * 1e9, "ns CPU")
    metric("per-request check, 2 workers", best["stale2"] * 1e9, "ns CPU")
    metric("per-request check, 8 workers", best["stale8"] * 1e9, "ns CPU")
    metric("refresh after a kill (200 kills in the state)", kill_refresh * 1e3, "ms CPU")
    metric("refresh after a policy change (default pack)", policy_refresh * 1e3, "ms CPU")
    print_result(
        {
            "calls": calls,
            "loadAverage": round(load[0], 2),
            "emptyNs": round(best["empty"] * 1e9, 1),
            "rateLimitNs": round(best["rateLimit"] * 1e9, 1),
            "check2Ns": round(best["stale2"] * 1e9, 1),
            "check8Ns": round(best["stale8"] * 1e9, 1),
            "killRefreshMs": round(kill_refresh * 1e3, 2),
            "policyRefreshMs": round(policy_refresh * 1e3, 2),
        }
    )


if __name__ == "__main__":
    main()
