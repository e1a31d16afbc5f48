"""What the developer's machine claims about a new session (SessionStart only).

OS user, host name, git identity, remote and branch (run in parallel under one deadline), the
permission rules and trailguard hooks of the settings files, and the session id written to
``$CLAUDE_ENV_FILE`` for later Bash commands. Recorded by the gateway, never trusted.
"""

from __future__ import annotations

import os
import socket
import time

from trailguard.capture.hook_client.settings import read_hook_config, read_permissions
from trailguard.capture.hook_client.support import describe_exception

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    Json = dict[str, Any]

GIT_TIMEOUT_SECONDS = 2.0


def strip_credentials(url: str) -> str:
    """A git remote URL without credentials: ``https://user:pw@host/x`` → ``https://host/x``.

    For URLs with a scheme the whole userinfo goes (a token is often the user name alone), and
    so do the query and fragment. scp-like ``git@host:path`` keeps a plain user name (it is not a
    secret) but loses a ``user:password@`` part."""
    if "://" in url:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    user, at, rest = url.partition("@")
    if at and ":" in user and "/" not in user:
        return rest
    return url


def _run_git_commands(cwd: str, environ: Mapping[str, str]) -> dict[str, str | None]:
    """git's email, origin URL and branch in ``cwd``, run in parallel under one 2 s deadline.
    A missing git, a non-repository, a hung command: None for that value, never an exception."""
    import subprocess

    commands = {
        "gitEmail": ["git", "config", "user.email"],
        "gitRemote": ["git", "config", "--get", "remote.origin.url"],
        "gitBranch": ["git", "rev-parse", "--abbrev-ref", "HEAD"],
    }
    env = dict(environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_OPTIONAL_LOCKS"] = "0"
    results: dict[str, str | None] = dict.fromkeys(commands)
    running: dict[str, subprocess.Popen[bytes]] = {}
    for key, argv in commands.items():
        try:
            running[key] = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except (OSError, ValueError):
            continue
    deadline = time.monotonic() + GIT_TIMEOUT_SECONDS
    for key, process in running.items():
        try:
            out, _ = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            continue
        except OSError:
            continue
        if process.returncode == 0:
            value = out.decode("utf-8", "replace").strip()
            results[key] = value or None
    return results


def collect_context(payload: Json, environ: Mapping[str, str]) -> Json:
    """What the machine claims about the session (recorded by the gateway, never trusted)."""
    import getpass

    context: Json = {}
    try:
        context["osUser"] = getpass.getuser()
    except Exception:  # getuser raises OSError or KeyError when there is no user name
        context["osUser"] = None
    try:
        context["hostname"] = socket.gethostname()
    except OSError:
        context["hostname"] = None
    cwd = payload.get("cwd")
    cwd = cwd if isinstance(cwd, str) and os.path.isdir(cwd) else None
    git: dict[str, str | None] = dict.fromkeys(("gitEmail", "gitRemote", "gitBranch"))
    if cwd is not None:
        git = _run_git_commands(cwd, environ)
    remote = git["gitRemote"]
    context["gitEmail"] = git["gitEmail"]
    context["gitRemote"] = strip_credentials(remote) if remote else None
    context["gitBranch"] = git["gitBranch"]
    mode = payload.get("permission_mode")
    context["permissionMode"] = mode if isinstance(mode, str) else None
    permissions, settings_model = read_permissions(cwd, environ)
    context["permissions"] = permissions
    model = payload.get("model")
    context["model"] = model if isinstance(model, str) else settings_model
    version = payload.get("version")
    context["agentVersion"] = version if isinstance(version, str) else None
    try:
        context["hooks"] = read_hook_config(cwd, environ)
    except Exception as exc:  # a claim: never worth the event
        context["hooks"] = {"error": describe_exception(exc)}
    return context


def write_env_file(path: str, session_id: str) -> None:
    """Append the session's exports to ``$CLAUDE_ENV_FILE`` (read by every later Bash command).

    ``AWS_SDK_UA_APP_ID`` puts the session id in the User-Agent AWS SDKs send, so CloudTrail
    records it (AWS caps it at 50 characters; ``trailguard-`` + a UUID is 47)."""
    import shlex

    lines = (
        f"export TRAILGUARD_SESSION_ID={shlex.quote(session_id)}\n"
        f"export AWS_SDK_UA_APP_ID={shlex.quote('trailguard-' + session_id)}\n"
    )
    with open(path, "a+b") as handle:
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                lines = "\n" + lines
        handle.write(lines.encode("utf-8"))
