"""The real S3-compatible server for the archive tests: ministack (it enforces COMPLIANCE
Object Lock: shortening, downgrading and deleting locked versions are refused).

ministack pins its own boto3/botocore, so it lives in its own virtual environment under
.cache/ministack-venv, created on first use; the tests talk to it with the project's boto3.
It is started once per test session on a free loopback port. Known gaps (see
shared/TESTING.md): it forgets per-object locks when restarted and accepts suspending
versioning, so no test restarts it or relies on those. Under CI a ministack that cannot be
installed or started fails the tests rather than skipping them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MINISTACK_VERSION = "1.5.33"
VENV = ROOT / ".cache" / "ministack-venv"
FAKE_KEY_ID = "AKIAFAKEFORTESTS0000"
FAKE_SECRET = "fake-secret-for-ministack-tests-only"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"ministack is needed for the archive tests and {reason}")
    pytest.skip(f"ministack unavailable: {reason}")


def _ministack_binary() -> Path:
    given = os.environ.get("TRAILGUARD_MINISTACK_BIN")
    if given:
        return Path(given)
    binary = VENV / "bin" / "ministack"
    if binary.exists():
        return binary
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
    subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "--quiet", f"ministack=={MINISTACK_VERSION}"],
        check=True,
        timeout=600,
        capture_output=True,
    )
    return binary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="session")
def ministack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a ministack server running for this test session."""
    try:
        binary = _ministack_binary()
    except (OSError, subprocess.SubprocessError) as exc:
        _unavailable(f"could not be installed into {VENV}: {exc}")
    port = _free_port()
    log = tmp_path_factory.mktemp("ministack") / "ministack.log"
    environment = {**os.environ, "BIND_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(binary)], env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            _unavailable(f"exited at start ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            _client(endpoint).list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline:
                process.kill()
                _unavailable(f"did not answer on {endpoint} within 90 s")
            time.sleep(0.3)
    try:
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_env(ministack: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard AWS configuration pointing at ministack, as an operator would set it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", ministack)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return ministack


@pytest.fixture
def s3(s3_env: str):  # type: ignore[no-untyped-def]
    """A boto3 S3 client on ministack, for the tests' own (attacking) requests."""
    return _client(s3_env)


@pytest.fixture
def make_bucket(s3) -> Callable[..., str]:  # type: ignore[no-untyped-def]
    """Creates a fresh bucket (Object Lock enabled unless ``locked=False``); returns its name."""

    def create(*, locked: bool = True) -> str:
        name = f"tg-archive-{uuid.uuid4().hex[:12]}"
        if locked:
            s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            s3.create_bucket(Bucket=name)
        return name

    return create


def fill_ledger(data_dir: Path, count: int, *, batch: int = 50, sessions: int = 3) -> None:
    """A ledger of ``count`` sample events over ``sessions`` sessions, committed ``batch`` at a
    time with a checkpoint every 100 events, so segments can be cut at many checkpoints."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import sample_events
    from trailguard.ledger.writer import Ledger, LedgerConfig

    events = []
    for number in range(sessions):
        events.extend(sample_events(count // sessions, session=f"sess_{number:04d}"))
    events.extend(sample_events(count - len(events), session="sess_0000"))
    config = LedgerConfig(checkpoint_every_events=100, checkpoint_interval_seconds=3600.0)
    with Ledger.open(data_dir, config=config) as ledger:
        for start in range(0, len(events), batch):
            ledger.append_many(events[start : start + batch])


@contextlib.contextmanager
def read_only_store(data_dir: Path) -> Iterator[object]:
    from trailguard.store.sqlite import SQLiteStore

    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    try:
        yield store
    finally:
        store.close()
