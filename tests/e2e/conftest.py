"""Fixtures for driving the real Claude Code CLI through a real trailguard gateway.

The gateway runs as `trailguard serve` in its own process, so stopping it is a real outage. The
Claude Code binary comes from the npm registry (installed into .cache/claude-code on first use),
or from $TRAILGUARD_CLAUDE_BIN.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from trailguard.store.sqlite import SQLiteStore

from .claude import (
    trust_project,
)

TRAILGUARD = Path(sys.executable).with_name("trailguard")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class GatewayProcess:
    """`trailguard serve` in a subprocess on a fixed port, so it can be stopped and restarted."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    log: Path | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TRAILGUARD), *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self) -> None:
        self.log = self.data_dir.parent / f"gateway-{self.port}.log"
        self.process = subprocess.Popen(
            [
                str(TRAILGUARD),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--checkpoint-interval",
                "1",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("a"),
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"gateway did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def events(self) -> list[dict]:
        store = SQLiteStore.in_data_dir(self.data_dir, read_only=True)
        try:
            return [orjson.loads(row.body) for row in store.rows()]
        finally:
            store.close()

    def session_events(self, session_id: str) -> list[dict]:
        return [e for e in self.events() if e.get("sessionId") == session_id]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "ledger")
    process.data_dir.mkdir(parents=True)
    process.start()
    yield process
    process.stop()


@dataclass
class Workspace:
    home: Path
    project: Path
    spool: Path
    token: str

    def env(self, gateway: GatewayProcess) -> dict[str, str]:
        """What Claude Code (and so its hooks) runs with."""
        return {
            "TRAILGUARD_URL": gateway.url,
            "TRAILGUARD_TOKEN": self.token,
            "TRAILGUARD_SPOOL_DIR": str(self.spool),
            "TRAILGUARD_TIMEOUT": "5",
        }

    def proxy_env(self, gateway: GatewayProcess) -> dict[str, str]:
        """``env`` plus the header that lets the API proxy charge this token's sessions (as
        the README tells a developer to set it)."""
        return self.env(gateway) | {"ANTHROPIC_CUSTOM_HEADERS": f"X-Trailguard-Token: {self.token}"}


@pytest.fixture
def workspace(tmp_path: Path, gateway: GatewayProcess) -> Workspace:
    home, project, spool = tmp_path / "home", tmp_path / "project", tmp_path / "spool"
    home.mkdir()
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(project),
            "remote",
            "add",
            "origin",
            "https://ci:fake-remote-token@example.invalid/acme/backend.git",
        ],
        check=True,
    )
    trust_project(home, project)
    made = gateway.cli("token", "create", "--developer", "dev_e2e", "--role", "agent")
    assert made.returncode == 0, made.stderr
    return Workspace(home, project, spool, made.stdout.strip().splitlines()[-1])


def install_hooks(workspace: Workspace, gateway: GatewayProcess, mode: str) -> dict:
    result = subprocess.run(
        [
            str(TRAILGUARD),
            "install",
            "--project",
            str(workspace.project),
            "--gateway",
            gateway.url,
            "--mode",
            mode,  # the default command hook: python -I -S .../trailguard/__main__.py hook
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads((workspace.project / ".claude" / "settings.json").read_text())
