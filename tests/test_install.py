"""Installing trailguard's hooks into Claude Code settings files, and removing them again."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from trailguard.capture.install import (
    EVENTS,
    TOOL_EVENTS,
    InstallError,
    InstallResult,
    default_hook_command,
    install,
    is_trailguard_command,
    settings_path,
    trailguard_hooks,
    uninstall,
)

GATEWAY = "http://127.0.0.1:8787"
HTTP_HOOK = {
    "type": "http",
    "url": "http://127.0.0.1:8787/hooks/claude-code",
    "headers": {"Authorization": "Bearer $TRAILGUARD_TOKEN"},
    "allowedEnvVars": ["TRAILGUARD_TOKEN"],
    "onFailure": "block",
    "timeout": 30,
}

EXPECTED_EVENTS = [
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "PermissionDenied",
    "SubagentStart",
    "SubagentStop",
    "Stop",
    "StopFailure",
    "PreCompact",
    "PostCompact",
    "Notification",
    "ConfigChange",
    "UserPromptExpansion",
    "InstructionsLoaded",
    "CwdChanged",
    "DirectoryAdded",
    "WorktreeCreate",
    "WorktreeRemove",
    "TaskCreated",
    "TaskCompleted",
    "Elicitation",
    "ElicitationResult",
    "PreModelSwitch",
    "PostModelSwitch",
    "PreSkillShellCommand",
]
EXPECTED_TOOL_EVENTS = {
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "PermissionDenied",
}

# A user's settings as Claude Code and people write them: other settings around "hooks", and
# hooks of their own in events trailguard also uses (with and without matchers) and one it
# does not use.
USER_SETTINGS: dict[str, Any] = {
    "$schema": "https://json.schemastore.org/claude-code-settings.json",
    "permissions": {
        "allow": ["Bash(npm run test:*)", "Read(~/.zshrc)"],
        "deny": ["Bash(curl:*)", "Read(./.env)"],
    },
    "env": {"FOO": "bar", "NODE_ENV": "development"},
    "hooks": {
        "PreToolUse": [
            {
                "matcher": "Bash",
                "hooks": [{"type": "command", "command": "~/bin/check-bash.sh", "timeout": 5}],
            },
            {
                "matcher": "*",
                "hooks": [
                    {"type": "command", "command": "audit-local"},
                    # Not the gateway endpoint, so not trailguard's.
                    {"type": "http", "url": "https://ci.example.com/claude-code/hooks"},
                ],
            },
        ],
        "FileChanged": [{"hooks": [{"type": "command", "command": "make lint"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
    },
    "model": "claude-sonnet-4-5",
    "includeCoAuthoredBy": False,
}


def write_json(path: Path, data: Any) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    content = (json.dumps(data, indent=2) + "\n").encode()
    path.write_bytes(content)
    return content


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def trailguard_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The groups holding a hook trailguard wrote (by URL or command), for assertions."""
    return [
        g
        for g in groups
        if any(h.get("url", "").endswith("/hooks/claude-code") for h in g["hooks"])
        or any("trailguard hook" in h.get("command", "") for h in g["hooks"])
    ]


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    return tmp_path / "proj" / ".claude" / "settings.json"


# --- layouts -----------------------------------------------------------------------------------


def test_event_lists_are_the_documented_ones() -> None:
    assert list(EVENTS) == EXPECTED_EVENTS
    assert set(TOOL_EVENTS) == EXPECTED_TOOL_EVENTS


def test_http_layout_exactly() -> None:
    section = trailguard_hooks(GATEWAY + "/", "http")
    assert list(section) == EXPECTED_EVENTS
    for event, groups in section.items():
        if event in ("SessionStart", "ConfigChange"):
            # Claude Code does not call SessionStart HTTP hooks, and both need the local
            # machine (ConfigChange reads the settings files again): command hooks.
            assert groups == [
                {
                    "hooks": [
                        {
                            "type": "command",
                            "command": f"trailguard hook --gateway {GATEWAY}",
                            "timeout": 30,
                        }
                    ]
                }
            ]
        elif event in EXPECTED_TOOL_EVENTS:
            assert groups == [{"matcher": "*", "hooks": [HTTP_HOOK]}], event
            assert list(groups[0]) == ["matcher", "hooks"]
        else:
            assert groups == [{"hooks": [HTTP_HOOK]}], event
    # The key order of the hook dict is part of the file's stable bytes.
    assert list(section["Stop"][0]["hooks"][0]) == list(HTTP_HOOK)


def test_command_layout_exactly() -> None:
    section = trailguard_hooks(GATEWAY, "command", hook_command="/opt/tg/bin/trailguard hook")
    hook = {
        "type": "command",
        "command": f"/opt/tg/bin/trailguard hook --gateway {GATEWAY}",
        "timeout": 30,
        "onFailure": "block",
    }
    assert list(section) == EXPECTED_EVENTS
    for event, groups in section.items():
        if event in EXPECTED_TOOL_EVENTS:
            assert groups == [{"matcher": "*", "hooks": [hook]}], event
        else:
            assert groups == [{"hooks": [hook]}], event


def test_hooks_section_is_fresh_each_call() -> None:
    first = trailguard_hooks(GATEWAY, "http")
    first["Stop"][0]["hooks"][0]["url"] = "mutated"
    first["PreToolUse"][0]["hooks"][0]["allowedEnvVars"].append("X")
    assert trailguard_hooks(GATEWAY, "http")["Stop"][0]["hooks"][0] == HTTP_HOOK
    assert trailguard_hooks(GATEWAY, "http")["PreToolUse"][0]["hooks"][0] == HTTP_HOOK


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8787", "http://127.0.0.1:8787/hooks/claude-code"),
        ("http://127.0.0.1:8787/", "http://127.0.0.1:8787/hooks/claude-code"),
        ("https://audit.example.com", "https://audit.example.com/hooks/claude-code"),
        (
            "https://example.com:8443/trailguard/",
            "https://example.com:8443/trailguard/hooks/claude-code",
        ),
        ("http://[::1]:8787", "http://[::1]:8787/hooks/claude-code"),
    ],
)
def test_gateway_url_normalised(given: str, expected: str) -> None:
    assert trailguard_hooks(given, "http")["Stop"][0]["hooks"][0]["url"] == expected


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("ftp://127.0.0.1:8787", "http://"),
        ("127.0.0.1:8787", "http://"),
        ("file:///etc/passwd", "http://"),
        ("", "empty"),
        ("http://", "no host"),
        ("http://127.0.0.1:99999", "port"),
        ("http://user:secret@127.0.0.1:8787", "credentials"),
        ("http://127.0.0.1:8787/?x=1", "query"),
        ("http://127.0.0.1:8787/#frag", "query or fragment"),
        ("http://127.0.0.1:8787/hooks/claude-code", "base URL"),
        ("http://127.0.0.1: 8787", "whitespace"),
    ],
)
def test_gateway_url_refused(bad: str, says: str, settings: Path) -> None:
    with pytest.raises(InstallError, match=says):
        install(settings, bad)
    assert not settings.exists()


def test_hook_command_that_uninstall_could_not_find_is_refused(settings: Path) -> None:
    with pytest.raises(InstallError, match="does not run 'trailguard hook'"):
        install(settings, GATEWAY, "command", hook_command="/usr/local/bin/my-audit")
    with pytest.raises(InstallError, match="empty"):
        install(settings, GATEWAY, "command", hook_command="  ")
    assert not settings.exists()


def test_unknown_mode_refused(settings: Path) -> None:
    with pytest.raises(InstallError, match="mode"):
        install(settings, GATEWAY, "grpc")  # type: ignore[arg-type]
    assert not settings.exists()


@pytest.mark.parametrize(
    ("command", "ours"),
    [
        ("trailguard hook", True),
        ("trailguard hook --verbose", True),
        ("/opt/tg/bin/trailguard hook", True),
        ("'/opt/my venv/bin/trailguard' hook", True),
        ("TRAILGUARD_URL=http://gw:8787 trailguard hook", True),
        ("/opt/tg/bin/python3 -m trailguard hook", True),
        ("/opt/tg/bin/python3 -I -S -m trailguard hook", True),
        ("/opt/tg/bin/python3 -I -S /opt/tg/lib/site-packages/trailguard/__main__.py hook", True),
        ("'/opt/my venv/bin/python' -IS '/opt/my venv/src/trailguard/__main__.py' hook", True),
        ("/opt/tg/bin/python3 /opt/tg/lib/trailguard/__main__.py verify", False),
        ("/opt/tg/bin/python3 /opt/tg/lib/nottrailguard/__main__.py hook", False),
        ("/opt/tg/bin/python3 -c 'import trailguard' -m trailguard hook", False),
        ("trailguard hooks", False),
        ("trailguard", False),
        ("trailguard verify", False),
        ("echo trailguard hook", False),
        ("not-trailguard hook", False),
        ("~/bin/check-bash.sh", False),
        ("trailguard hook 'unbalanced", False),
    ],
)
def test_trailguard_command_recognised(command: str, ours: bool) -> None:
    assert is_trailguard_command(command) is ours


# --- paths -------------------------------------------------------------------------------------


def test_settings_paths(tmp_path: Path) -> None:
    assert settings_path("project", project_dir=tmp_path) == tmp_path / ".claude/settings.json"
    assert settings_path("user", home=tmp_path) == tmp_path / ".claude/settings.json"
    assert settings_path("user") == Path.home() / ".claude/settings.json"
    assert settings_path("managed") == Path("/etc/claude-code/managed-settings.json")
    with pytest.raises(InstallError, match="scope"):
        settings_path("global")  # type: ignore[arg-type]


def test_project_install_creates_claude_dir(tmp_path: Path) -> None:
    path = settings_path("project", project_dir=tmp_path)
    assert not (tmp_path / ".claude").exists()
    result = install(path, GATEWAY)
    assert result == InstallResult(path=path, changed=True, added=EXPECTED_EVENTS, removed=[])
    assert (tmp_path / ".claude").is_dir()
    content = path.read_bytes()
    assert content.endswith(b"}\n")
    assert (
        content
        == (json.dumps({"hooks": trailguard_hooks(GATEWAY, "http")}, indent=2) + "\n").encode()
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # No temporary files left behind.
    assert sorted(p.name for p in (tmp_path / ".claude").iterdir()) == ["settings.json"]


# --- idempotence and preservation -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["http", "command"])
def test_install_twice_is_byte_identical(settings: Path, mode: str) -> None:
    write_json(settings, USER_SETTINGS)
    first = install(settings, GATEWAY, mode)  # type: ignore[arg-type]
    after_first = settings.read_bytes()
    inode = settings.stat().st_ino
    second = install(settings, GATEWAY, mode)  # type: ignore[arg-type]
    assert first.changed
    assert second == InstallResult(path=settings, changed=False, added=[], removed=[])
    assert settings.read_bytes() == after_first
    assert settings.stat().st_ino == inode  # not rewritten (an atomic write makes a new inode)


def test_user_settings_and_hooks_kept_across_install_reinstall_uninstall(settings: Path) -> None:
    original = write_json(settings, USER_SETTINGS)

    install(settings, GATEWAY)
    data = read_json(settings)
    # Every other setting is untouched and in its place.
    assert list(data) == list(USER_SETTINGS)
    for key in ("$schema", "permissions", "env", "model", "includeCoAuthoredBy"):
        assert data[key] == USER_SETTINGS[key]
    assert list(data["permissions"]["allow"]) == USER_SETTINGS["permissions"]["allow"]
    assert list(data["permissions"]["deny"]) == USER_SETTINGS["permissions"]["deny"]
    # The user's events keep their place, trailguard's new ones follow.
    assert list(data["hooks"]) == ["PreToolUse", "FileChanged", "Stop"] + [
        e for e in EXPECTED_EVENTS if e not in ("PreToolUse", "Stop")
    ]
    # User groups first and unchanged; trailguard's group appended separately.
    pre = data["hooks"]["PreToolUse"]
    assert pre[:2] == USER_SETTINGS["hooks"]["PreToolUse"]
    assert pre[2:] == [{"matcher": "*", "hooks": [HTTP_HOOK]}]
    assert data["hooks"]["Stop"] == [*USER_SETTINGS["hooks"]["Stop"], {"hooks": [HTTP_HOOK]}]
    assert data["hooks"]["FileChanged"] == USER_SETTINGS["hooks"]["FileChanged"]

    # Reinstall with a new URL and mode: trailguard's entries replaced, no duplicates.
    result = install(settings, "https://audit.example.com", "command")
    assert result.changed
    # Every event changes (SessionStart's command hook gains onFailure in command mode); the
    # lists follow the file's event order.
    file_order = ["PreToolUse", "Stop"] + [
        e for e in EXPECTED_EVENTS if e not in ("PreToolUse", "Stop")
    ]
    assert result.added == file_order
    assert result.removed == file_order
    data = read_json(settings)
    assert list(data) == list(USER_SETTINGS)
    text = settings.read_text()
    assert "127.0.0.1:8787" not in text
    for event in EXPECTED_EVENTS:
        mine = trailguard_groups(data["hooks"][event])
        assert len(mine) == 1, event
        assert mine[0]["hooks"] == [
            {
                "type": "command",
                "command": "trailguard hook --gateway https://audit.example.com",
                "timeout": 30,
                "onFailure": "block",
            }
        ]
    assert data["hooks"]["PreToolUse"][:2] == USER_SETTINGS["hooks"]["PreToolUse"]
    assert data["hooks"]["Stop"][0] == USER_SETTINGS["hooks"]["Stop"][0]

    # Uninstall: the user's file comes back byte for byte.
    result = uninstall(settings)
    assert result.changed
    assert result.added == []
    assert set(result.removed) == set(EXPECTED_EVENTS)
    assert read_json(settings) == USER_SETTINGS
    assert settings.read_bytes() == original


def test_reinstall_with_new_url_replaces_only_url(settings: Path) -> None:
    install(settings, GATEWAY)
    result = install(settings, "https://gw.example.com:9443")
    assert result.changed
    # Every hook changes, SessionStart's command hook too: it names the gateway it reports to.
    assert result.added == result.removed == EXPECTED_EVENTS
    start = read_json(settings)["hooks"]["SessionStart"]
    assert trailguard_groups(start)[0]["hooks"][0]["command"] == (
        "trailguard hook --gateway https://gw.example.com:9443"
    )
    data = read_json(settings)
    assert list(data["hooks"]) == EXPECTED_EVENTS
    for event in [e for e in EXPECTED_EVENTS if e not in ("SessionStart", "ConfigChange")]:
        groups = data["hooks"][event]
        assert len(groups) == 1
        assert groups[0]["hooks"][0]["url"] == "https://gw.example.com:9443/hooks/claude-code"


def test_trailguard_hook_mixed_into_user_group_is_taken_out(settings: Path) -> None:
    user = {
        "hooks": {
            "PreToolUse": [
                {
                    "matcher": "Bash",
                    "hooks": [
                        {"type": "command", "command": "~/bin/check-bash.sh"},
                        {"type": "command", "command": "/old/venv/bin/trailguard hook"},
                    ],
                }
            ]
        }
    }
    write_json(settings, user)
    install(settings, GATEWAY)
    pre = read_json(settings)["hooks"]["PreToolUse"]
    assert pre == [
        {"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/check-bash.sh"}]},
        {"matcher": "*", "hooks": [HTTP_HOOK]},
    ]


def test_events_trailguard_no_longer_uses_are_cleaned_on_reinstall(settings: Path) -> None:
    # As an older trailguard might have written it: an event outside today's list.
    old = {"hooks": {"TeammateIdle": [{"hooks": [dict(HTTP_HOOK)]}], "Stop": []}}
    write_json(settings, old)
    result = install(settings, GATEWAY)
    data = read_json(settings)
    assert "TeammateIdle" not in data["hooks"]
    assert "TeammateIdle" in result.removed
    # The user's own empty list is theirs: kept (and trailguard's group appended).
    assert data["hooks"]["Stop"] == [{"hooks": [HTTP_HOOK]}]


# --- uninstall ---------------------------------------------------------------------------------


def test_uninstall_without_trailguard_entries_is_a_noop(settings: Path) -> None:
    # Compact formatting: a rewrite would show.
    content = json.dumps(USER_SETTINGS).encode()
    settings.parent.mkdir(parents=True)
    settings.write_bytes(content)
    inode = settings.stat().st_ino
    assert uninstall(settings) == InstallResult(path=settings, changed=False, added=[], removed=[])
    assert settings.read_bytes() == content
    assert settings.stat().st_ino == inode


def test_uninstall_of_missing_file(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.json"
    assert uninstall(path) == InstallResult(path=path, changed=False, added=[], removed=[])
    assert not path.exists()
    assert not path.parent.exists()


def test_uninstall_recognises_command_by_path(settings: Path) -> None:
    user_hook = {"type": "command", "command": "echo trailguard hook"}
    write_json(
        settings,
        {
            "model": "opus",
            "hooks": {
                "SessionStart": [
                    {"hooks": [user_hook]},
                    {"hooks": [{"type": "command", "command": "/opt/tg/bin/trailguard hook"}]},
                ],
                "PreToolUse": [
                    {
                        "matcher": "*",
                        "hooks": [
                            {
                                "type": "command",
                                "command": "/opt/tg/bin/trailguard hook",
                                "onFailure": "block",
                            }
                        ],
                    }
                ],
            },
        },
    )
    result = uninstall(settings)
    assert result.changed
    assert result.removed == ["SessionStart", "PreToolUse"]
    assert read_json(settings) == {
        "model": "opus",
        "hooks": {"SessionStart": [{"hooks": [user_hook]}]},
    }


def test_uninstall_drops_empty_hooks_object(settings: Path) -> None:
    install(settings, GATEWAY, "command", hook_command="/opt/tg/bin/trailguard hook")
    data = read_json(settings)
    data["model"] = "opus"
    write_json(settings, data)
    uninstall(settings)
    assert read_json(settings) == {"model": "opus"}
    assert uninstall(settings).changed is False


def test_install_after_path_change_replaces_old_command(settings: Path) -> None:
    install(settings, GATEWAY, "command", hook_command="/opt/old/bin/trailguard hook")
    install(settings, GATEWAY, "command", hook_command="/opt/new/bin/trailguard hook")
    text = settings.read_text()
    assert "/opt/old/" not in text
    assert text.count("/opt/new/bin/trailguard hook") == len(EXPECTED_EVENTS)


# --- managed scope -----------------------------------------------------------------------------


def test_managed_with_allow_managed_hooks_only(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "claude-code" / "managed-settings.json"
    write_json(path, {"permissions": {"deny": ["Bash(rm:*)"]}})
    result = install(path, GATEWAY, allow_managed_hooks_only=True)
    assert result.changed
    assert "allowManagedHooksOnly" in result.added
    data = read_json(path)
    assert list(data) == ["permissions", "hooks", "allowManagedHooksOnly"]
    assert data["allowManagedHooksOnly"] is True
    assert data["permissions"] == {"deny": ["Bash(rm:*)"]}
    # Idempotent here too.
    before = path.read_bytes()
    assert not install(path, GATEWAY, allow_managed_hooks_only=True).changed
    assert path.read_bytes() == before
    # Uninstall leaves the administrator's policy switch alone.
    uninstall(path)
    assert read_json(path) == {
        "permissions": {"deny": ["Bash(rm:*)"]},
        "allowManagedHooksOnly": True,
    }


def test_managed_flag_without_explicit_true_is_not_added(tmp_path: Path) -> None:
    path = tmp_path / "managed-settings.json"
    install(path, GATEWAY)
    assert "allowManagedHooksOnly" not in read_json(path)


def test_allow_managed_hooks_only_refused_outside_managed(settings: Path) -> None:
    original = write_json(settings, USER_SETTINGS)
    with pytest.raises(InstallError, match="managed"):
        install(settings, GATEWAY, allow_managed_hooks_only=True)
    assert settings.read_bytes() == original


# --- bad files are left alone ------------------------------------------------------------------


def test_invalid_json_left_byte_identical_and_error_names_line(settings: Path) -> None:
    bad = b'{\n  "model": "opus",\n  "env": {"A": "b",}\n}\n'
    settings.parent.mkdir(parents=True)
    settings.write_bytes(bad)
    with pytest.raises(InstallError) as installing:
        install(settings, GATEWAY)
    with pytest.raises(InstallError) as uninstalling:
        uninstall(settings)
    for info in (installing, uninstalling):
        message = str(info.value)
        assert str(settings) in message
        assert "line 3" in message
        assert "column" in message
    assert settings.read_bytes() == bad
    assert sorted(p.name for p in settings.parent.iterdir()) == ["settings.json"]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ([1, 2], "top level must be a JSON object"),
        ("settings", "top level must be a JSON object"),
        ({"hooks": []}, '"hooks" must be an object'),
        ({"hooks": None}, '"hooks" must be an object'),
        ({"hooks": {"PreToolUse": {"matcher": "*"}}}, "hooks.PreToolUse must be an array"),
        ({"hooks": {"Stop": ["x"]}}, r"hooks.Stop\[0\] must be an object"),
        ({"hooks": {"Stop": [{"hooks": {}}]}}, r"hooks.Stop\[0\].hooks must be an array"),
    ],
)
def test_wrong_shapes_refused_file_untouched(settings: Path, data: Any, says: str) -> None:
    original = write_json(settings, data)
    with pytest.raises(InstallError, match=says):
        install(settings, GATEWAY)
    with pytest.raises(InstallError, match=says):
        uninstall(settings)
    assert settings.read_bytes() == original


def test_nan_is_refused(settings: Path) -> None:
    settings.parent.mkdir(parents=True)
    settings.write_bytes(b'{"x": NaN}')
    with pytest.raises(InstallError, match="NaN"):
        install(settings, GATEWAY)
    assert settings.read_bytes() == b'{"x": NaN}'


def test_empty_file_counts_as_empty_settings(settings: Path) -> None:
    settings.parent.mkdir(parents=True)
    settings.write_bytes(b"\n")
    assert install(settings, GATEWAY).changed
    assert list(read_json(settings)) == ["hooks"]


# --- file mode and atomic write ---------------------------------------------------------------


def test_file_mode_preserved(settings: Path) -> None:
    write_json(settings, USER_SETTINGS)
    settings.chmod(0o640)
    install(settings, GATEWAY)
    assert stat.S_IMODE(settings.stat().st_mode) == 0o640
    install(settings, "https://other.example.com")
    assert stat.S_IMODE(settings.stat().st_mode) == 0o640
    uninstall(settings)
    assert stat.S_IMODE(settings.stat().st_mode) == 0o640


def test_new_file_mode_ignores_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = tmp_path / "managed-settings.json"
        install(path, GATEWAY)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_symlinked_settings_file_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "claude-settings.json"
    original = write_json(real, USER_SETTINGS)
    link = tmp_path / "home" / ".claude" / "settings.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    install(link, GATEWAY)
    assert link.is_symlink()
    assert "hooks" in read_json(real)
    uninstall(link)
    assert link.is_symlink()
    assert real.read_bytes() == original


def test_write_failure_leaves_file_and_no_temp(
    settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = write_json(settings, USER_SETTINGS)

    def fail_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(InstallError, match="No space left"):
        install(settings, GATEWAY)
    assert settings.read_bytes() == original
    assert sorted(p.name for p in settings.parent.iterdir()) == ["settings.json"]


def test_the_default_command_hook_starts_without_site_and_answers(tmp_path: Path) -> None:
    """What ``trailguard install`` writes by default: this interpreter with -I -S running
    trailguard/__main__.py; it finds its package itself, whatever PYTHONPATH says."""
    command = default_hook_command()
    assert is_trailguard_command(command)
    assert shlex.split(command)[1:3] == ["-I", "-S"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(tmp_path / "nowhere"),
        "TRAILGUARD_URL": "http://127.0.0.1:9",  # the discard port: nothing listens
        "TRAILGUARD_SPOOL_DIR": str(tmp_path / "spool"),
    }
    shown = subprocess.run(
        f"{command} --help", shell=True, capture_output=True, text=True, env=env, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Usage: trailguard hook")
    payload = {"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": "Bash"}
    ran = subprocess.run(
        command,
        shell=True,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)["hookSpecificOutput"]
    assert answer["permissionDecision"] == "deny"
    assert "unreachable" in answer["permissionDecisionReason"]
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1
