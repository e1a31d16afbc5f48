"""Run the real Claude Code CLI (2.1.328) offline against a :class:`ModelServer`.

Binary resolution (:func:`find_claude_binary` / :func:`ensure_claude_code`):

1. ``TRAILGUARD_CLAUDE_BIN`` overrides everything (a path to the native ``claude`` binary).
2. Otherwise the project-local install ``<repo>/.cache/claude-code`` (for another version named
   by ``TRAILGUARD_CLAUDE_VERSION``: ``.cache/claude-code-<version>``) is used, i.e.
   ``<prefix>/node_modules/@anthropic-ai/claude-code-<platform>/claude``. npm does not run the
   package's postinstall, so ``bin/claude.exe`` of the main package stays a placeholder and is
   never used: the native binary lives in the platform package.

:func:`ensure_claude_code` installs the pinned version with npm when the binary is missing
(about 360 MB); :func:`find_claude_binary` only looks and never downloads.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PINNED_VERSION = "2.1.328"
VERSION_ENV = "TRAILGUARD_CLAUDE_VERSION"
CLAUDE_CODE_VERSION = os.environ.get(VERSION_ENV) or PINNED_VERSION
"""The version the suite runs against: the pinned one (CI), or ``$TRAILGUARD_CLAUDE_VERSION``
(e.g. the newest published, installed beside it in ``.cache/claude-code-<version>``)."""
CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
BINARY_ENV = "TRAILGUARD_CLAUDE_BIN"
FAKE_API_KEY = "sk-ant-test-fake"

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PREFIX = (
    REPO_ROOT
    / ".cache"
    / (
        "claude-code"
        if CLAUDE_CODE_VERSION == PINNED_VERSION
        else f"claude-code-{CLAUDE_CODE_VERSION}"
    )
)


class ClaudeCodeUnavailable(RuntimeError):
    """The Claude Code binary is missing and could not be installed."""


class ClaudeTimeout(AssertionError):
    """``claude`` did not finish in time; carries what it printed so far."""

    def __init__(self, message: str, stdout: str, stderr: str) -> None:
        super().__init__(
            f"{message}\n--- stdout ---\n{stdout[-4000:]}\n--- stderr ---\n{stderr[-4000:]}"
        )
        self.stdout = stdout
        self.stderr = stderr


def platform_package() -> str:
    """The npm package that carries the native binary for this machine."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        cpu = "x64"
    elif machine in ("aarch64", "arm64"):
        cpu = "arm64"
    else:
        raise ClaudeCodeUnavailable(f"Claude Code has no native binary for CPU {machine!r}")
    if sys.platform == "darwin":
        return f"{CLAUDE_CODE_PACKAGE}-darwin-{cpu}"
    if sys.platform.startswith("linux"):
        libc, _ = platform.libc_ver()
        is_musl = libc != "glibc" and any(Path("/lib").glob("ld-musl-*"))
        musl = "-musl" if is_musl else ""
        return f"{CLAUDE_CODE_PACKAGE}-linux-{cpu}{musl}"
    raise ClaudeCodeUnavailable(f"unsupported platform for these tests: {sys.platform}")


def binary_in_prefix(prefix: Path) -> Path:
    return Path(prefix) / "node_modules" / platform_package() / "claude"


def find_claude_binary(prefix: Path = DEFAULT_PREFIX) -> Path | None:
    """The binary to test against, or None. Never installs anything."""
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    try:
        path = binary_in_prefix(prefix)
    except ClaudeCodeUnavailable:
        return None
    return path if path.is_file() and os.access(path, os.X_OK) else None


def ensure_claude_code(prefix: Path = DEFAULT_PREFIX) -> Path:
    """Return the Claude Code binary, running ``npm install`` into ``prefix`` if it is missing.

    ``TRAILGUARD_CLAUDE_BIN`` (if set) is returned as is and must point to an executable.
    """
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ClaudeCodeUnavailable(f"{BINARY_ENV}={override} is not an executable file")
        return path
    binary = binary_in_prefix(prefix)
    if binary.is_file():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise ClaudeCodeUnavailable(
            f"npm is not on PATH, so Claude Code {CLAUDE_CODE_VERSION} cannot be installed into "
            f"{prefix}; install Node.js/npm or set {BINARY_ENV} to a native claude binary"
        )
    Path(prefix).mkdir(parents=True, exist_ok=True)
    spec = f"{CLAUDE_CODE_PACKAGE}@{CLAUDE_CODE_VERSION}"
    proc = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), spec],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ClaudeCodeUnavailable(
            f"`npm install --prefix {prefix} {spec}` failed with exit {proc.returncode}:\n"
            f"{proc.stderr[-4000:]}"
        )
    if not binary.is_file():
        raise ClaudeCodeUnavailable(
            f"npm installed {spec} but {binary} is missing (optional platform package skipped? "
            f"check --omit=optional / npm config)"
        )
    binary.chmod(binary.stat().st_mode | 0o111)
    return binary


@dataclass
class ClaudeResult:
    returncode: int
    stdout: str
    stderr: str
    json: dict[str, Any] | None
    duration_s: float
    argv: list[str]

    @property
    def session_id(self) -> str | None:
        return self.json.get("session_id") if self.json else None

    @property
    def total_cost_usd(self) -> float | None:
        return self.json.get("total_cost_usd") if self.json else None

    @property
    def permission_denials(self) -> list[dict[str, Any]]:
        return list(self.json.get("permission_denials") or []) if self.json else []

    @property
    def is_error(self) -> bool:
        return self.returncode != 0 or bool(self.json and self.json.get("is_error"))

    def describe(self) -> str:
        """Everything useful for an assertion message."""
        return (
            f"claude exited {self.returncode} after {self.duration_s:.1f}s\n"
            f"argv: {self.argv}\n--- stdout ---\n{self.stdout[-4000:]}\n"
            f"--- stderr ---\n{self.stderr[-4000:]}"
        )


def _parse_final_json(stdout: str) -> dict[str, Any] | None:
    text = stdout.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else None
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def claude_env(
    home: Path,
    model_url: str,
    env_extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A minimal, clean environment: nothing of the caller's config or credentials leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": model_url,
        "ANTHROPIC_API_KEY": FAKE_API_KEY,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "IS_SANDBOX": "1",
        "LANG": "C.UTF-8",
    }
    env.update(env_extra or {})
    return env


def run_claude(
    binary: Path | str,
    *,
    home: Path,
    project: Path,
    prompt: str,
    model_url: str,
    env_extra: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    timeout: float = 120,
) -> ClaudeResult:
    """Run ``claude -p PROMPT --output-format json [args]`` in ``project`` and wait for it.

    The process gets its own session/process group; on timeout the whole group is killed and
    :class:`ClaudeTimeout` is raised with the output so far.
    """
    Path(home).mkdir(parents=True, exist_ok=True)
    argv = [str(binary), "-p", prompt, "--output-format", "json", *args]
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=str(project),
        env=claude_env(Path(home), model_url, env_extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise ClaudeTimeout(
            f"claude did not finish within {timeout}s: {argv}", stdout or "", stderr or ""
        ) from None
    return ClaudeResult(
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        json=_parse_final_json(stdout),
        duration_s=time.monotonic() - started,
        argv=argv,
    )


def trust_project(home: Path, project: Path) -> Path:
    """Mark ``project`` as trusted in ``$HOME/.claude.json`` (merging into an existing file)."""
    config_path = Path(home) / ".claude.json"
    config: dict[str, Any] = {}
    if config_path.exists():
        text = config_path.read_text(encoding="utf-8").strip()
        if text:
            config = json.loads(text)
    projects = config.setdefault("projects", {})
    key = str(Path(project).resolve())
    entry = projects.setdefault(key, {})
    entry["hasTrustDialogAccepted"] = True
    Path(home).mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return config_path


def transcript_dir(home: Path, project: Path) -> Path:
    """Where Claude Code writes ``<session>.jsonl`` transcripts for ``project``.

    Every non-alphanumeric character of the resolved path becomes ``-`` (``/tmp/a_b`` ->
    ``-tmp-a-b``). Internal format; prefer :func:`find_transcript`.
    """
    resolved = str(Path(project).resolve())
    return Path(home) / ".claude" / "projects" / re.sub(r"[^A-Za-z0-9]", "-", resolved)


def find_transcript(home: Path, session_id: str) -> Path | None:
    """The transcript of ``session_id`` under ``$HOME/.claude/projects``, wherever it is."""
    matches = sorted((Path(home) / ".claude" / "projects").glob(f"*/{session_id}.jsonl"))
    return matches[0] if matches else None
