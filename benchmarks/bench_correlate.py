"""Importing CloudTrail records: records/s from gzip'd log files to joined, redacted, durable
``downstream_record`` events, against reading and parsing the same files (baseline a) and the
ledger's own import path for as many Claude Code hook payloads (baseline b, `trailguard ingest`).

The ledger holds ``--sessions`` sessions of ``--calls`` `aws s3 cp` tool calls each, built
before timing; the log files hold one PutObject per call (joined ``exact``) and as many records
of other users (no trailguard User-Agent), in files of 1,000 records, as CloudTrail delivers.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
    add_common_arguments,
    metric,
    print_header,
    print_result,
    scratch_dir,
    section,
)
from trailguard.capture.hook_log import import_hook_log
from trailguard.correlate.cloudtrail import LogFile, parse_log_file
from trailguard.correlate.importer import Correlator, ImportOptions, count_receipts
from trailguard.correlate.run import RawFile, correlate_files
from trailguard.events import Operation, SessionStart, ToolInvocation, ToolResult, format_timestamp
from trailguard.ledger.keys import redaction_key
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.redact import Redactor
from trailguard.store.sqlite import SQLiteStore

ACCOUNT = "111122223333"
PER_FILE = 1000


def build_sessions(data_dir: Path, sessions: int, calls: int, start: datetime) -> list[tuple]:
    """Sessions with `aws s3 cp` calls 3 s apart; returns (session, time, bucket, key) of each."""
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=5000))
    made = []
    events: list[Any] = []
    for s in range(sessions):
        session = str(uuid.UUID(int=s + 1, version=4))
        common = {"session_id": session, "developer_id": f"dev_{s}", "project_id": "proj"}
        at = start + timedelta(hours=s)
        events.append(SessionStart(timestamp=format_timestamp(at), **common))
        for c in range(calls):
            at += timedelta(seconds=3)
            bucket, key = f"bucket-{s}", f"builds/{c}/artifact.tar"
            tool_use_id = f"toolu_{s:04d}_{c:05d}"
            operation = Operation(
                kind="aws", action="s3:PutObject", resource=f"arn:aws:s3:::{bucket}/{key}",
                access="write", risk="medium",
            )  # fmt: skip
            events.append(
                ToolInvocation(
                    timestamp=format_timestamp(at), tool="Bash", tool_use_id=tool_use_id,
                    input={"command": f"aws s3 cp artifact.tar s3://{bucket}/{key}"},
                    operations=[operation], policy_result="allowed", **common,
                )
            )  # fmt: skip
            events.append(
                ToolResult(
                    timestamp=format_timestamp(at + timedelta(seconds=1)), tool="Bash",
                    tool_use_id=tool_use_id, status="success", **common,
                )
            )  # fmt: skip
            made.append((session, at + timedelta(milliseconds=500), bucket, key))
    ledger.append_many(events)
    ledger.close()
    return made


def record(at: datetime, bucket: str, key: str, user_agent: str) -> dict[str, Any]:
    return {
        "eventVersion": "1.10",
        "userIdentity": {"type": "AssumedRole", "principalId": "AROAIDPPEZS35WEXAMPLE:ci",
                         "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/ci",
                         "accountId": ACCOUNT, "accessKeyId": "ASIAIOSFODNN7EXAMPLE"},
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "s3.amazonaws.com", "eventName": "PutObject", "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.10", "userAgent": user_agent,
        "requestParameters": {"bucketName": bucket, "key": key,
                              "Host": f"{bucket}.s3.us-east-1.amazonaws.com"},
        "responseElements": {"x-amz-server-side-encryption": "AES256"},
        "additionalEventData": {"SignatureVersion": "SigV4", "bytesTransferredIn": 10240},
        "requestID": uuid.uuid4().hex[:16].upper(), "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "resources": [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                      {"accountId": ACCOUNT, "type": "AWS::S3::Bucket",
                       "ARN": f"arn:aws:s3:::{bucket}"}],
        "eventType": "AwsApiCall", "managementEvent": False, "recipientAccountId": ACCOUNT,
        "eventCategory": "Data",
    }  # fmt: skip


def log_files(calls: list[tuple]) -> list[RawFile]:
    agent = "aws-cli/2.22.35 ua/2.1 os/linux md/command#s3.cp"
    records = []
    for session, at, bucket, key in calls:
        records.append(record(at, bucket, key, f"{agent} app/trailguard-{session}"))
        records.append(record(at, "someone-elses-bucket", key, agent))
    return [
        RawFile(
            f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{index:06d}.json.gz",
            gzip.compress(json.dumps({"Records": records[i : i + PER_FILE]}).encode()),
        )
        for index, i in enumerate(range(0, len(records), PER_FILE))
    ]


def hook_log(path: Path, count: int) -> None:
    with path.open("w") as out:
        for i in range(count):
            out.write(
                json.dumps(
                    {"session_id": "sess_hooklog", "hook_event_name": "PreToolUse",
                     "tool_name": "Bash", "tool_use_id": f"toolu_{i:07d}",
                     "tool_input": {"command": f"aws s3 cp a s3://b/{i}"},
                     "timestamp": "2026-04-15T14:32:07Z"}
                )
                + "\n"
            )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--sessions", type=int, help="sessions (20 / 5)")
    parser.add_argument("--calls", type=int, help="aws s3 cp calls per session (500 / 200)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each measurement")
    args = parser.parse_args()
    sessions = args.sessions or (5 if args.quick else 20)
    calls = args.calls or (200 if args.quick else 500)

    with scratch_dir(args.dir, args.keep) as scratch:
        env = print_header("trailguard correlate benchmark", scratch)
        start = datetime(2026, 4, 15, 9, 0, tzinfo=UTC)
        data_dir = scratch / "ledger"
        made = build_sessions(data_dir, sessions, calls, start)
        files = log_files(made)
        total = len(made) * 2
        compressed = sum(len(f.raw) for f in files)
        print(
            f"{sessions} sessions x {calls} calls; {total:,} records ({len(made):,} ours) in "
            f"{len(files)} gzip'd files, {compressed / 1e6:.1f} MB"
        )
        parse_rates, correlate_rates, ingest_rates = [], [], []
        joined = exact = 0
        for round_ in range(args.rounds):
            began = time.perf_counter()
            parsed = sum(
                1 for f in files for _ in parse_log_file(LogFile.from_bytes(f.name, f.raw))
            )
            parse_rates.append(parsed / (time.perf_counter() - began))

            target_dir = scratch / f"ledger-{round_}"
            build_sessions(target_dir, sessions, calls, start)
            ledger = Ledger.open(target_dir, config=LedgerConfig(checkpoint_every_events=5000))
            reader = SQLiteStore.in_data_dir(target_dir, read_only=True)
            began = time.perf_counter()
            correlator = Correlator(
                reader, Redactor(redaction_key(target_dir)), ImportOptions(imported_by="bench")
            )
            events = correlate_files(correlator, files, "cloudtrail")
            count_receipts(correlator.report, ledger.append_many(events), events)
            correlate_rates.append(total / (time.perf_counter() - began))
            reader.close()
            ledger.close()
            joined, exact = correlator.report.appended, correlator.report.matches["exact"]

            hook_dir = scratch / f"hooks-{round_}"
            log = scratch / f"hooks-{round_}.jsonl"
            hook_log(log, len(made))
            hook_ledger = Ledger.open(hook_dir, config=LedgerConfig(checkpoint_every_events=5000))
            began = time.perf_counter()
            imported = import_hook_log(hook_ledger, log)
            ingest_rates.append(imported.appended / (time.perf_counter() - began))
            hook_ledger.close()

        section("records per second (best of rounds)")
        metric("(a) baseline: inflate + parse only", max(parse_rates), "records/s")
        metric("trailguard correlate: parse, join, redact, commit", max(correlate_rates),
               "records/s")  # fmt: skip
        metric("  of them joined to a session (ours)", max(correlate_rates) / 2, "records/s")
        metric("(b) baseline: trailguard ingest of hook payloads", max(ingest_rates), "events/s")
        metric("records joined / exact", f"{joined:,} / {exact:,}")
        if joined != len(made) or exact != len(made):
            raise SystemExit(f"expected {len(made)} exact joins, got {joined} ({exact} exact)")
        print_result(
            {
                "env": env,
                "records": total,
                "ours": len(made),
                "parse_records_per_s": round(max(parse_rates)),
                "correlate_records_per_s": round(max(correlate_rates)),
                "ingest_events_per_s": round(max(ingest_rates)),
            }
        )


if __name__ == "__main__":
    main()
