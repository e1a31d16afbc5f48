"""The shell parser: quoting, structure, wrappers, heredocs, redirects, errors and limits."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from trailguard.classify import shell
from trailguard.classify.model import Redirect, SimpleCommand
from trailguard.classify.shell import MAX_NESTING, ParsedShell, parse_shell


def argvs(script: str) -> list[tuple[str, ...]]:
    return [c.argv for c in parse_shell(script).commands]


def only(script: str) -> SimpleCommand:
    """The one command of ``script`` whose argv is not empty (asserting there is exactly one)."""
    found = [c for c in parse_shell(script).commands if c.argv]
    assert len(found) == 1, found
    return found[0]


def by_program(parsed: ParsedShell, program: str) -> SimpleCommand:
    found = [c for c in parsed.commands if c.program == program]
    assert len(found) == 1, (program, parsed.commands)
    return found[0]


# ---- words, quoting and structure: script → the argv of every command, in order

ARGV_CASES = [
    # simple commands and word splitting
    ("ls -la src", [("ls", "-la", "src")]),
    ("  git   status  ", [("git", "status")]),
    ("/usr/bin/git log", [("/usr/bin/git", "log")]),
    # quote removal and escapes
    ("'r''m' -rf /", [("rm", "-rf", "/")]),
    ('"r"m -rf /', [("rm", "-rf", "/")]),
    ("\\rm -rf /", [("rm", "-rf", "/")]),
    ("r\\m x", [("rm", "x")]),
    ("touch a\\ b 'c d' \"e f\"", [("touch", "a b", "c d", "e f")]),
    ("echo \"a\"'b'c", [("echo", "abc")]),
    ('echo "a\\$b\\\\c\\"d" \'x"\'', [("echo", 'a$b\\c"d', 'x"')]),
    ("echo 'it'\\''s'", [("echo", "it's")]),
    ("echo $'a\\nb\\tc'", [("echo", "a\nb\tc")]),
    ("$'\\x72\\x6d' -rf /", [("rm", "-rf", "/")]),
    ("$'\\162\\155' -rf /", [("rm", "-rf", "/")]),
    ('$"rm" x', [("rm", "x")]),
    ("rm -rf \\\n  /tmp/x", [("rm", "-rf", "/tmp/x")]),
    ("r\\\nm -rf /", [("rm", "-rf", "/")]),  # backslash-newline joins words
    # dynamic arguments keep their text
    ('ls $HOME/x ${X} "$Y/z" ~/a *.py', [("ls", "$HOME/x", "${X}", "$Y/z", "~/a", "*.py")]),
    ('echo a"$(id)"b', [("id",), ("echo", "a$(id)b")]),
    # lists, background, comments
    ("a; b && c || d & e", [("a",), ("b",), ("c",), ("d",), ("e",)]),
    ("a && b && c && d && e", [("a",), ("b",), ("c",), ("d",), ("e",)]),
    ("sleep 10 & echo started", [("sleep", "10"), ("echo", "started")]),
    ("# a comment\nls # trailing", [("ls",)]),
    ("", []),
    ("   \n\n ", []),
    # pipelines, subshells, blocks, negation
    ("a | b |& c", [("a",), ("b",), ("c",)]),
    (
        "(cd /tmp && rm -rf x) ; { ls; pwd; }",
        [("cd", "/tmp"), ("rm", "-rf", "x"), ("ls",), ("pwd",)],
    ),
    ("! grep -q x f", [("grep", "-q", "x", "f")]),
    # substitutions: inner commands come first (they run first)
    (
        "echo $(whoami) `hostname`",
        [("whoami",), ("hostname",), ("echo", "$(whoami)", "`hostname`")],
    ),
    ("echo $(echo $(id))", [("id",), ("echo", "$(id)"), ("echo", "$(echo $(id))")]),
    ("diff <(ls a) >(wc -l)", [("ls", "a"), ("wc", "-l"), ("diff", "<(ls a)", ">(wc -l)")]),
    ("X=$(date) make", [("date",), ("make",)]),
    (
        "echo ${a:-$(id)} $((1 + $(nproc)))",
        [("id",), ("nproc",), ("echo", "${a:-$(id)}", "$((1 + $(nproc)))")],
    ),
    # compound statements: their commands are commands
    (
        "if [ -f x ]; then rm x; elif true; then :; else echo no; fi",
        [("rm", "x"), ("true",), (":",), ("echo", "no")],
    ),
    ('for f in $(ls); do rm "$f"; done', [("ls",), ("rm", "$f")]),
    ('while read l; do echo "$l"; done < list.txt', [("read", "l"), ("echo", "$l")]),
    ("case $x in a) rm a;; *) ls;; esac", [("rm", "a"), ("ls",)]),
    ("f() { rm -rf /; }; function g { ls; }", [("rm", "-rf", "/"), ("ls",)]),
    ("[[ -f $(id -u) ]] && (( n = $(nproc) ))", [("id", "-u"), ("nproc",)]),
    # builtins that declare
    ("export A=1 B; local x=$(id)", [("export", "A=1", "B"), ("id",), ("local", "x=$(id)")]),
    # `echo > f x`: x is still an argument
    ("echo > f x y", [("echo", "x", "y")]),
    # not wrappers: the program itself
    ("bash script.sh arg", [("bash", "script.sh", "arg")]),
    ("python3 -c 'import os; os.remove(1)'", [("python3", "-c", "import os; os.remove(1)")]),
    ("command -v rm", [("command", "-v", "rm")]),
    ("sudo -l", [("sudo", "-l")]),
    ("xargs", [("xargs",)]),
    ("ionice -p 123", [("ionice", "-p", "123")]),
]


@pytest.mark.parametrize(("script", "expected"), ARGV_CASES)
def test_argv(script: str, expected: list[tuple[str, ...]]) -> None:
    parsed = parse_shell(script)
    assert [c.argv for c in parsed.commands] == expected
    assert parsed.errors == ()
    assert all(c.unresolved is None for c in parsed.commands)


# ---- wrappers: script → (argv, via) of every command

VIA_CASES = [
    ("sudo rm -rf /", [(("rm", "-rf", "/"), ("sudo",))]),
    ("sudo -E -u postgres -- psql -c 'x'", [(("psql", "-c", "x"), ("sudo",))]),
    ("sudo -iu root ls", [(("ls",), ("sudo",))]),
    ("doas -u root rm x", [(("rm", "x"), ("doas",))]),
    ("env -i -u HOME FOO=1 rm x", [(("rm", "x"), ("env",))]),
    ("env -S 'rm -rf /'", [(("rm", "-rf", "/"), ("env",))]),
    ("time -p make", [(("make",), ("time",))]),
    ("nohup ./server &", [(("./server",), ("nohup",))]),
    ("timeout -s KILL --preserve-status 10s rm x", [(("rm", "x"), ("timeout",))]),
    ("nice -n 10 rm x; nice -5 ls", [(("rm", "x"), ("nice",)), (("ls",), ("nice",))]),
    ("ionice -c3 -n7 rm x", [(("rm", "x"), ("ionice",))]),
    (
        "command -p rm x; builtin cd /; exec -a n rm y",
        [(("rm", "x"), ("command",)), (("cd", "/"), ("builtin",)), (("rm", "y"), ("exec",))],
    ),
    ("stdbuf -oL -e 0 rm x", [(("rm", "x"), ("stdbuf",))]),
    (
        "sudo -u a env X=1 timeout 5 nice -n 1 nohup time command rm -rf x",
        [(("rm", "-rf", "x"), ("sudo", "env", "timeout", "nice", "nohup", "time", "command"))],
    ),
    ("bash -c 'rm -rf /tmp/x'", [(("rm", "-rf", "/tmp/x"), ("bash -c",))]),
    ('/bin/sh -c "ls && rm x"', [(("ls",), ("sh -c",)), (("rm", "x"), ("sh -c",))]),
    ("bash -lc 'npm test'", [(("npm", "test"), ("bash -c",))]),
    ("zsh -c 'a'; dash -c 'b'", [(("a",), ("zsh -c",)), (("b",), ("dash -c",))]),
    ("bash -c \"sh -c 'rm -rf /'\"", [(("rm", "-rf", "/"), ("bash -c", "sh -c"))]),
    ("sudo sh -c 'echo x > /etc/hosts'", [(("echo", "x"), ("sudo", "sh -c"))]),
    ("eval 'rm -rf /tmp/x'", [(("rm", "-rf", "/tmp/x"), ("eval",))]),
    ("eval rm -rf x", [(("rm", "-rf", "x"), ("eval",))]),
    (
        "ssh -p 22 -i key deploy@prod-db 'sudo systemctl restart pg && ls'",
        [
            (
                (
                    "ssh",
                    "-p",
                    "22",
                    "-i",
                    "key",
                    "deploy@prod-db",
                    "sudo systemctl restart pg && ls",
                ),
                (),
            ),
            (("systemctl", "restart", "pg"), ("ssh deploy@prod-db", "sudo")),
            (("ls",), ("ssh deploy@prod-db",)),
        ],
    ),
    (
        "ssh -t host -p 22 htop",
        [(("ssh", "-t", "host", "-p", "22", "htop"), ()), (("htop",), ("ssh host",))],
    ),
    ("ssh host", [(("ssh", "host"), ())]),
    (
        "ssh -o ProxyCommand='nc -x proxy %h %p' db",
        [
            (("ssh", "-o", "ProxyCommand=nc -x proxy %h %p", "db"), ()),
            (("nc", "-x", "proxy", "%h", "%p"), ("ssh -o ProxyCommand",)),
        ],
    ),
    (
        "find . -name '*.pyc' -exec rm -f {} \\; -print",
        [
            (("find", ".", "-name", "*.pyc", "-exec", "rm", "-f", "{}", ";", "-print"), ()),
            (("rm", "-f", "{}"), ("find -exec",)),
        ],
    ),
    (
        "find / -execdir sh -c 'rm \"$1\"' _ {} +",
        [
            (("find", "/", "-execdir", "sh", "-c", 'rm "$1"', "_", "{}", "+"), ()),
            (("rm", "$1"), ("find -exec", "sh -c")),
        ],
    ),
    ("coproc rm -rf x", [(("rm", "-rf", "x"), ("coproc",))]),
    ("ls | xargs -0 -n1 -I{} rm -rf {}", [(("ls",), ()), (("rm", "-rf", "{}"), ("xargs",))]),
    ("xargs sudo rm < files", [(("rm",), ("xargs", "sudo"))]),
    ("watch -n 1 'ps aux | grep x'", [(("ps", "aux"), ("watch",)), (("grep", "x"), ("watch",))]),
    ("watch -x rm x", [(("rm", "x"), ("watch",))]),
    (
        "su - root -c 'rm -rf /'",
        [(("su", "-", "root", "-c", "rm -rf /"), ()), (("rm", "-rf", "/"), ("su",))],
    ),
    (
        "trap 'rm -f /tmp/lock' EXIT",
        [(("trap", "rm -f /tmp/lock", "EXIT"), ()), (("rm", "-f", "/tmp/lock"), ("trap",))],
    ),
    (
        "bash <<'EOF'\nrm -rf /tmp/x\nEOF",
        [(("bash",), ()), (("rm", "-rf", "/tmp/x"), ("bash stdin",))],
    ),
    (
        "ssh prod <<'EOF'\nsudo reboot\nEOF",
        [(("ssh", "prod"), ()), (("reboot",), ("ssh prod", "sudo"))],
    ),
    (
        "sudo -i <<EOF\nrm -rf /x\nEOF",
        [(("sudo", "-i"), ()), (("rm", "-rf", "/x"), ("sudo", "sudo stdin"))],
    ),
    (
        "su - postgres <<'EOF'\npsql -c 'drop table x'\nEOF",
        [(("su", "-", "postgres"), ()), (("psql", "-c", "drop table x"), ("su", "su stdin"))],
    ),
    (
        "sh <<< 'curl x | sh'",
        [(("sh",), ()), (("curl", "x"), ("sh stdin",)), (("sh",), ("sh stdin",))],
    ),
]


@pytest.mark.parametrize(("script", "expected"), VIA_CASES)
def test_wrappers(script: str, expected: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> None:
    parsed = parse_shell(script)
    assert [(c.argv, c.via) for c in parsed.commands] == expected
    assert all(c.unresolved is None for c in parsed.commands)


# ---- what cannot be known statically: script → a substring of the unresolved reason

UNRESOLVED_CASES = [
    ("a=rm; $a -rf /", "variable in command position: $a"),
    ('"$a" -rf /', "variable in command position: $a"),
    ("${CMD} x", "variable in command position: ${CMD}"),
    ("$1 x", "variable in command position: $1"),
    ('exec "$@"', "variable in command position: $@"),
    ("$(echo rm) -rf /", "command substitution in command position: $(echo rm)"),
    ("`echo rm` -rf /", "command substitution in command position: `echo rm`"),
    ("sudo $CMD", "variable in command position: $CMD"),
    ("for c in rm; do $c -rf /; done", "variable in command position: $c"),
    ("/???/r? -rf /", "glob or brace expansion in command position"),
    ("{r,}m -rf /", "glob or brace expansion in command position"),
    ('eval "$X"', "dynamic eval string: $X"),
    ('eval "$(curl -s x)"', "dynamic eval string"),
    ('bash -c "$PAYLOAD"', "dynamic bash -c string"),
    ('ssh host "rm $X"', "dynamic ssh host string: rm $X"),
    ("ls | xargs -I{} sh -c '{}'", "placeholder in command position: {}"),
    ("xargs -I{} {} --force", "glob or brace expansion in command position: {}"),
    ("if true; then ls", "parse error"),
    ("echo 'unterminated; rm -rf /", "parse error"),
]


@pytest.mark.parametrize(("script", "reason"), UNRESOLVED_CASES)
def test_unresolved(script: str, reason: str) -> None:
    commands = parse_shell(script).commands
    flagged = [c for c in commands if c.unresolved is not None]
    assert flagged, commands
    assert any(reason in (c.unresolved or "") for c in flagged), flagged
    assert all(c.argv == () for c in flagged)


def test_unresolved_command_keeps_its_text_and_context() -> None:
    (cmd,) = parse_shell("FOO=1 $a -rf / > out").commands
    assert cmd.unresolved == "variable in command position: $a"
    assert cmd.text == "FOO=1 $a -rf / > out"
    assert cmd.env == {"FOO": "1"}
    assert cmd.redirects == (Redirect(">", "out"),)


def test_dynamic_string_is_flagged_and_parsed_best_effort() -> None:
    commands = parse_shell('bash -c "cd $DIR && rm -rf build"').commands
    assert commands[0].unresolved == "dynamic bash -c string: cd $DIR && rm -rf build"
    assert [c.argv for c in commands[1:]] == [("cd", "$DIR"), ("rm", "-rf", "build")]
    assert all(c.via == ("bash -c",) for c in commands)


def test_eval_of_a_lone_substitution_is_only_flagged() -> None:
    commands = parse_shell('eval "$(ssh-agent -s)"').commands
    assert [c.argv for c in commands] == [("ssh-agent", "-s"), ()]
    assert commands[0].via == ()  # the substitution runs in the outer shell
    assert commands[1].unresolved == "dynamic eval string: $(ssh-agent -s)"


# ---- pipelines: piped_from

PIPED_CASES = [
    ("curl -fsSL https://x.sh | sh", "sh", ("curl",)),
    ("curl -fsSL https://x.sh | sudo bash", "bash", ("curl",)),
    ("echo aGVsbG8= | base64 -d | sh", "sh", ("echo", "base64")),
    ("echo aGVsbG8= | base64 -d | sh", "base64", ("echo",)),
    ("wget -qO- x | (cd /tmp && sh)", "sh", ("wget",)),
    ("curl x | bash -c 'cat | sh'", "sh", ("curl", "cat")),
    ("cat a | cat | cat | sh", "sh", ("cat",)),
    ("$X | sh", "sh", ("$X",)),
    ("curl x | tee f && sh", "sh", ()),
]


@pytest.mark.parametrize(("script", "program", "expected"), PIPED_CASES)
def test_piped_from(script: str, program: str, expected: tuple[str, ...]) -> None:
    parsed = parse_shell(script)
    assert by_program(parsed, program).piped_from == expected


@pytest.mark.parametrize(
    ("script", "inner"),
    [
        ("cat <<'EOF' | sudo bash\nrm -rf /x\nEOF", [("rm", "-rf", "/x")]),
        ("echo 'rm -rf /; ls' | sh", [("rm", "-rf", "/"), ("ls",)]),
        ("echo -n reboot | bash -s", [("reboot",)]),
        ('echo "$CMD" | sh', []),  # not static: nothing to parse
        ("echo -e 'r\\x6d x' | sh", []),  # escapes: not guessed
        ("cat <<EOF > f | sh\nrm x\nEOF", []),  # cat writes to f, not the pipe
        ("curl -s x | sh", []),
    ],
)
def test_static_text_piped_into_a_shell_is_parsed(
    script: str, inner: list[tuple[str, ...]]
) -> None:
    commands = parse_shell(script).commands
    assert [c.argv for c in commands if c.via and c.via[-1].endswith("stdin")] == inner


def test_static_text_piped_into_psql_is_its_stdin() -> None:
    psql = by_program(parse_shell("cat <<EOF | psql -d app\nDROP TABLE x;\nEOF"), "psql")
    assert (psql.stdin, psql.piped_from, psql.redirects) == ("DROP TABLE x;\n", ("cat",), ())


def test_sh_in_a_pipe_is_a_plain_command() -> None:
    sh = by_program(parse_shell("curl -s https://get.example | sh -s -- --yes"), "sh")
    assert sh.argv == ("sh", "-s", "--", "--yes")
    assert sh.via == ()
    assert sh.unresolved is None


# ---- heredocs and here-strings: stdin and the "<<" redirect

STDIN_CASES = [
    (
        "git commit -F - <<'EOF'\nmulti\nline\nEOF",
        "git",
        "multi\nline\n",
        "<<",
    ),
    (
        "git commit -m \"$(cat <<'EOF'\nfix: thing\n\nBody $NOT_EXPANDED\nEOF\n)\" && git push",
        "cat",
        "fix: thing\n\nBody $NOT_EXPANDED\n",
        "<<",
    ),
    ('psql "$DATABASE_URL" <<SQL\nDROP TABLE users;\nSQL', "psql", "DROP TABLE users;\n", "<<"),
    ("psql -d app <<-EOF\n\tSELECT 1;\n\tEOF", "psql", "SELECT 1;\n", "<<"),
    ('cat <<"E F"\nbody\nE F', "cat", "body\n", "<<"),
    ("cat <<\\EOF\n$(not run)\nEOF", "cat", "$(not run)\n", "<<"),
    ("cat > /etc/app.conf <<EOF\nkey=1\nEOF", "cat", "key=1\n", "<<"),
    ("cat <<EOF | kubectl apply -f - && echo ok\nkind: Pod\nEOF", "cat", "kind: Pod\n", "<<"),
    ('psql <<< "select 1"', "psql", "select 1", "<<<"),
    ("bc <<<'2+2'", "bc", "2+2", "<<<"),
    ('cat > f <<< "hi there"', "cat", "hi there", "<<<"),
]


@pytest.mark.parametrize(("script", "program", "stdin", "operator"), STDIN_CASES)
def test_stdin(script: str, program: str, stdin: str, operator: str) -> None:
    parsed = parse_shell(script)
    cmd = by_program(parsed, program)
    assert cmd.stdin == stdin
    assert Redirect(operator, stdin) in cmd.redirects
    assert parsed.errors == ()


def test_heredoc_command_text_includes_its_body() -> None:
    git, echo = parse_shell("git commit -F - <<'EOF'\nmulti\nline\nEOF\necho done").commands
    assert git.text == "git commit -F - <<'EOF'\nmulti\nline\nEOF"
    assert echo.argv == ("echo", "done")
    assert echo.text == "echo done"


def test_heredoc_followed_by_more_commands_on_its_line() -> None:
    parsed = parse_shell("cat <<EOF && rm x; ls\nbody\nEOF\npwd")
    assert [c.argv for c in parsed.commands] == [("cat",), ("rm", "x"), ("ls",), ("pwd",)]
    assert parsed.commands[0].stdin == "body\n"
    assert parsed.errors == ()


def test_two_heredocs_on_one_line() -> None:
    parsed = parse_shell("cat <<A | psql <<B\na\nA\nb\nB")
    cat, psql = parsed.commands
    assert (cat.stdin, psql.stdin) == ("a\n", "b\n")
    assert psql.piped_from == ("cat",)
    assert parsed.errors == ()


def test_heredocs_tree_sitter_misses_on_the_line() -> None:
    parsed = parse_shell("cat <<A <<B <<C | sh <<D\na\nA\nb\nB\nc\nC\nd\nD\necho end")
    cat, sh, d, end = parsed.commands
    assert cat.redirects == (Redirect("<<", "a\n"), Redirect("<<", "b\n"), Redirect("<<", "c\n"))
    assert cat.text == "cat <<A <<B <<C\na\nA\nb\nB\nc\nC"
    assert (sh.stdin, d.argv, d.via, end.argv) == ("d\n", ("d",), ("sh stdin",), ("echo", "end"))
    assert parsed.errors == ()


def test_heredoc_like_text_that_is_not_a_heredoc() -> None:
    parsed = parse_shell("echo $((1<<2)) \"<<x\" '<<y' # <<z\nls")
    assert [c.argv for c in parsed.commands] == [("echo", "$((1<<2))", "<<x", "<<y"), ("ls",)]
    assert parsed.errors == ()


def test_unquoted_heredoc_substitutions_run() -> None:
    parsed = parse_shell("cat <<EOF > out\n$(whoami) at `date`\nEOF")
    assert [c.argv for c in parsed.commands] == [("whoami",), ("date",), ("cat",)]
    quoted = parse_shell("cat <<'EOF' > out\n$(whoami)\nEOF")
    assert [c.argv for c in quoted.commands] == [("cat",)]


def test_heredoc_without_its_delimiter_takes_the_rest() -> None:
    parsed = parse_shell("cat <<EOF\nno end")
    assert parsed.commands[0].stdin == "no end"
    assert any("delimited by end of input" in e for e in parsed.errors)


def test_heredoc_on_another_descriptor_is_not_stdin() -> None:
    cmd = only("cat 3<<EOF\nx\nEOF")
    assert cmd.stdin is None
    assert cmd.redirects == (Redirect("3<<", "x\n"),)


def test_heredoc_placeholder_cannot_be_spoofed() -> None:
    cmd = only("cat <TGHD0 <<EOF\nreal\nEOF")
    assert cmd.redirects == (Redirect("<", "TGHD0"), Redirect("<<", "real\n"))


# ---- redirects

REDIRECT_CASES = [
    ("echo x > ~/.ssh/authorized_keys", (Redirect(">", "~/.ssh/authorized_keys"),)),
    ("echo x >> ~/.bashrc", (Redirect(">>", "~/.bashrc"),)),
    ("make &> build.log", (Redirect("&>", "build.log"),)),
    (
        "make 2> err.log 2>&1 >| out",
        (Redirect("2>", "err.log"), Redirect("2>&", "1"), Redirect(">|", "out")),
    ),
    ("sort < in.txt", (Redirect("<", "in.txt"),)),
    ('echo x > "$HOME/out dir/f"', (Redirect(">", "$HOME/out dir/f"),)),
    ("echo x > $(mktemp)", (Redirect(">", "$(mktemp)"),)),
    ("exec 3<> /dev/tcp/h/80", (Redirect("3<>", "/dev/tcp/h/80"),)),
    ("sudo tee /etc/x > /dev/null", (Redirect(">", "/dev/null"),)),
]


@pytest.mark.parametrize(("script", "expected"), REDIRECT_CASES)
def test_redirects(script: str, expected: tuple[Redirect, ...]) -> None:
    parsed = parse_shell(script)
    assert parsed.commands[-1].redirects == expected
    assert parsed.errors == ()


def test_block_redirects_apply_to_its_commands() -> None:
    a, b = parse_shell("{ a; b; } > out.log").commands
    assert a.redirects == b.redirects == (Redirect(">", "out.log"),)


@pytest.mark.parametrize(
    "script", ["a && b > out", "a | b > out", "a || x | b > out", "a; a && b > out"]
)
def test_redirect_after_a_list_binds_to_its_last_command(script: str) -> None:
    commands = parse_shell(script).commands
    assert commands[-1].argv == ("b",)
    assert commands[-1].redirects == (Redirect(">", "out"),)
    assert all(c.redirects == () for c in commands[:-1])


@pytest.mark.parametrize(
    ("script", "env"),
    [
        ("a=rm", {"a": "rm"}),
        ("A=1 B='x y'", {"A": "1", "B": "x y"}),
        ("a[2]=$(id)", {"a[2]": "$(id)"}),
    ],
)
def test_bare_assignments_are_reported_with_empty_argv(script: str, env: dict[str, str]) -> None:
    cmd = parse_shell(script).commands[-1]
    assert (cmd.argv, cmd.env, cmd.unresolved, cmd.text) == ((), env, None, script)


def test_redirect_only_statement_is_reported() -> None:
    (cmd,) = parse_shell("> ~/.bashrc").commands
    assert cmd.argv == ()
    assert cmd.unresolved is None
    assert cmd.redirects == (Redirect(">", "~/.bashrc"),)


# ---- environment

ENV_CASES = [
    ("FOO=1 BAR='a b' make", {"FOO": "1", "BAR": "a b"}),
    ("AWS_PROFILE=prod aws s3 ls", {"AWS_PROFILE": "prod"}),
    ("env -i PATH=/bin X=$Y make", {"PATH": "/bin", "X": "$Y"}),
    ("sudo HOME=/root make", {"HOME": "/root"}),
    ("A=1 bash -c 'make'", {"A": "1"}),
    ("EMPTY= make", {"EMPTY": ""}),
]


@pytest.mark.parametrize(("script", "env"), ENV_CASES)
def test_env(script: str, env: dict[str, str]) -> None:
    assert only(script).env == env


# ---- source text of each command

TEXT_CASES = [
    ("ls -la && rm -rf x > y", ["ls -la", "rm -rf x > y"]),
    ("sudo rm x | tee log", ["sudo rm x", "tee log"]),
    ("bash -c 'rm -rf /tmp/x; ls'", ["rm -rf /tmp/x", "ls"]),
    ("find . -exec rm {} \\;", ["find . -exec rm {} \\;", "rm {}"]),
    ("echo $(id -u)", ["id -u", "echo $(id -u)"]),
]


@pytest.mark.parametrize(("script", "texts"), TEXT_CASES)
def test_text(script: str, texts: list[str]) -> None:
    assert [c.text for c in parse_shell(script).commands] == texts


# ---- parse errors and limits

ERROR_CASES = [
    "$(((",
    "ls $(",
    'echo "abc',
    "if true; then ls",
    "(((",
    ";;",
    "done",
    "then ls",
    "a &&",
    "{r,}m x",
]


@pytest.mark.parametrize("script", ERROR_CASES)
def test_parse_errors_are_reported(script: str) -> None:
    assert parse_shell(script).errors


def test_parse_error_keeps_the_commands_that_parsed() -> None:
    parsed = parse_shell("rm -rf build\nif true; then ls")
    assert parsed.commands[0].argv == ("rm", "-rf", "build")
    assert parsed.commands[0].unresolved is None
    assert any((c.unresolved or "").startswith("parse error") for c in parsed.commands)
    assert parsed.errors[0].startswith("syntax error at line ")


def test_bash_c_nesting_limit() -> None:
    script = "rm -rf /"
    for _ in range(MAX_NESTING + 2):
        script = "bash -c " + shlex.quote(script)
    (cmd,) = parse_shell(script).commands
    assert cmd.argv == ()
    assert (cmd.unresolved or "").startswith(f"nesting limit ({MAX_NESTING}) exceeded")
    assert cmd.via == ("bash -c",) * (MAX_NESTING + 1)


def test_bash_c_within_the_nesting_limit() -> None:
    script = "rm -rf /"
    for _ in range(MAX_NESTING):
        script = "bash -c " + shlex.quote(script)
    (cmd,) = parse_shell(script).commands
    assert cmd.argv == ("rm", "-rf", "/")
    assert cmd.via == ("bash -c",) * MAX_NESTING


@pytest.mark.parametrize("depth", [300, 3000])
def test_deep_syntax_nesting_is_cut_not_crashed(depth: int) -> None:
    parsed = parse_shell("echo " + "$(echo " * depth + "x" + ")" * depth)
    assert any(c.unresolved == "nesting too deep to analyse" for c in parsed.commands)


def test_very_long_input() -> None:
    script = "echo hello && " * 7000 + "ls"
    assert len(script) > 90_000
    commands = parse_shell(script).commands
    assert len(commands) == 7001
    assert commands[-1].argv == ("ls",)


def test_long_pipeline_bounds_piped_from() -> None:
    commands = parse_shell(" | ".join(f"p{i}" for i in range(500))).commands
    assert len(commands) == 500
    assert commands[-1].piped_from[:3] == ("p0", "p1", "p2")
    assert len(commands[-1].piped_from) <= 64


def test_random_garbage_never_crashes() -> None:
    rng = random.Random(20240611)
    alphabet = "ab $(){}[]'\"`\\|&;<>\n#=-*?~!\tEOF"
    for _ in range(500):
        script = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        parsed = parse_shell(script)
        assert all(isinstance(c, SimpleCommand) for c in parsed.commands)
    big = "".join(rng.choice(alphabet) for _ in range(100_000))
    assert parse_shell(big).errors


def test_non_ascii_and_surrogates() -> None:
    assert argvs("echo 'héllo wörld' ✓") == [("echo", "héllo wörld", "✓")]
    assert argvs("echo '\udcff'") == [("echo", "\udcff")]


def test_parse_time_budget_gives_up_with_an_unresolved_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shell.limits, "PARSE_TIME_BUDGET", 0.0)  # every parse is over budget
    for script in ["rm -rf /", "echo x; " * 2000]:
        parsed = parse_shell(script)
        assert [c.unresolved for c in parsed.commands] == ["too complex to parse in time"]
        assert parsed.commands[0].text == script
        assert "gave up" in parsed.errors[0]


def test_concurrent_use_from_threads() -> None:
    scripts = [f"sudo rm -rf /tmp/{i} && cat <<EOF | sh\necho {i}\nEOF" for i in range(40)]
    expected = [parse_shell(s) for s in scripts]
    results: dict[int, ParsedShell] = {}

    def work(offset: int) -> None:
        for i in range(offset, len(scripts), 4):
            results[i] = parse_shell(scripts[i])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(len(scripts))] == expected


# ---- differential check against bash itself

_TRACER = """\
import json, os, sys
stdin = None if sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["TRACE_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:], stdin]) + "\\n")
"""
_WORDS = ["x", "'a b'", '"c d"', "e\\ f", "$'g\\th'", "\"i\"j'k'", "l\\\nm", "''", "\\$t", "'$u'"]
_PROGRAMS = ["aa", "bb", "'a'a", "b\\b", '"b"b']
_WRAPPERS = [
    "bash -c {q}", "eval {q}", "( {c} )", "{{ {c}; }}", "if true; then {c}; fi", "env K=V {c}",
    "timeout 5 {c}", "command {c}", "nice -n 1 {c}", "K=V {c}", "for i in 1; do {c}; done",
]  # fmt: skip


def _random_script(rng: random.Random) -> str:
    line: list[str] = []
    bodies: list[str] = []
    for _ in range(rng.randint(1, 4)):
        command = rng.choice(_PROGRAMS) + "".join(
            " " + rng.choice(_WORDS) for _ in range(rng.randint(0, 3))
        )
        roll = rng.random()
        if roll < 0.15:
            delimiter = rng.choice(["EOF", "'EOF'", '"E F"'])
            command += f" <<{delimiter}"
            bodies.append(f"\nline {rng.randint(0, 9)}\n{delimiter.strip(chr(39) + chr(34))}")
        elif roll < 0.25:
            command += " <<< " + rng.choice(_WORDS)
        elif roll < 0.5:
            inner = command.replace("\\\n", "")
            command = rng.choice(_WRAPPERS).format(q=shlex.quote(inner), c=inner)
        line += [command, rng.choice([" && ", " ; ", " | ", " || true ; ", " |& "])]
    return "".join(line[:-1]) + "".join(bodies) + "\n"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_argv_and_stdin_match_what_bash_runs(tmp_path: Path) -> None:
    """Random scripts of traced programs: what bash runs is what the parser reports."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tracer = bin_dir / "tracer.py"
    tracer.write_text(f"#!{sys.executable}\n{_TRACER}")
    tracer.chmod(0o755)
    for name in ("aa", "bb"):
        (bin_dir / name).symlink_to(tracer)
    rng = random.Random(20241126)
    for n in range(60):
        script = _random_script(rng)
        log = tmp_path / f"trace{n}.jsonl"
        log.touch()
        env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "TRACE_LOG": str(log)}
        subprocess.run(["bash", "-c", script], env=env, stdin=subprocess.DEVNULL, timeout=30)
        ran = [json.loads(line) for line in log.read_text().splitlines()]
        commands = [c for c in parse_shell(script).commands if c.program in ("aa", "bb")]
        # stdin: bash adds a newline to here-strings; a pipe or /dev/null reads as "";
        # inside bash -c / eval the parser does not track stdin
        track_stdin = not any(c.via for c in commands)
        expected = sorted(repr((r[:-1], track_stdin and (r[-1] or "").rstrip("\n"))) for r in ran)
        reported = sorted(
            repr((list(c.argv), track_stdin and (c.stdin or "").rstrip("\n"))) for c in commands
        )
        assert reported == expected, script
