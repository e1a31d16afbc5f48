"""Cedar decisions: the default pack, ask vs deny, allow-list mode, teams, versions, reloads."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from trailguard.events import Operation
from trailguard.policy.engine import NO_PERMIT_RULE, DecisionRequest, decide
from trailguard.policy.loader import PolicyError, check_policy_directory, load_policy_set
from trailguard.policy.store import PolicyStore

DEFAULT = load_policy_set()
ALLOWLIST = load_policy_set(
    Path(__import__("trailguard.policy").policy.__file__).parent / "allowlist"
)


def op(
    kind: str,
    action: str,
    access: str = "write",
    *,
    resource: str = "r",
    risk: str = "medium",
    flags: tuple[str, ...] = (),
    **attributes: str,
) -> Operation:
    return Operation(
        kind=kind,
        action=action,
        resource=resource,
        access=access,
        risk=risk,
        flags=list(flags),
        attributes=attributes,
    )


def decision(*operations: Operation, policy=DEFAULT, developer: str = "dev_jordan", tool="Bash"):
    return decide(policy, DecisionRequest(developer_id=developer, tool=tool, operations=operations))


@pytest.mark.parametrize(
    ("operation", "rule"),
    [
        (op("git", "git:Push", flags=("force",), branch="main"), "no-force-push-to-main"),
        (op("git", "git:Push", flags=("delete",), branch="master"), "no-force-push-to-main"),
        (op("git", "git:DeleteBranch", "delete", branch="main"), "no-delete-main-branch"),
        (
            op("file", "file:Write", flags=("sensitive",), resource="/p/.env", sensitive="dotenv"),
            "no-writing-secrets",
        ),
        (
            op("file", "file:Delete", "delete", flags=("sensitive",), sensitive="ssh-key"),
            "no-writing-secrets",
        ),
        (
            op("file", "file:Read", "read", flags=("sensitive",), sensitive="cloud-credentials"),
            "no-reading-cloud-credentials",
        ),
        (
            op("terraform", "terraform:Destroy", "delete", flags=("prod",)),
            "no-terraform-destroy-prod",
        ),
        (
            op("terraform", "terraform:Apply", flags=("prod", "auto-approve")),
            "no-terraform-destroy-prod",
        ),
        (
            op("aws", "ec2:TerminateInstances", "delete", flags=("prod-profile",)),
            "no-aws-destructive-in-prod",
        ),
        (
            op("aws", "iam:AttachRolePolicy", "admin", flags=("prod-profile",)),
            "no-aws-destructive-in-prod",
        ),
        (op("sql", "sql:Drop", "delete"), "no-drop-or-truncate"),
        (op("sql", "sql:Truncate", "delete"), "no-drop-or-truncate"),
        (op("sql", "sql:Delete", "delete", flags=("unbounded",)), "no-unbounded-delete"),
        (op("shell", "shell:ExecuteDownloaded", "admin"), "no-download-to-shell"),
        (
            op("file", "file:Delete", "delete", flags=("recursive", "catastrophic-delete")),
            "no-catastrophic-delete",
        ),
    ],
)
def test_default_pack_forbids_the_dangerous_operations_by_name(operation, rule):
    result = decision(operation)
    assert result.result == "denied"
    assert result.rule == rule
    assert result.version == DEFAULT.version
    assert len(result.reason) > 20  # a sentence a developer understands


@pytest.mark.parametrize(
    "operation",
    [
        op("git", "git:Push", branch="main"),  # a plain push to main is allowed
        op("git", "git:Push", flags=("force",), branch="feature/x"),
        op("file", "file:Write", resource="/p/src/app.py"),
        op("file", "file:Read", "read", flags=("sensitive",), sensitive="dotenv"),
        op("aws", "ec2:TerminateInstances", "delete"),  # not a prod profile
        op("aws", "s3:GetObject", "read", flags=("prod-profile",)),
        op("sql", "sql:Delete", "delete"),  # bounded
        op("terraform", "terraform:Apply", flags=("auto-approve",)),  # not prod
    ],
)
def test_default_pack_allows_ordinary_work(operation):
    result = decision(operation)
    assert (result.result, result.rule) == ("allowed", "allow-by-default")


def test_unresolved_command_is_ask_not_deny():
    result = decision(op("shell", "shell:Unresolved", "admin", flags=("unresolved",)))
    assert result.result == "ask"
    assert result.rule == "ask-on-unresolved-command"


def test_one_forbidden_operation_denies_the_whole_call_and_deny_beats_ask():
    safe = op("file", "file:Write", resource="/p/readme.md")
    ask = op("shell", "shell:Unresolved", "admin")
    bad = op("sql", "sql:Drop", "delete")
    assert decision(safe, bad).result == "denied"
    mixed = decision(ask, bad)
    assert (mixed.result, mixed.rule) == ("denied", "no-drop-or-truncate")


def test_allow_list_mode_denies_what_no_rule_permits():
    assert decision(op("file", "file:Read", "read"), policy=ALLOWLIST).result == "allowed"
    denied = decision(op("aws", "s3:DeleteObject", "delete", risk="high"), policy=ALLOWLIST)
    assert (denied.result, denied.rule) == ("denied", NO_PERMIT_RULE)
    assert "no rule permits s3:DeleteObject" in denied.reason


def write_pack(directory: Path, body: str, *, name: str = "p.cedar") -> Path:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(body)
    return directory


def test_teams_from_teams_json_are_cedar_parents(tmp_path):
    pack = write_pack(
        tmp_path / "pack",
        '@id("ops-only") permit (principal in Team::"ops", action, resource);',
    )
    (pack / "teams.json").write_text('{"ops": ["dev_ana"]}')
    policy = load_policy_set(pack)
    assert (
        decision(op("aws", "s3:GetObject", "read"), policy=policy, developer="dev_ana").result
        == "allowed"
    )
    assert (
        decision(op("aws", "s3:GetObject", "read"), policy=policy, developer="dev_bob").result
        == "denied"
    )


@pytest.mark.parametrize("developer", ["o'neil", "ana#ops", "ana(contractor)", 'say"hi'])
def test_a_team_rule_holds_for_developer_ids_outside_cedars_plain_alphabet(tmp_path, developer):
    """Token creation accepts any printable id without spaces; the principal of every Cedar
    request must be exactly the entity that carries the developer's teams, or a forbid on the
    team would not apply to them."""
    quoted = developer.replace('"', '\\"')  # a Cedar string literal
    pack = write_pack(
        tmp_path / "pack",
        '@id("allow") permit (principal, action, resource);\n'
        '@id("no-push-for-contractors") forbid (principal in Team::"contractors", '
        'action == Action::"git:Push", resource);\n'
        f'@id("named") forbid (principal == Developer::"{quoted}", '
        'action == Action::"git:DeleteBranch", resource);',
    )
    (pack / "teams.json").write_text(json.dumps({"contractors": [developer]}))
    policy = load_policy_set(pack)
    push = decision(op("git", "git:Push", "write"), policy=policy, developer=developer)
    assert (push.result, push.rule) == ("denied", "no-push-for-contractors")
    delete = decision(op("git", "git:DeleteBranch", "write"), policy=policy, developer=developer)
    assert (delete.result, delete.rule) == ("denied", "named")
    other = decision(op("git", "git:Push", "write"), policy=policy, developer="dev_bob")
    assert other.result == "allowed"


def test_syntax_errors_name_the_file_and_duplicate_ids_are_refused(tmp_path):
    broken = write_pack(tmp_path / "broken", "permit (principal, action, resource) when { ;")
    with pytest.raises(PolicyError, match=r"p\.cedar"):
        load_policy_set(broken)
    assert check_policy_directory(broken)
    twice = write_pack(tmp_path / "twice", '@id("a") permit (principal, action, resource);')
    write_pack(twice, '@id("a") forbid (principal, action, resource);', name="q.cedar")
    with pytest.raises(PolicyError, match="used twice"):
        load_policy_set(twice)
    unnamed = write_pack(tmp_path / "unnamed", "permit (principal, action, resource);")
    assert "no @id annotation" in check_policy_directory(unnamed)[0]


def test_policy_version_is_a_hash_of_the_files(tmp_path):
    pack = write_pack(tmp_path / "pack", '@id("a") permit (principal, action, resource);')
    first = load_policy_set(pack).version
    assert load_policy_set(pack).version == first
    write_pack(pack, '@id("b") permit (principal, action, resource);', name="z.cedar")
    assert load_policy_set(pack).version != first


def test_policies_reload_without_restart_and_a_broken_edit_keeps_the_old_set(tmp_path):
    pack = write_pack(tmp_path / "pack", '@id("a") permit (principal, action, resource);')
    store = PolicyStore(pack)
    before = store.current.version
    assert store.reload_if_changed() is None
    time.sleep(0.01)
    write_pack(
        pack,
        '@id("no-sql") forbid (principal, action == Action::"sql:Select", resource);',
        name="b.cedar",
    )
    os.utime(pack / "b.cedar")
    reload = store.reload_if_changed()
    assert reload is not None
    assert reload.previous_version == before
    assert reload.policy_set is not None
    assert store.current.version != before
    assert (
        decide(
            store.current, DecisionRequest("d", "Bash", [op("sql", "sql:Select", "read")])
        ).result
        == "denied"
    )
    write_pack(pack, "forbid (principal, action, resource) when {", name="c.cedar")
    broken = store.reload_if_changed()
    assert broken is not None
    assert broken.policy_set is None
    assert "c.cedar" in (broken.error or "")
    assert store.current.version == reload.policy_set.version
