"""A realistic record for the console's tests, made through the real hook route: three
developers' sessions with allowed, denied and asked calls, infrastructure operations, model
spend, a subagent, a gap, agent-controlled markup (XSS payloads) in inputs, outputs, prompts,
tool names and a session id, and an ended, an active and a never-started session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Post = Callable[[str, dict[str, Any]], Any]
"""Posts one hook payload with a token; returns the response (it must be a 2xx)."""

XSS_SCRIPT = "<script>document.title='pwned-script'</script>"
XSS_IMG = "<img src=x onerror=\"document.title='pwned-img'\">"
XSS_SVG = "<svg onload=\"document.title='pwned-svg'\"></svg>"
XSS_SESSION = "<script>document.title='pwned-sid'</script>"
ALICE_SESSION = "ae1e1885-0000-4000-8000-00000000a001"
BOB_SESSION = "ae1e1885-0000-4000-8000-00000000b002"
CAROL_SESSION = "ae1e1885-0000-4000-8000-00000000c003"
ORPHAN_SESSION = "ae1e1885-0000-4000-8000-00000000d004"


@dataclass
class Seeded:
    sessions: dict[str, str] = field(default_factory=dict)
    """name -> session id."""
    denied_tool_use: str = "toolu_alice_push"
    infra_tool_use: str = "toolu_alice_s3"
    gap_tool_use: str = "toolu_bob_gap"


def _usage(message: str, tool_use_ids: list[str], inputs: int, outputs: int) -> dict[str, Any]:
    return {
        "usage": [
            {
                "messageId": message,
                "model": "claude-opus-5-5",
                "usage": {
                    "input_tokens": inputs,
                    "output_tokens": outputs,
                    "cache_read_input_tokens": 1500,
                },
                "toolUseIds": tool_use_ids,
            }
        ]
    }


def _start(session: str, remote: str, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "hook_event_name": "SessionStart",
        "source": "startup",
        "cwd": "/home/dev/app",
        "trailguard": {
            "context": {
                "osUser": "dev",
                "gitEmail": "dev@example.invalid",
                "hostname": "laptop-1",
                "gitRemote": remote,
                "gitBranch": "feature/x",
                "permissionMode": "acceptEdits",
                "permissions": {"allow": ["Bash(git status)"], "deny": ["Read(.env)"]},
                "model": "claude-opus-5-5",
                "agentVersion": "2.1.328",
            },
            **extra,
        },
    }


def _pre(session: str, tool_use_id: str, tool: str, tool_input: Any, **extra: Any) -> dict:
    return {
        "session_id": session,
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": tool_input,
        "tool_use_id": tool_use_id,
        **extra,
    }


def _post(session: str, tool_use_id: str, tool: str, stdout: str, **extra: Any) -> dict:
    return {
        "session_id": session,
        "hook_event_name": "PostToolUse",
        "tool_name": tool,
        "tool_input": {},
        "tool_response": {"stdout": stdout, "stderr": ""},
        "tool_use_id": tool_use_id,
        "duration_ms": 21,
        **extra,
    }


def seed(post: Post, tokens: dict[str, str]) -> Seeded:
    """Record the scenario with ``tokens`` (agent tokens of dev_alice, dev_bob, dev_carol)."""
    seeded = Seeded()
    alice, bob, carol = tokens["alice"], tokens["bob"], tokens["carol"]

    # alice: a finished session with an allowed S3 upload to prod and a refused force-push.
    s = seeded.sessions["alice"] = ALICE_SESSION
    post(alice, _start(s, "https://github.com/acme/backend.git"))
    post(alice, {"session_id": s, "hook_event_name": "UserPromptSubmit", "prompt": "ship it"})
    post(alice, _pre(s, "toolu_alice_ls", "Bash", {"command": "ls -la"}))
    post(
        alice,
        _post(s, "toolu_alice_ls", "Bash", "README.md\nsrc\n")
        | {"trailguard": _usage("msg_a1", ["toolu_alice_ls"], 3900, 240)},
    )
    s3 = "aws s3 cp config.json s3://prod-config/app/config.json"
    post(alice, _pre(s, seeded.infra_tool_use, "Bash", {"command": s3}))
    post(
        alice,
        _post(s, seeded.infra_tool_use, "Bash", "upload: ./config.json")
        | {"trailguard": _usage("msg_a2", [seeded.infra_tool_use], 5200, 410)},
    )
    post(alice, _pre(s, seeded.denied_tool_use, "Bash", {"command": "git push -f origin main"}))
    post(
        alice,
        {
            "session_id": s,
            "hook_event_name": "Stop",
            "trailguard": _usage("msg_a3", [seeded.denied_tool_use], 6100, 120),
        },
    )
    post(alice, {"session_id": s, "hook_event_name": "SessionEnd", "reason": "other"})

    # bob: an active session whose agent writes markup everywhere, with a subagent and a gap.
    s = seeded.sessions["bob"] = BOB_SESSION
    post(bob, _start(s, "https://github.com/acme/frontend.git"))
    post(
        bob,
        {"session_id": s, "hook_event_name": "UserPromptSubmit", "prompt": f"hello {XSS_SCRIPT}"},
    )
    post(
        bob,
        _pre(s, "toolu_bob_write", "Write", {"file_path": "/tmp/x.html", "content": XSS_IMG}),
    )
    post(bob, _post(s, "toolu_bob_write", "Write", XSS_SVG))
    post(
        bob,
        {
            "session_id": s,
            "hook_event_name": "SubagentStart",
            "agent_id": "agent_reviewer",
            "agent_type": "code-reviewer",
        },
    )
    post(
        bob,
        _pre(s, "toolu_bob_sub", "Read", {"file_path": "/home/dev/app/README.md"})
        | {"agent_id": "agent_reviewer", "agent_type": "code-reviewer"},
    )
    post(
        bob,
        _post(s, "toolu_bob_sub", "Read", "# readme")
        | {"agent_id": "agent_reviewer", "agent_type": "code-reviewer"},
    )
    post(
        bob,
        _pre(
            s, "toolu_bob_rm", "Bash", {"command": "aws --profile prod s3 rm s3://logs --recursive"}
        ),
    )
    post(bob, _pre(s, seeded.gap_tool_use, "Bash", {"command": f"echo '{XSS_IMG}'"}))
    post(
        bob,
        _pre(s, "toolu_bob_mcp", f"mcp__evil__{'x' * 3}", {"q": XSS_SVG})
        | {"trailguard": _usage("msg_b1", ["toolu_bob_mcp"], 2500, 90)},
    )
    post(bob, _post(s, "toolu_bob_mcp", f"mcp__evil__{'x' * 3}", "ok"))

    # carol: a session whose very id is markup, on another project.
    s = seeded.sessions["carol"] = XSS_SESSION
    post(carol, _start(s, "https://github.com/acme/infra.git"))
    post(carol, _pre(s, "toolu_carol_tf", "Bash", {"command": "terraform destroy -auto-approve"}))
    post(carol, {"session_id": s, "hook_event_name": "SessionEnd", "reason": "other"})

    # events of a session that never started (flagged).
    s = seeded.sessions["orphan"] = ORPHAN_SESSION
    post(carol, _pre(s, "toolu_orphan", "Bash", {"command": "echo hi"}))
    post(carol, _post(s, "toolu_orphan", "Bash", "hi"))
    return seeded
