"""Archive throughput: sealing into S3 Object Lock (ministack), `archive verify` from the bucket
alone, and `archive find` latency for one session, plus the same on a file:// archive.

Baselines, in the same run and against the same server: (a) PUT of just the segments' gzip
event files with the same Object Lock headers (the floor of any archive that uploads the
events); (b) GET + gunzip + SHA-256 of every event line of those files (the floor of any
verifier that recomputes the leaves); (c) one LIST plus one GET of a small object (the floor of
any lookup that reads the archive).

ministack runs from .cache/ministack-venv (installed there on first use, as the tests do) on
a free loopback port; pass --endpoint to use a server that is already running.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
    add_common_arguments,
    build_ledger,
    free_port,
    make_events,
    metric,
    percentile,
    print_header,
    print_result,
    scratch_dir,
    section,
    stop_process,
)
from trailguard.archive import layout
from trailguard.archive.backends import open_archive
from trailguard.archive.index import find
from trailguard.archive.layout import Retention
from trailguard.archive.seal import SealConfig, archive_ledger
from trailguard.archive.verify import check_uploaded_segment, verify_archive
from trailguard.ledger.keys import VERIFIER_KEY_FILE, load_verifier
from trailguard.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "ministack-venv"


def start_ministack(scratch: Path) -> tuple[subprocess.Popen[Any], str]:
    binary = VENV / "bin" / "ministack"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--quiet", "ministack==1.5.33"], check=True
        )
    port = free_port()
    log = (scratch / "ministack.log").open("wb")
    process = subprocess.Popen(
        [str(binary)],
        env={**os.environ, "BIND_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            client(endpoint).list_buckets()
            return process, endpoint
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"ministack did not start on {endpoint}") from None
            time.sleep(0.3)


def client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="AKIAFAKEFORBENCHMARKS",
        aws_secret_access_key="fake-secret-for-benchmarks-only",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
    )


def segment_files(data_dir: Path, segment_events: int) -> Iterator[bytes]:
    """The events of the ledger in gzip files of ``segment_events`` lines (for the baselines)."""
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        lines: list[bytes] = []
        for row in store.rows():
            lines.append(bytes(row.body))
            if len(lines) == segment_events:
                yield gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6, mtime=0)
                lines = []
        if lines:
            yield gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6, mtime=0)
    finally:
        store.close()


def baseline_put(s3: Any, bucket: str, files: list[bytes]) -> float:
    from concurrent.futures import ThreadPoolExecutor

    until = datetime.now(UTC) + timedelta(days=366)

    def put(item: tuple[int, bytes]) -> None:
        number, data = item
        s3.put_object(
            Bucket=bucket,
            Key=f"baseline/{number:06d}.jsonl.gz",
            Body=data,
            ChecksumSHA256=layout.b64(hashlib.sha256(data).digest()),
            IfNoneMatch="*",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=until,
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, enumerate(files)))
    return time.perf_counter() - started


def baseline_get(s3: Any, bucket: str, count: int) -> tuple[int, float]:
    events = 0
    started = time.perf_counter()
    for number in range(count):
        data = s3.get_object(Bucket=bucket, Key=f"baseline/{number:06d}.jsonl.gz")["Body"].read()
        for line in gzip.decompress(data).split(b"\n")[:-1]:
            hashlib.sha256(b"\x00" + line).digest()
            events += 1
    return events, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_common_arguments(parser)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--segment-events", type=int, default=100_000)
    parser.add_argument("--mix", default="realistic", choices=["realistic", "sample"])
    parser.add_argument("--finds", type=int, default=20, help="archive find repetitions")
    parser.add_argument("--endpoint", help="an S3 Object Lock server already running")
    parser.add_argument("--skip-file", action="store_true", help="no file:// comparison")
    args = parser.parse_args()
    if args.quick:
        args.events, args.segment_events, args.finds = 30_000, 10_000, 5
    with scratch_dir(args.dir, args.keep) as scratch:
        environment = print_header("archive: seal, verify and find", scratch)
        data_dir = scratch / "ledger"
        built = build_ledger(data_dir, make_events(args.mix, args.events), 1000)
        store = SQLiteStore.in_data_dir(data_dir, read_only=True)
        size = store.tree_size()
        body_bytes = sum(len(row.body) for row in store.rows())
        print(f"ledger: {size:,} events ({args.mix}, {body_bytes / size:.0f} bytes each), "
              f"built in {built:.1f} s (not timed)")  # fmt: skip
        verifier = load_verifier(str(data_dir / VERIFIER_KEY_FILE))
        process = None
        endpoint = args.endpoint
        if endpoint is None:
            process, endpoint = start_ministack(scratch)
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="AKIAFAKEFORBENCHMARKS",
            AWS_SECRET_ACCESS_KEY="fake-secret-for-benchmarks-only",
            AWS_REGION="us-east-1",
        )
        s3 = client(endpoint)
        result: dict[str, Any] = {"events": size, "segmentEvents": args.segment_events}
        try:
            bucket = f"bench-{uuid.uuid4().hex[:10]}"
            s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
            archive = open_archive(f"s3://{bucket}/trail")
            config = SealConfig(Retention(), segment_events=args.segment_events)

            section("seal into S3 Object Lock (ministack), read back and verify each segment")
            started = time.perf_counter()
            run = archive_ledger(store, verifier, archive, config, read_back=check_uploaded_segment)
            seal_seconds = time.perf_counter() - started
            objects = len(archive.list_keys(""))
            metric("segments sealed", len(run.sealed))
            metric("objects written", objects)
            metric("archive run", run.archived_size / seal_seconds, "events/s")
            files = list(segment_files(data_dir, args.segment_events))
            put_seconds = baseline_put(s3, bucket, files)
            metric("baseline: PUT of the gzip event files alone", size / put_seconds, "events/s")
            metric("ratio", (run.archived_size / seal_seconds) / (size / put_seconds))
            result.update(
                sealRate=run.archived_size / seal_seconds,
                putBaselineRate=size / put_seconds,
                objects=objects,
                segments=len(run.sealed),
            )

            section("archive verify from the bucket and the key alone")
            started = time.perf_counter()
            report = verify_archive(archive, verifier)
            verify_seconds = time.perf_counter() - started
            if not report.intact:
                raise SystemExit(f"archive verify failed: {[str(f) for f in report.failures]}")
            metric("archive verify (with Parquet comparison)", report.events / verify_seconds,
                   "events/s")  # fmt: skip
            started = time.perf_counter()
            report = verify_archive(archive, verifier, check_parquet=False)
            no_parquet = time.perf_counter() - started
            metric("archive verify --no-parquet", report.events / no_parquet, "events/s")
            events, get_seconds = baseline_get(s3, bucket, len(files))
            metric("baseline: GET + gunzip + SHA-256 per event", events / get_seconds, "events/s")
            metric("ratio (--no-parquet)", (report.events / no_parquet) / (events / get_seconds))
            result.update(
                verifyRate=report.events / verify_seconds,
                verifyNoParquetRate=report.events / no_parquet,
                getBaselineRate=events / get_seconds,
            )

            section(f"archive find --session (one session, {size:,}-event archive)")
            sessions = sorted({row.session_id for row in store.rows() if row.session_id})
            wanted = sessions[len(sessions) // 2]
            latencies = []
            for _ in range(args.finds):
                started = time.perf_counter()
                hits = find(archive, session=wanted)
                latencies.append(time.perf_counter() - started)
            assert hits, "the session must be found"
            floor = []
            for _ in range(args.finds):
                started = time.perf_counter()
                s3.list_objects_v2(Bucket=bucket, Prefix="trail/segments/", MaxKeys=1000)
                s3.get_object(Bucket=bucket, Key=f"trail/{layout.checkpoint_key(1)}")["Body"].read()
                floor.append(time.perf_counter() - started)
            metric("find p50", percentile(latencies, 50) * 1000, "ms")
            metric("find p90", percentile(latencies, 90) * 1000, "ms")
            metric("baseline: one LIST + one GET, p50", percentile(floor, 50) * 1000, "ms")
            result.update(
                findP50Ms=percentile(latencies, 50) * 1000,
                findP90Ms=percentile(latencies, 90) * 1000,
                listGetP50Ms=percentile(floor, 50) * 1000,
                findSession=wanted,
                findHits=len(hits),
            )

            if not args.skip_file:
                section("the same on a file:// archive (local disk)")
                local = open_archive(f"file://{scratch / 'archive'}")
                started = time.perf_counter()
                archive_ledger(store, verifier, local, config, read_back=check_uploaded_segment)
                file_seal = time.perf_counter() - started
                started = time.perf_counter()
                local_report = verify_archive(local, verifier, check_parquet=False)
                file_verify = time.perf_counter() - started
                started = time.perf_counter()
                find(local, session=wanted)
                file_find = time.perf_counter() - started
                metric("archive run", size / file_seal, "events/s")
                metric("archive verify --no-parquet", local_report.events / file_verify, "events/s")
                metric("find", file_find * 1000, "ms")
                result.update(
                    fileSealRate=size / file_seal,
                    fileVerifyRate=local_report.events / file_verify,
                    fileFindMs=file_find * 1000,
                )
        finally:
            store.close()
            if process is not None:
                stop_process(process)
        result["environment"] = environment
        print_result(result)


if __name__ == "__main__":
    main()
