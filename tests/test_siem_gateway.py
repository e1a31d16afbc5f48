"""SIEM sinks in the gateway: configuration errors are clear, `serve --sink` streams every
event (its own gateway_stop and last checkpoint too), a SIGKILLed gateway resumes from the
cursor, and `sinks status` and `/metrics` show cursors and lag."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import sample_events
from siem_receivers import WebhookReceiver, first_occurrences, free_port, wait_until
from trailguard.cli import app
from trailguard.gateway.app import create_app
from trailguard.ledger.writer import Ledger, LedgerConfig
from trailguard.siem.config import SinkConfigError, load_sinks, load_sinks_file, parse_sink_url
from trailguard.store.gateway_state import GatewayState
from trailguard.store.sqlite import SQLiteStore

TRAILGUARD = [sys.executable, "-m", "trailguard"]
FAKE_KEY = b"fake-webhook-hmac-key-for-tests"
runner = CliRunner()


def key_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "webhook.key"
    path.write_bytes(FAKE_KEY + b"\n")
    path.chmod(mode)
    return path


# -- configuration: every mistake is named --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("syslog://127.0.0.1:514", "unknown scheme syslog://; did you mean 'syslog+tls'?"),
        ("syslog+tls://127.0.0.1:6514", "ca= is required"),
        (
            "syslog+tls://127.0.0.1:6514?ca=/nonexistent.pem",
            "ca=/nonexistent.pem: no readable file",
        ),
        (
            "syslog+tcp://127.0.0.1:514?formt=cef",
            "unknown parameter 'formt'; did you mean 'format'?",
        ),
        ("syslog+tcp://127.0.0.1:514?format=xml", "format must be one of json, cef, ocsf"),
        ("webhook+https://h/p?secret_file=F&format=cef", "format must be one of json, ocsf"),
        ("splunk-hec+https://h:8088?token=abc", "would put a secret in the URL"),
        ("splunk-hec+https://user:pw@h:8088?token_file=F", "credentials in the URL are refused"),
        ("splunk-hec+https://h:8088", "token_file= is required"),
        (
            "splunk-hec+https://h:8088?token_file=/nonexistent",
            "token_file=/nonexistent: no such file",
        ),
        ("webhook+https://h/p", "secret_file= is required"),
        ("syslog+tcp://127.0.0.1:514?types=alert,tool_call", "unknown event type 'tool_call'"),
        ("syslog+tcp://127.0.0.1:514?min_risk=severe", "min_risk must be one of low, medium"),
        ("syslog+tcp://127.0.0.1:514?batch_size=0", "batch_size must be at least 1"),
        ("syslog+tcp://127.0.0.1:514?batch_size=many", "batch_size must be a whole number"),
        ("syslog+tcp://127.0.0.1:99999", "not a URL"),
        ("syslog+tcp://127.0.0.1:514?ca=/etc/hosts", "ca/cert/key need a TLS scheme"),
        ("syslog+tcp://127.0.0.1:514/path", "syslog sinks take no path"),
        ("syslog+tcp://127.0.0.1:514?start=middle", "start must be 'beginning'"),
    ],
)
def test_sink_urls_are_validated_with_errors_that_name_the_problem(tmp_path, url, expected):
    secret = key_file(tmp_path)
    with pytest.raises(SinkConfigError) as caught:
        parse_sink_url(url.replace("=F", f"={secret}"))
    assert expected in str(caught.value)


def test_a_secret_file_readable_by_others_is_refused(tmp_path):
    secret = key_file(tmp_path, mode=0o644)
    with pytest.raises(SinkConfigError, match=r"readable by other users .*chmod 600"):
        parse_sink_url(f"webhook+https://siem.example/in?secret_file={secret}")


def test_lab_transports_are_accepted_with_a_warning(tmp_path):
    config = parse_sink_url("syslog+udp://127.0.0.1:514?format=cef")
    assert any("unencrypted" in w for w in config.warnings)
    assert any("cannot know whether a message arrived" in w for w in config.warnings)
    assert parse_sink_url("syslog+tcp://127.0.0.1").port == 514


def test_sinks_files_name_the_file_the_table_and_the_key(tmp_path):
    secret = key_file(tmp_path)
    path = tmp_path / "sinks.toml"
    path.write_text(
        f'[[sinks]]\nurl = "webhook+https://siem.example/in?secret_file={secret}"\n'
        'types = ["alert", "checkpoint"]\nbatch_size = 50\n\n'
        '[[sinks]]\nurl = "syslog+tcp://127.0.0.1:514"\nformat = "cef"\nbatchsize = 3\n'
    )
    with pytest.raises(SinkConfigError) as caught:
        load_sinks_file(path)
    message = str(caught.value)
    assert f"sinks file {path}, [[sinks]] #2" in message
    assert "unknown parameter 'batchsize'; did you mean 'batch_size'?" in message

    path.write_text(path.read_text().replace("batchsize = 3\n", ""))
    first, second = load_sinks_file(path)
    assert first.types == frozenset({"alert", "checkpoint"})
    assert first.batch_size == 50
    assert second.format == "cef"

    path.write_text('[[sinks]]\nurl = "syslog+tcp://127.0.0.1:514?format=cef"\nformat = "json"\n')
    with pytest.raises(SinkConfigError, match="format is given both in the URL and in the table"):
        load_sinks_file(path)
    path.write_text("[sinks\n")
    with pytest.raises(SinkConfigError, match="is not valid TOML"):
        load_sinks_file(path)


def test_two_sinks_sharing_a_cursor_name_are_refused():
    with pytest.raises(SinkConfigError, match="give each its own name="):
        load_sinks(["syslog+tcp://127.0.0.1:514?format=cef", "syslog+tcp://127.0.0.1:514"])
    assert len(load_sinks(["syslog+tcp://127.0.0.1:514", "syslog+tcp://127.0.0.1:514?name=b"])) == 2


def test_serve_refuses_a_bad_sink_before_recording_anything(tmp_path):
    data_dir = tmp_path / "ledger"
    result = runner.invoke(
        app, ["serve", "--data-dir", str(data_dir), "--sink", "webhook+https://h/p?token=abc"]
    )
    assert result.exit_code == 2
    assert "would put a secret in the URL" in result.output
    assert "Nothing was recorded" in result.output
    assert not data_dir.exists()


def test_sinks_check_prints_what_each_sink_does(tmp_path):
    secret = key_file(tmp_path)
    result = runner.invoke(
        app,
        [
            "sinks",
            "check",
            "--sink",
            f"webhook+http://127.0.0.1:9/in?secret_file={secret}&min_risk=high",
            "--sink",
            "syslog+udp://127.0.0.1:514?format=cef",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "min_risk high (checkpoints always)" in result.output
    assert "unencrypted" in result.output
    assert FAKE_KEY.decode() not in result.output
    result = runner.invoke(app, ["sinks", "check", "--sink", "syslog+tls://h:1"])
    assert result.exit_code == 2
    assert "ca= is required" in result.output


# -- in the gateway: /metrics, sinks status --------------------------------------------------


def test_metrics_and_sinks_status_show_cursor_lag_and_deliveries(tmp_path):
    receiver = WebhookReceiver(FAKE_KEY)
    receiver.start()
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=50))
    ledger.append_many(sample_events(40))
    state = GatewayState(data_dir)
    auditor, _ = state.create_token("aud_sam", "auditor")
    agent, _ = state.create_token("dev_jordan", "agent")
    state.close()
    url = f"webhook+http://127.0.0.1:{receiver.port}/in?secret_file={key_file(tmp_path)}&name=soc"
    try:
        with TestClient(create_app(ledger, sinks=load_sinks([url]))) as client:
            manager = client.app.state.sinks

            def sink(condition):
                statuses = manager.statuses()
                return bool(statuses) and condition(statuses[0])

            wait_until(lambda: sink(lambda s: s.lag_events == 0 and s.delivered >= 40))
            assert client.get("/metrics").status_code == 401
            assert (
                client.get("/metrics", headers={"Authorization": f"Bearer {agent}"}).status_code
                == 403
            )

            # The refused scrapes above were recorded (alerts): the sink catches up with them.
            def scrape() -> str:
                response = client.get("/metrics", headers={"Authorization": f"Bearer {auditor}"})
                assert response.status_code == 200
                return response.text

            wait_until(lambda: 'trailguard_sink_lag_events{sink="soc"} 0.0' in scrape())
            text = scrape()
            assert 'trailguard_sink_state{sink="soc",state="running"} 1.0' in text
            delivered = next(
                line
                for line in text.splitlines()
                if line.startswith("trailguard_sink_delivered_events_total")
            )
            assert float(delivered.split()[-1]) >= 40
            receiver.stop()
            ledger.append_many(sample_events(10))
            wait_until(lambda: sink(lambda s: s.state == "retrying"))
            result = runner.invoke(
                app, ["sinks", "status", "--data-dir", str(data_dir), "--format", "json"]
            )
            assert result.exit_code == 0, result.output
            (row,) = json.loads(result.output)
            assert row["name"] == "soc"
            assert row["state"] == "retrying"
            assert row["lagEvents"] >= 10
            assert f"webhook+http://127.0.0.1:{receiver.port}/in" in row["lastError"]
            table = runner.invoke(app, ["sinks", "status", "--data-dir", str(data_dir)])
            assert "soc" in table.output
            assert "retrying" in table.output
            receiver.start()
    finally:
        receiver.stop()
    # The gateway drained at shutdown: its gateway_stop and final checkpoint reached the sink.
    seqs = first_occurrences([e["seq"] for e in receiver.events])
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    types = [row.event_type for row in store.rows()]
    store.close()
    assert types[-2:] == ["gateway_stop", "checkpoint"]
    assert seqs == list(range(len(types)))


# -- a SIGKILLed gateway resumes from the cursor ---------------------------------------------


def _post_hooks(port: int, token: str, stop: threading.Event, sent: list[int]) -> None:
    """PreToolUse hooks one after the other until ``stop``; ``sent`` gets each one answered."""
    session = "sess_sigkill"
    number = 0
    while not stop.is_set():
        number += 1
        body = json.dumps(
            {"session_id": session, "hook_event_name": "PreToolUse", "tool_name": "Bash",
             "tool_input": {"command": f"echo {number}"}, "tool_use_id": f"toolu_{number:06d}"}
        ).encode()  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/hooks/claude-code",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    sent.append(number)
        except OSError:  # an error answer, or the gateway is being killed: go on until stopped
            time.sleep(0.05)


def _serve(data_dir: Path, port: int, sink: str) -> subprocess.Popen[bytes]:
    # One process (--workers 1): the test SIGKILLs the gateway and expects the sink worker as
    # its only child; with several workers see tests/test_workers.py.
    process = subprocess.Popen(
        [
            *TRAILGUARD,
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--sink",
            sink,
            "--workers",
            "1",
        ],
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the gateway did not start")


@pytest.mark.slow
def test_a_sigkilled_gateway_resumes_from_the_cursor_duplicating_at_most_one_batch(tmp_path):
    receiver = WebhookReceiver(FAKE_KEY)
    receiver.start()
    data_dir = tmp_path / "ledger"
    assert runner.invoke(app, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    state = GatewayState(data_dir)
    token, _ = state.create_token("dev_jordan", "agent")
    state.close()
    batch = 10
    sink = f"webhook+http://127.0.0.1:{receiver.port}/in?secret_file={key_file(tmp_path)}&batch_size={batch}"
    port = free_port()
    gateways: list[subprocess.Popen[bytes]] = []
    stop, sent = threading.Event(), []
    try:
        gateway = _serve(data_dir, port, sink)
        gateways.append(gateway)
        poster = threading.Thread(target=_post_hooks, args=(port, token, stop, sent))
        poster.start()
        wait_until(lambda: len(receiver.events) >= 30, timeout=60, what="the stream to start")

        def backlog() -> int:
            store = SQLiteStore.in_data_dir(data_dir, read_only=True)
            try:
                return store.tree_size() - len(receiver.events)
            finally:
                store.close()

        receiver.delay = 1.0  # the SIEM slows down: the stream falls behind the hooks
        wait_until(lambda: backlog() >= 40, timeout=60, what="a backlog (mid-stream)")
        children = Path(f"/proc/{gateway.pid}/task/{gateway.pid}/children").read_text().split()
        (worker,) = [int(pid) for pid in children]
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(timeout=10)
        stop.set()
        poster.join(timeout=10)
        wait_until(lambda: not Path(f"/proc/{worker}").exists() or
                   Path(f"/proc/{worker}/stat").read_text().split()[2] == "Z",
                   timeout=10, what="the orphaned sink worker to exit")  # fmt: skip
        receiver.delay = 0.0
        before_restart = len(receiver.events)
        store = SQLiteStore.in_data_dir(data_dir, read_only=True)
        size_at_kill = store.tree_size()
        store.close()
        assert before_restart < size_at_kill, "the kill came too late to be mid-stream"
        gateway = _serve(data_dir, port, sink)
        gateways.append(gateway)
        gateway.send_signal(signal.SIGTERM)  # stops after draining to the sink (3 s at most)
        gateway.wait(timeout=30)
    finally:
        stop.set()
        for process in gateways:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        receiver.stop()
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    rows = [orjson.loads(row.body) for row in store.rows()]
    store.close()
    seqs = [e["seq"] for e in receiver.events]
    assert first_occurrences(seqs) == list(range(len(rows))), "an event was lost or reordered"
    duplicates = len(seqs) - len(set(seqs))
    assert duplicates <= batch, f"{duplicates} events were sent twice (more than one batch)"
    assert {e["eventId"] for e in receiver.events} == {r["eventId"] for r in rows}
    assert len(sent) >= 10


def test_a_sink_worker_that_dies_is_restarted_with_an_alert_and_resumes(tmp_path):
    receiver = WebhookReceiver(FAKE_KEY)
    receiver.start()
    data_dir = tmp_path / "ledger"
    ledger = Ledger.open(data_dir, config=LedgerConfig(checkpoint_every_events=50))
    url = f"webhook+http://127.0.0.1:{receiver.port}/in?secret_file={key_file(tmp_path)}"
    try:
        with TestClient(create_app(ledger, sinks=load_sinks([url]))) as client:
            manager = client.app.state.sinks
            first = manager._process
            wait_until(lambda: len(receiver.events) >= 3, what="the first events")
            os.kill(first.pid, signal.SIGKILL)
            ledger.append_many(sample_events(20))
            wait_until(
                lambda: manager._process is not first and manager.running,
                timeout=20,
                what="a new worker",
            )
            wait_until(lambda: len({e["seq"] for e in receiver.events}) >= ledger.tree_size - 2)
    finally:
        receiver.stop()
    store = SQLiteStore.in_data_dir(data_dir, read_only=True)
    rows = [orjson.loads(row.body) for row in store.rows()]
    store.close()
    exited = [r for r in rows if r.get("alertType") == "sink_worker_exited"]
    assert len(exited) == 1
    assert "status -9" in exited[0]["message"]
    assert first_occurrences([e["seq"] for e in receiver.events])[:20] == list(range(20))


def test_serve_refuses_sinks_on_a_shared_ledger_before_connecting(tmp_path):
    result = runner.invoke(
        app,
        [
            "serve",
            "--store",
            "postgresql://127.0.0.1:1/none",
            "--sink",
            "syslog+tcp://127.0.0.1:514",
        ],
    )
    assert result.exit_code == 2
    assert "a shared ledger (--store) cannot have sinks yet" in result.output
