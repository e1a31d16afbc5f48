"""The git classifier: every subcommand family, refspecs, protected branches, global options."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redaction_stage import stored_command
from trailguard.classify import git
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import Operation

CTX = ClassifyContext(cwd="/work/proj", home="/home/dev", project_root="/work/proj")


def command(line: str, **kwargs: Any) -> SimpleCommand:
    return SimpleCommand(argv=tuple(shlex.split(line)), text=line, **kwargs)


def check(op: Operation, expected: dict[str, Any]) -> None:
    for key in ("action", "access", "risk", "resource"):
        if key in expected:
            assert getattr(op, key) == expected[key], f"{key}: {getattr(op, key)!r}"
    for flag in expected.get("flags", ()):
        assert flag in op.flags, f"missing flag {flag!r} in {op.flags}"
    for flag in expected.get("no_flags", ()):
        assert flag not in op.flags, f"unexpected flag {flag!r} in {op.flags}"
    for name, value in expected.get("attributes", {}).items():
        assert op.attributes.get(name) == value, f"attribute {name}: {op.attributes}"
    for name in expected.get("no_attributes", ()):
        assert name not in op.attributes, f"unexpected attribute {name}: {op.attributes}"


# (command line, expectations for the operation at "index" (default 0); "count" checks how many)
CASES: list[tuple[str, dict[str, Any]]] = [
    # --- push: branches, refspecs, force, delete
    (
        "git push origin feature",
        {
            "action": "git:Push",
            "access": "write",
            "risk": "medium",
            "resource": "origin/feature",
            "attributes": {"remote": "origin", "branch": "feature"},
            "no_flags": ["force"],
        },
    ),
    (
        "git push origin main",
        {"action": "git:Push", "risk": "high", "attributes": {"branch": "main"}},
    ),
    ("git push origin master", {"risk": "high", "attributes": {"branch": "master"}}),
    (
        "git push origin HEAD:main",
        {
            "risk": "high",
            "attributes": {"branch": "main", "refspec": "HEAD:main"},
            "no_flags": ["current-branch"],
        },
    ),
    ("git push origin refs/heads/main", {"risk": "high", "attributes": {"branch": "main"}}),
    (
        "git push -f origin main",
        {"risk": "critical", "flags": ["force"], "attributes": {"branch": "main"}},
    ),
    ("git push --force origin feature", {"risk": "high", "flags": ["force"]}),
    (
        "git push origin +main",
        {"risk": "critical", "flags": ["force"], "attributes": {"branch": "main"}},
    ),
    (
        "git push origin +feature:feature",
        {"risk": "high", "flags": ["force"], "attributes": {"branch": "feature"}},
    ),
    (
        "git push --force-with-lease origin feature",
        {"risk": "medium", "flags": ["force-with-lease"], "no_flags": ["force"]},
    ),
    (
        "git push --force-with-lease=main:abc123 origin main",
        {"risk": "critical", "flags": ["force-with-lease"]},
    ),
    ("git push -fu origin main", {"risk": "critical", "flags": ["force", "set-upstream"]}),
    (
        "git push origin :main",
        {
            "access": "delete",
            "risk": "critical",
            "flags": ["delete"],
            "attributes": {"branch": "main"},
        },
    ),
    ("git push origin :feature", {"access": "delete", "risk": "medium", "flags": ["delete"]}),
    (
        "git push origin --delete main",
        {
            "access": "delete",
            "risk": "critical",
            "flags": ["delete"],
            "attributes": {"branch": "main"},
        },
    ),
    (
        "git push -d origin old-branch",
        {
            "access": "delete",
            "flags": ["delete"],
            "attributes": {"branch": "old-branch", "remote": "origin"},
        },
    ),
    ("git push", {"risk": "medium", "flags": ["current-branch"], "no_attributes": ["branch"]}),
    ("git push -f", {"risk": "high", "flags": ["force", "current-branch"]}),
    (
        "git push --mirror backup",
        {
            "access": "delete",
            "risk": "critical",
            "flags": ["mirror"],
            "no_flags": ["current-branch"],
        },
    ),
    ("git push --all origin", {"risk": "high", "flags": ["all"]}),
    ("git push --tags origin", {"risk": "medium", "flags": ["tags"]}),
    (
        "git push origin refs/tags/v1.0",
        {"attributes": {"tag": "v1.0"}, "no_attributes": ["branch"]},
    ),
    ("git push --prune origin", {"access": "delete", "risk": "high", "flags": ["prune"]}),
    ("git push -n -f origin main", {"risk": "low", "flags": ["dry-run", "force"]}),
    ("git push --no-verify origin feature", {"risk": "medium", "flags": ["no-verify"]}),
    (
        "git push origin main feature",
        {"count": 2, "index": 1, "attributes": {"branch": "feature"}, "risk": "medium"},
    ),
    (
        "git push https://bob:hunter2pass@github.com/acme/app.git main",
        {
            "attributes": {"remote": "https://github.com/acme/app.git", "branch": "main"},
            "resource": "https://github.com/acme/app.git/main",
        },
    ),
    # --- global options
    (
        "git -C ../other push origin master",
        {"action": "git:Push", "risk": "high", "attributes": {"repo": "/work/other"}},
    ),
    ("git -C sub status", {"action": "git:Read", "resource": "/work/proj/sub"}),
    (
        "git -c user.name=x commit -m msg",
        {"action": "git:Commit", "risk": "low", "attributes": {"config_overrides": "user.name=x"}},
    ),
    (
        "git -c core.hooksPath=/dev/null commit -m msg",
        {"action": "git:Commit", "risk": "medium", "flags": ["no-verify", "config-override"]},
    ),
    ("git --no-pager log --oneline", {"action": "git:Read", "access": "read"}),
    ("git --git-dir=/srv/repo/.git status", {"resource": "/srv/repo"}),
    # --- reset, clean
    (
        "git reset --hard",
        {
            "action": "git:ResetHard",
            "access": "delete",
            "risk": "high",
            "attributes": {"target": "HEAD"},
        },
    ),
    (
        "git reset --hard origin/main",
        {"action": "git:ResetHard", "attributes": {"target": "origin/main"}},
    ),
    (
        "git reset HEAD~1",
        {"action": "git:Reset", "access": "write", "risk": "low", "attributes": {"mode": "mixed"}},
    ),
    ("git reset --soft HEAD~1", {"action": "git:Reset", "attributes": {"mode": "soft"}}),
    (
        "git clean -f",
        {"action": "git:Clean", "access": "delete", "risk": "high", "flags": ["force"]},
    ),
    ("git clean -fd", {"action": "git:Clean", "risk": "high", "flags": ["force", "directories"]}),
    ("git clean -fdx", {"risk": "high", "flags": ["ignored"]}),
    (
        "git clean -n -d",
        {"action": "git:Clean", "access": "read", "risk": "low", "flags": ["dry-run"]},
    ),
    # --- branches and tags
    (
        "git branch -D feature",
        {
            "action": "git:DeleteBranch",
            "access": "delete",
            "risk": "medium",
            "flags": ["force"],
            "attributes": {"branch": "feature"},
        },
    ),
    (
        "git branch -d main",
        {
            "action": "git:DeleteBranch",
            "risk": "high",
            "attributes": {"branch": "main"},
            "no_flags": ["force"],
        },
    ),
    ("git branch -D master", {"risk": "high"}),
    ("git branch --delete a b", {"count": 2, "index": 1, "attributes": {"branch": "b"}}),
    ("git branch", {"action": "git:Read", "access": "read"}),
    ("git branch -a", {"action": "git:Read"}),
    (
        "git branch new-feature",
        {"action": "git:CreateBranch", "access": "write", "attributes": {"branch": "new-feature"}},
    ),
    (
        "git branch -m old new",
        {"action": "git:RenameBranch", "attributes": {"branch": "new", "from": "old"}},
    ),
    (
        "git tag -d v1.0",
        {"action": "git:DeleteTag", "access": "delete", "attributes": {"tag": "v1.0"}},
    ),
    ("git tag v2.0", {"action": "git:Tag", "access": "write", "risk": "low"}),
    ("git tag", {"action": "git:Read"}),
    # --- commit, rebase
    (
        "git commit -m 'fix bug'",
        {
            "action": "git:Commit",
            "access": "write",
            "risk": "low",
            "no_flags": ["no-verify", "amend"],
        },
    ),
    ("git commit --amend --no-edit", {"risk": "low", "flags": ["amend"]}),
    ("git commit --no-verify -m wip", {"risk": "medium", "flags": ["no-verify"]}),
    ("git commit -nm wip", {"risk": "medium", "flags": ["no-verify"]}),
    ("git commit -am 'all of it'", {"flags": ["all"], "no_flags": ["no-verify"]}),
    ("git commit -m -n", {"no_flags": ["no-verify"]}),  # -n is the message here
    (
        "git rebase main",
        {
            "action": "git:Rebase",
            "access": "write",
            "risk": "medium",
            "attributes": {"upstream": "main"},
        },
    ),
    ("git rebase -i HEAD~3", {"action": "git:Rebase", "flags": ["interactive"]}),
    ("git rebase --abort", {"action": "git:Rebase", "risk": "low"}),
    # --- checkout, switch, restore
    (
        "git checkout -- src/app.py",
        {
            "action": "git:DiscardChanges",
            "access": "delete",
            "risk": "medium",
            "attributes": {"paths": "src/app.py"},
        },
    ),
    ("git checkout .", {"action": "git:DiscardChanges", "no_flags": ["ambiguous-pathspec"]}),
    (
        "git checkout main -- a.py b.py",
        {"action": "git:DiscardChanges", "attributes": {"paths": "a.py,b.py", "source": "main"}},
    ),
    ("git checkout src/app.py", {"action": "git:DiscardChanges", "flags": ["ambiguous-pathspec"]}),
    (
        "git checkout main",
        {
            "action": "git:Checkout",
            "access": "write",
            "risk": "low",
            "attributes": {"branch": "main"},
        },
    ),
    ("git checkout release-1.2", {"action": "git:Checkout"}),
    ("git checkout feature/login", {"action": "git:Checkout"}),
    (
        "git checkout -b feature/x",
        {"action": "git:Checkout", "flags": ["create"], "attributes": {"branch": "feature/x"}},
    ),
    (
        "git checkout -f main",
        {"action": "git:Checkout", "access": "delete", "risk": "medium", "flags": ["force"]},
    ),
    ("git switch develop", {"action": "git:Checkout", "attributes": {"branch": "develop"}}),
    ("git switch -c topic", {"action": "git:Checkout", "flags": ["create"]}),
    ("git switch --discard-changes main", {"access": "delete", "flags": ["force"]}),
    (
        "git restore src/a.py",
        {"action": "git:DiscardChanges", "access": "delete", "attributes": {"paths": "src/a.py"}},
    ),
    ("git restore --staged src/a.py", {"action": "git:Unstage", "access": "write", "risk": "low"}),
    (
        "git restore --source=HEAD~2 --staged --worktree f",
        {"action": "git:DiscardChanges", "attributes": {"source": "HEAD~2"}},
    ),
    # --- remotes
    (
        "git remote add upstream https://alice:tok3n@github.com/o/r.git",
        {
            "action": "git:RemoteChange",
            "access": "admin",
            "risk": "medium",
            "attributes": {"name": "upstream", "url": "https://github.com/o/r.git"},
            "flags": ["credentials"],
        },
    ),
    (
        "git remote set-url origin git@github.com:o/r.git",
        {
            "action": "git:RemoteChange",
            "attributes": {"name": "origin", "url": "git@github.com:o/r.git"},
        },
    ),
    (
        "git remote remove origin",
        {
            "action": "git:RemoteChange",
            "access": "admin",
            "attributes": {"name": "origin", "operation": "remove"},
        },
    ),
    ("git remote -v", {"action": "git:Read", "access": "read"}),
    (
        "git clone https://github.com/o/repo.git",
        {
            "action": "git:Clone",
            "access": "read",
            "risk": "low",
            "attributes": {"directory": "/work/proj/repo"},
        },
    ),
    (
        "git clone https://x-access-token:ghs_secret123@github.com/o/r.git dest",
        {
            "resource": "https://github.com/o/r.git",
            "flags": ["credentials"],
            "attributes": {"url": "https://github.com/o/r.git", "directory": "/work/proj/dest"},
        },
    ),
    (
        "git fetch origin",
        {
            "action": "git:Fetch",
            "access": "read",
            "risk": "low",
            "attributes": {"remote": "origin"},
        },
    ),
    ("git fetch --prune", {"action": "git:Fetch", "flags": ["prune"]}),
    (
        "git pull --rebase origin main",
        {
            "action": "git:Pull",
            "access": "write",
            "risk": "low",
            "flags": ["rebase"],
            "attributes": {"branch": "main"},
        },
    ),
    # --- config
    (
        "git config --global user.email a@b.c",
        {
            "action": "git:Config",
            "access": "admin",
            "attributes": {"scope": "global", "key": "user.email"},
        },
    ),
    (
        "git config --system core.editor vim",
        {"access": "admin", "risk": "high", "flags": ["exec-config"]},
    ),
    (
        "git config user.name 'A B'",
        {"access": "write", "risk": "low", "attributes": {"scope": "local"}},
    ),
    ("git config user.name", {"access": "read", "risk": "low"}),
    ("git config --get remote.origin.url", {"access": "read"}),
    ("git config --global --unset user.name", {"access": "admin"}),
    ("git config core.hooksPath .githooks", {"risk": "high", "flags": ["exec-config"]}),
    # --- stash
    (
        "git stash drop",
        {"action": "git:StashDrop", "access": "delete", "attributes": {"stash": "stash@{0}"}},
    ),
    ("git stash drop stash@{2}", {"attributes": {"stash": "stash@{2}"}}),
    ("git stash clear", {"action": "git:StashClear", "access": "delete"}),
    ("git stash", {"action": "git:Stash", "access": "write", "risk": "low"}),
    ("git stash list", {"action": "git:Read"}),
    # --- history rewriting
    (
        "git filter-branch --tree-filter 'rm -f secrets' HEAD",
        {"action": "git:FilterBranch", "risk": "critical", "flags": ["rewrites-history"]},
    ),
    (
        "git filter-repo --path secrets --invert-paths",
        {"action": "git:FilterRepo", "risk": "critical"},
    ),
    (
        "git reflog expire --expire=now --all",
        {"action": "git:ReflogExpire", "access": "delete", "risk": "high"},
    ),
    ("git update-ref -d refs/heads/main", {"action": "git:UpdateRef", "access": "delete"}),
    # --- read-only
    (
        "git status",
        {
            "action": "git:Read",
            "access": "read",
            "risk": "low",
            "resource": "/work/proj",
            "attributes": {"subcommand": "status"},
        },
    ),
    ("git log -p", {"action": "git:Read"}),
    ("git diff HEAD~1", {"action": "git:Read"}),
    ("git show HEAD:README.md", {"action": "git:Read"}),
    ("git blame src/a.py", {"action": "git:Read"}),
    ("/usr/bin/git status", {"action": "git:Read"}),
    # --- other writes and the unknown
    ("git add -A", {"action": "git:Add", "access": "write", "risk": "low"}),
    ("git rm -r --cached build", {"action": "git:Remove", "access": "write"}),
    ("git rm old.py", {"action": "git:Remove", "access": "delete", "risk": "medium"}),
    ("git merge feature", {"action": "git:Merge", "access": "write"}),
    (
        "git frobnicate --all",
        {
            "action": "git:Unknown",
            "access": "write",
            "risk": "medium",
            "flags": ["unknown-subcommand"],
        },
    ),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[case[0] for case in CASES])
def test_git_command(line: str, expected: dict[str, Any]) -> None:
    operations = git.classify(command(line), CTX)
    if "count" in expected:
        assert len(operations) == expected["count"], operations
    else:
        assert len(operations) >= 1
    op = operations[expected.get("index", 0)]
    assert op.kind == "git"
    assert op.raw is not None
    check(op, expected)


@pytest.mark.parametrize("line", ["git", "git --version", "git --help", "git -C /tmp"])
def test_no_subcommand_means_no_operation(line: str) -> None:
    assert git.classify(command(line), CTX) == []


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("git push https://bob:hunter2pass@github.com/acme/app.git main", "hunter2pass"),
        ("git clone https://x-access-token:ghs_secret123@github.com/o/r.git", "ghs_secret123"),
        ("git remote add up https://alice:tok3n@github.com/o/r.git", "tok3n"),
        ("git clone https://ghp_FAKEHq4tW9zXk2PbV7nMr3LdFAKE12345678@github.com/o/r.git",
         "ghp_FAKEHq4tW9zXk2PbV7nMr3LdFAKE12345678"),
        ("git -c http.extraHeader='Authorization: Bearer sekrit99' fetch", "sekrit99"),
    ],
)  # fmt: skip
def test_credentials_never_reach_the_stored_operation(line: str, secret: str) -> None:
    operations = git.classify(command(line), CTX)
    assert operations
    assert all(secret not in (op.resource or "") for op in operations)  # URLs are stripped
    for op in stored_command(line):
        dumped = op.model_dump_json()
        assert secret not in dumped, dumped
        assert op.raw is not None
        assert "[REDACTED:" in op.raw


def test_programs() -> None:
    assert frozenset({"git"}) == git.PROGRAMS


def test_operations_validate_as_events() -> None:
    for line, _expected in CASES:
        for op in git.classify(command(line), CTX):
            assert Operation.model_validate(op.model_dump()) == op


def test_without_context_paths_stay_unknown() -> None:
    [op] = git.classify(command("git status"), ClassifyContext())
    assert op.resource is None
    assert op.action == "git:Read"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    "push", "-f", "--force", "--delete", "origin", "main", ":main", "+x", "-C", "-c", "k=v",
    "checkout", "--", ".", "-b", "branch", "-D", "reset", "--hard", "clean", "-fdx", "remote",
    "add", "config", "--global", "stash", "drop", "tag", "-d", "commit", "-m", "-n", "",
    "--force-with-lease=", "HEAD:", "refs/tags/", "restore", "--staged", "switch", "-c",
]), max_size=8))  # fmt: skip
def test_never_raises(words: list[str]) -> None:
    operations = git.classify(SimpleCommand(argv=("git", *words), text="git"), CTX)
    assert all(isinstance(op, Operation) for op in operations)
    assert all("classifier-error" not in op.flags for op in operations)
