# ruff: noqa: E501 - one command a line reads best
"""Which module of trailguard.cli defines each top-level command, and its short help: what
``trailguard --help`` lists without importing any of them."""

from __future__ import annotations

LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("gateway", "Run the gateway: on the embedded SQLite ledger of a data directory, or as one of several replicas of a shared ledger on PostgreSQL (--store URL, with the same --signing-key)."),
    "init": ("gateway", "Create a data directory (ledger and signing key) without serving."),
    "install": ("gateway", "Merge trailguard's hooks into a Claude Code settings file, idempotently."),
    "hook": ("gateway", "The command hook client (Claude Code runs it; reads the hook JSON on stdin)."),
    "token": ("gateway", "API tokens: they decide who a request is from."),
    "sessions": ("gateway", "Agent sessions: list, show, kill."),
    "version": ("gateway", "Print the version."),
    "query": ("query", "Events in chronological order."),
    "cost": ("cost", "Model spend: total, per tool call, per model (JSON: totalUsd, perToolCall, perModel)."),
    "report": ("incident", "A chronological incident report across sessions, each event verified against the latest signed checkpoint."),
    "evidence": ("incident", "Evidence anyone can check offline: bundles of events with their proofs, and the SOC 2 evidence pack."),
    "completeness": ("completeness", "Over sessions: tool calls seen, by each source, recorded with a decision, ended with a result, gaps and unaudited sessions."),
    "correlate": ("correlate", "Join CloudTrail records and application logs to sessions and their tool calls."),
    "secrets": ("secrets", "Redaction rules: scan the stored record with today's rules, check text, update the token formats."),
    "verify": ("ledger", "Recompute and check every leaf, checkpoint root, signature and seq."),
    "checkpoint": ("ledger", "Print the latest signed checkpoint, after checking its signature and root."),
    "proof": ("ledger", "Print an inclusion proof of one event, or (--consistency --from SIZE) a consistency proof from an older tree size, against a signed checkpoint (JSON)."),
    "verify-proof": ("ledger", "Check an inclusion or consistency proof offline, with only the log's public key."),
    "info": ("ledger", "Show the ledger's location, size, latest checkpoint and signing key."),
    "ingest": ("ledger", "Append hook payloads saved by other tools."),
    "archive": ("archive", "The write-once compliance archive: sealed segments in S3 Object Lock."),
    "sinks": ("sinks", "SIEM sinks: their cursors and lag (status), a configuration check (check), resume."),
    "migrate": ("migrate", "Copy a ledger into PostgreSQL exactly (same bytes, roots, checkpoints, key, tokens and sessions) and verify the copy."),
    "classify": ("policy", "Print the operations a tool call performs, as JSON."),
    "policy": ("policy", "Cedar policies: test, check, replay."),
}  # fmt: skip
"""Every top-level command: the module of trailguard.cli that defines it, and its short help
(what ``--help`` lists without importing the module). tests/test_cli_lazy.py checks that this
table equals what the modules register."""

COMMAND_MODULES = tuple(sorted({module for module, _ in LAZY_COMMANDS.values()}))
