"""git commands as ``git:<Action>`` operations.

Global options before the subcommand (``-C dir``, ``-c key=value``, ``--git-dir``...) are
understood: ``-C`` moves the repository (the resource of local operations), ``-c`` overrides
are recorded and ``-c core.hooksPath=...`` counts as skipping hooks.

Resources: the remote and branch for pushes (``origin/main``), the URL for clones, the
repository directory (``-C`` resolved against the working directory) for everything else.
Protected branches are ``main`` and ``master``: pushing to them is high risk, force-pushing to
or deleting them critical. An unknown subcommand (or alias) becomes ``git:Unknown``, a medium
risk write, since an alias can run anything.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from trailguard.classify._tool_common import add_flag, classifier_error, max_risk
from trailguard.classify.files import resolve_path
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.classify.options import DASHDASH, POSITIONAL, iter_options
from trailguard.events import Access, Operation, Risk
from trailguard.urls import strip_url_credentials

__all__ = ["PROGRAMS", "PROTECTED_BRANCHES", "classify"]

PROGRAMS: frozenset[str] = frozenset({"git"})

PROTECTED_BRANCHES: frozenset[str] = frozenset({"main", "master"})


_READ_SUBCOMMANDS = frozenset(
    {
        "status", "log", "diff", "show", "blame", "annotate", "shortlog", "describe",
        "rev-parse", "rev-list", "ls-files", "ls-tree", "ls-remote", "grep", "cat-file",
        "show-ref", "for-each-ref", "whatchanged", "name-rev", "merge-base", "count-objects",
        "fsck", "help", "version", "var", "check-ignore", "check-attr", "cherry", "range-diff",
        "show-branch", "diff-tree", "diff-files", "diff-index", "verify-commit", "verify-tag",
        "difftool", "instaweb", "archive", "bundle", "format-patch", "request-pull", "citool",
        "gitk", "log-tree", "check-ref-format", "column", "hash-object",
    }
)  # fmt: skip
# git's own options that take a separate value before the subcommand
_GLOBAL_VALUE_OPTIONS = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--super-prefix", "--config-env",
     "--exec-path", "--list-cmds", "--attr-source"}
)  # fmt: skip
# git -c keys that make git run other programs or skip hooks
_EXEC_CONFIG_PREFIXES = (
    "core.hookspath", "core.sshcommand", "core.fsmonitor", "core.pager", "core.editor",
    "core.askpass", "core.gitproxy", "alias.", "credential.helper", "url.", "diff.external",
    "sequence.editor", "gpg.program", "uploadpack.packobjectshook", "protocol.",
    "filter.", "http.extraheader", "include.path", "includeif.",
)  # fmt: skip


@dataclass
class _Call:
    """One git invocation after the global options."""

    command: SimpleCommand
    context: ClassifyContext
    subcommand: str
    args: list[str]
    repo: str | None
    config: list[str] = field(default_factory=list)
    raw: str = ""

    @property
    def hooks_disabled(self) -> bool:
        return any(c.lower().startswith("core.hookspath=") for c in self.config)

    def op(
        self,
        action: str,
        access: Access,
        risk: Risk,
        *,
        resource: str | None = None,
        flags: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        use_repo: bool = True,
    ) -> Operation:
        all_flags = list(flags or [])
        attrs = {"subcommand": self.subcommand, **(attributes or {})}
        if self.config:
            attrs["config_overrides"] = ",".join(self.config)
            if any(c.lower().startswith(_EXEC_CONFIG_PREFIXES) for c in self.config):
                add_flag(all_flags, "config-override")
                risk = max_risk(risk, "medium")
        if resource is None and use_repo:
            resource = self.repo
        elif self.repo is not None and not use_repo:
            attrs.setdefault("repo", self.repo)
        return Operation(
            kind="git",
            action=action,
            resource=resource,
            access=access,
            risk=risk,
            flags=all_flags,
            attributes=attrs,
            raw=self.raw,
        )


@dataclass
class _Args:
    flags: set[str]
    values: dict[str, str]
    positionals: list[str]
    after_dashdash: list[str]
    saw_dashdash: bool


def _parse(
    args: list[str],
    *,
    short_value: str = "",
    long_value: frozenset[str] = frozenset(),
    optional_short: str = "",
) -> _Args:
    """GNU-style parsing: short clusters (``-fd``, ``-am msg``), ``--opt=value``, and ``--``.
    ``optional_short`` letters take a value only when attached (``-S<keyid>``). Every option
    given is in ``flags``; those given a value are also in ``values``."""
    parsed = _Args(set(), {}, [], [], False)
    for name, value in iter_options(
        args,
        short_value=short_value,
        long_value=long_value,
        optional_short=optional_short,
        report_dashdash=True,
    ):
        if name == DASHDASH:
            parsed.saw_dashdash = True
        elif name == POSITIONAL:
            words = parsed.after_dashdash if parsed.saw_dashdash else parsed.positionals
            words.append(value or "")
        else:
            parsed.flags.add(name)
            if value is not None:
                parsed.values[name] = value
            elif len(name) == 2 and name[1] in optional_short:
                parsed.values[name] = ""  # -S without a key id
    return parsed


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    """The operations of one git command; [] for ``git`` alone, ``--version`` or ``--help``."""
    try:
        call = _split(command, context)
        if call is None:
            return []
        handler = _HANDLERS.get(call.subcommand)
        if handler is not None:
            return handler(call)
        if call.subcommand in _READ_SUBCOMMANDS:
            return [call.op("git:Read", "read", "low")]
        return [call.op("git:Unknown", "write", "medium", flags=["unknown-subcommand"])]
    except Exception:  # a classifier must never break the hook
        return [classifier_error("git:Unknown", raw=command.text)]


def _split(command: SimpleCommand, context: ClassifyContext) -> _Call | None:
    argv = command.argv
    repo: str | None = context.cwd or context.project_root
    config: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            break
        name, eq, value = arg.partition("=")
        if name in _GLOBAL_VALUE_OPTIONS and not eq and name != "--exec-path":
            value = argv[i + 1] if i + 1 < len(argv) else ""
            i += 2
        else:
            i += 1
        if name == "-C" and value:
            base = ClassifyContext(
                cwd=repo, home=context.home, project_root=context.project_root, env=context.env
            )
            repo = resolve_path(value, base)[0]
        elif name == "-c" and value:
            config.append(value)
        elif name in ("--git-dir", "--work-tree") and value:
            repo = resolve_path(value, context)[0]
            if name == "--git-dir" and posixpath.basename(repo) == ".git":
                repo = posixpath.dirname(repo)
    if i >= len(argv):
        return None
    return _Call(
        command=command,
        context=context,
        subcommand=argv[i],
        args=list(argv[i + 1 :]),
        repo=repo,
        config=config,
        raw=command.text,
    )


# ---------------------------------------------------------------------------------------------
# push
# ---------------------------------------------------------------------------------------------


def _branch_of(ref: str) -> tuple[str | None, str | None]:
    """(branch, tag) named by the destination of a refspec."""
    if ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :], None
    if ref.startswith("refs/tags/"):
        return None, ref[len("refs/tags/") :]
    if ref.startswith("refs/"):
        return None, None
    if ref in ("HEAD", "@"):
        return None, None
    return ref, None


def _push(call: _Call) -> list[Operation]:
    args = _parse(
        call.args,
        short_value="o",
        long_value=frozenset({"--repo", "--push-option", "--receive-pack", "--exec"}),
    )
    flags_in = args.flags
    positionals = args.positionals + args.after_dashdash
    force = bool(flags_in & {"-f", "--force"})
    lease = bool(flags_in & {"--force-with-lease", "--force-if-includes"}) and not force
    delete = bool(flags_in & {"-d", "--delete"})
    common: list[str] = []
    if force:
        common.append("force")
    if lease:
        common.append("force-with-lease")
    for option, flag in (
        ("--mirror", "mirror"),
        ("--all", "all"),
        ("--branches", "all"),
        ("--tags", "tags"),
        ("--follow-tags", "tags"),
        ("--prune", "prune"),
        ("--no-verify", "no-verify"),
        ("-n", "dry-run"),
        ("--dry-run", "dry-run"),
        ("-u", "set-upstream"),
        ("--set-upstream", "set-upstream"),
    ):
        if option in flags_in:
            add_flag(common, flag)
    if call.hooks_disabled:
        add_flag(common, "no-verify")
    remote = args.values.get("--repo")
    if remote is None and positionals:
        remote = positionals.pop(0)
    remote_display = strip_url_credentials(remote) if remote else None

    def push_op(refspec: str | None) -> Operation:
        flags = list(common)
        attributes: dict[str, str] = {}
        if remote_display:
            attributes["remote"] = remote_display
        branch: str | None = None
        tag: str | None = None
        is_delete = delete
        if refspec is not None:
            attributes["refspec"] = refspec
            spec = refspec
            if spec.startswith("+"):
                add_flag(flags, "force")
                spec = spec[1:]
            if delete:
                destination = spec
            elif ":" in spec:
                source, _, destination = spec.partition(":")
                if source == "":
                    is_delete = True
                destination = destination or source
            else:
                destination = spec
            branch, tag = _branch_of(destination)
            if destination in ("HEAD", "@"):
                add_flag(flags, "current-branch")
        elif not {"mirror", "all", "tags"} & set(flags):
            add_flag(flags, "current-branch")
        if is_delete:
            add_flag(flags, "delete")
        if branch is not None:
            attributes["branch"] = branch
        if tag is not None:
            attributes["tag"] = tag
        protected = branch in PROTECTED_BRANCHES
        forced = "force" in flags or "force-with-lease" in flags
        risk: Risk = "medium"
        if forced:
            risk = "high" if "force" in flags else "medium"
        if "all" in flags or "prune" in flags:
            risk = max_risk(risk, "high")
        if protected:
            risk = max_risk(risk, "high")
        if protected and (forced or is_delete):
            risk = "critical"
        if "mirror" in flags:
            risk = "critical"
        if "current-branch" in flags and forced:
            risk = max_risk(risk, "high")  # the current branch may well be main
        if "no-verify" in flags:
            risk = max_risk(risk, "medium")
        if "dry-run" in flags:
            risk = "low"
        access: Access = "delete" if is_delete or "prune" in flags else "write"
        if "mirror" in flags:
            access = "delete"  # --mirror removes remote refs that are gone locally
        resource = remote_display
        if remote_display and (branch or tag):
            resource = f"{remote_display}/{branch or tag}"
        return call.op(
            "git:Push",
            access,
            risk,
            resource=resource,
            flags=flags,
            attributes=attributes,
            use_repo=False,
        )

    if not positionals:
        return [push_op(None)]
    return [push_op(refspec) for refspec in positionals]


# ---------------------------------------------------------------------------------------------
# history and working tree
# ---------------------------------------------------------------------------------------------


def _reset(call: _Call) -> list[Operation]:
    args = _parse(call.args)
    target = args.positionals[0] if args.positionals else "HEAD"
    attributes = {"target": target}
    if "--hard" in args.flags:
        return [call.op("git:ResetHard", "delete", "high", attributes=attributes)]
    if "--keep" in args.flags or "--merge" in args.flags:
        return [call.op("git:Reset", "write", "medium", attributes=attributes)]
    mode = "soft" if "--soft" in args.flags else "mixed"
    attributes["mode"] = mode
    return [call.op("git:Reset", "write", "low", attributes=attributes)]


def _clean(call: _Call) -> list[Operation]:
    args = _parse(call.args, short_value="e", long_value=frozenset({"--exclude"}))
    flags: list[str] = []
    if args.flags & {"-f", "--force"}:
        flags.append("force")
    if "-d" in args.flags:
        flags.append("directories")
    if "-x" in args.flags:
        flags.append("ignored")
    if "-X" in args.flags:
        flags.append("ignored-only")
    if args.flags & {"-n", "--dry-run"}:
        flags.append("dry-run")
        return [call.op("git:Clean", "read", "low", flags=flags)]
    if args.flags & {"-i", "--interactive"}:
        flags.append("interactive")
    if "force" not in flags and "interactive" not in flags:
        # clean.requireForce (the default) makes git refuse; still a deletion attempt
        flags.append("no-force")
        return [call.op("git:Clean", "delete", "medium", flags=flags)]
    return [call.op("git:Clean", "delete", "high", flags=flags)]


def _commit(call: _Call) -> list[Operation]:
    args = _parse(
        call.args,
        short_value="mFCct",
        long_value=frozenset(
            {
                "--message",
                "--file",
                "--reuse-message",
                "--reedit-message",
                "--author",
                "--date",
                "--template",
                "--fixup",
                "--squash",
                "--cleanup",
                "--trailer",
                "--pathspec-from-file",
            }
        ),
        optional_short="Su",
    )
    flags: list[str] = []
    risk: Risk = "low"
    if "--amend" in args.flags:
        flags.append("amend")
    if args.flags & {"-n", "--no-verify"} or call.hooks_disabled:
        flags.append("no-verify")
        risk = "medium"
    if args.flags & {"-a", "--all"}:
        flags.append("all")
    if "--allow-empty" in args.flags:
        flags.append("allow-empty")
    attributes: dict[str, str] = {}
    if "--author" in args.values:
        attributes["author"] = args.values["--author"]
    return [call.op("git:Commit", "write", risk, flags=flags, attributes=attributes)]


def _rebase(call: _Call) -> list[Operation]:
    args = _parse(
        call.args,
        short_value="sXx",
        long_value=frozenset({"--onto", "--strategy", "--strategy-option", "--exec"}),
    )
    flags: list[str] = []
    if args.flags & {"--abort", "--quit"}:
        return [call.op("git:Rebase", "write", "low", flags=["abort"])]
    if args.flags & {"--continue", "--skip"}:
        return [call.op("git:Rebase", "write", "medium", flags=["continue"])]
    if args.flags & {"-i", "--interactive"}:
        flags.append("interactive")
    if "--root" in args.flags:
        flags.append("root")
    if args.flags & {"-x", "--exec"}:
        flags.append("exec")
    attributes: dict[str, str] = {}
    if args.positionals:
        attributes["upstream"] = args.positionals[0]
    if "--onto" in args.values:
        attributes["onto"] = args.values["--onto"]
    if len(args.positionals) > 1:
        attributes["branch"] = args.positionals[1]
    risk: Risk = "high" if attributes.get("branch") in PROTECTED_BRANCHES else "medium"
    return [call.op("git:Rebase", "write", risk, flags=flags, attributes=attributes)]


def _looks_like_path(arg: str) -> bool:
    """Whether an argument without ``--`` reads as a file rather than a branch or commit."""
    if arg in (".", "..", ":/", "*") or arg.startswith(("./", "../", ":(", "*")):
        return True
    base = arg.rsplit("/", 1)[-1]
    if "." in base and not base.startswith("."):
        extension = base.rsplit(".", 1)[1]
        return extension.isalpha() and 1 <= len(extension) <= 5
    return base.startswith(".") and len(base) > 1 and base not in ("..",)


def _discard(call: _Call, paths: list[str], flags: list[str], source: str | None) -> Operation:
    attributes = {"paths": ",".join(paths)}
    if source:
        attributes["source"] = source
    return call.op("git:DiscardChanges", "delete", "medium", flags=flags, attributes=attributes)


def _checkout(call: _Call) -> list[Operation]:
    args = _parse(
        call.args,
        short_value="bB",
        long_value=frozenset({"--orphan", "--conflict", "--pathspec-from-file"}),
    )
    force = bool(args.flags & {"-f", "--force"})
    flags = ["force"] if force else []
    if args.saw_dashdash:
        source = args.positionals[0] if args.positionals else None
        return [_discard(call, args.after_dashdash, flags, source)]
    create = args.values.get("-b") or args.values.get("-B") or args.values.get("--orphan")
    if create is not None:
        if "-B" in args.values:
            flags.append("force")
        flags.append("create")
        access: Access = "delete" if "-B" in args.values or force else "write"
        risk: Risk = "medium" if access == "delete" else "low"
        return [call.op("git:Checkout", access, risk, flags=flags, attributes={"branch": create})]
    positionals = args.positionals
    if not positionals:
        return [call.op("git:Checkout", "write", "low", flags=flags)]
    if len(positionals) == 1 and _looks_like_path(positionals[0]):
        plain = positionals[0] in (".", "./") or positionals[0].startswith(("./", "../", ":"))
        extra = [] if plain else ["ambiguous-pathspec"]
        return [_discard(call, positionals, [*flags, *extra], None)]
    if len(positionals) > 1:
        return [_discard(call, positionals[1:], flags, positionals[0])]
    access = "delete" if force else "write"
    return [
        call.op(
            "git:Checkout",
            access,
            "medium" if force else "low",
            flags=flags,
            attributes={"branch": positionals[0]},
        )
    ]


def _switch(call: _Call) -> list[Operation]:
    args = _parse(call.args, short_value="cC", long_value=frozenset({"--orphan", "--conflict"}))
    force = bool(args.flags & {"-f", "--force", "--discard-changes"})
    flags = ["force"] if force else []
    branch = args.values.get("-c") or args.values.get("-C") or args.values.get("--orphan")
    if branch is not None:
        flags.append("create")
        if "-C" in args.values:
            add_flag(flags, "force")
    elif args.positionals:
        branch = args.positionals[0]
    attributes = {"branch": branch} if branch else {}
    access: Access = "delete" if force else "write"
    return [
        call.op(
            "git:Checkout", access, "medium" if force else "low", flags=flags, attributes=attributes
        )
    ]


def _restore(call: _Call) -> list[Operation]:
    args = _parse(
        call.args,
        short_value="s",
        long_value=frozenset({"--source", "--pathspec-from-file", "--conflict"}),
    )
    paths = args.positionals + args.after_dashdash
    source = args.values.get("-s") or args.values.get("--source")
    staged = bool(args.flags & {"-S", "--staged"})
    worktree = bool(args.flags & {"-W", "--worktree"})
    if staged and not worktree:
        return [call.op("git:Unstage", "write", "low", attributes={"paths": ",".join(paths)})]
    return [_discard(call, paths, [], source)]


def _stash(call: _Call) -> list[Operation]:
    action = call.args[0] if call.args and not call.args[0].startswith("-") else "push"
    if action == "drop":
        target = call.args[1] if len(call.args) > 1 else "stash@{0}"
        return [call.op("git:StashDrop", "delete", "medium", attributes={"stash": target})]
    if action == "clear":
        return [call.op("git:StashClear", "delete", "medium")]
    if action in ("list", "show"):
        return [call.op("git:Read", "read", "low")]
    if action in ("pop", "apply", "branch"):
        return [call.op("git:StashApply", "write", "low")]
    return [call.op("git:Stash", "write", "low")]


# ---------------------------------------------------------------------------------------------
# branches, tags, remotes, config
# ---------------------------------------------------------------------------------------------


def _branch(call: _Call) -> list[Operation]:
    args = _parse(
        call.args,
        short_value="ut",
        long_value=frozenset(
            {
                "--set-upstream-to",
                "--contains",
                "--no-contains",
                "--merged",
                "--no-merged",
                "--points-at",
                "--sort",
                "--format",
                "--track",
            }
        ),
    )
    f = args.flags
    names = args.positionals
    if f & {"-d", "-D", "--delete"}:
        force = bool(f & {"-D", "-f", "--force"})
        operations = []
        for name in names or [""]:
            flags = ["force"] if force else []
            if f & {"-r", "--remotes"}:
                flags.append("remote-tracking")
            protected = name in PROTECTED_BRANCHES
            risk: Risk = "high" if protected else "medium"
            operations.append(
                call.op(
                    "git:DeleteBranch", "delete", risk, flags=flags, attributes={"branch": name}
                )
            )
        return operations
    if f & {"-m", "-M", "--move", "-c", "-C", "--copy"}:
        renamed = names[0] if len(names) == 2 else None
        new = names[-1] if names else ""
        flags = ["force"] if f & {"-M", "-C", "-f", "--force"} else []
        action = "git:CopyBranch" if f & {"-c", "-C", "--copy"} else "git:RenameBranch"
        attributes = {"branch": new}
        if renamed:
            attributes["from"] = renamed
        touches_protected = bool({new, renamed} & PROTECTED_BRANCHES)
        risk = "medium" if touches_protected or flags else "low"
        return [call.op(action, "write", risk, flags=flags, attributes=attributes)]
    if f & {"-u", "--set-upstream-to", "--unset-upstream", "--edit-description"}:
        return [call.op("git:BranchConfig", "write", "low")]
    listing = f & {"-l", "--list", "-a", "--all", "-r", "--remotes", "-v", "-vv", "--show-current"}
    if not names or listing or f & {"--contains", "--merged", "--no-merged", "--points-at"}:
        return [call.op("git:Read", "read", "low")]
    flags = ["force"] if f & {"-f", "--force"} else []
    branch = names[0]
    risk = "medium" if flags else "low"
    if flags and branch in PROTECTED_BRANCHES:
        risk = "high"
    return [call.op("git:CreateBranch", "write", risk, flags=flags, attributes={"branch": branch})]


def _tag(call: _Call) -> list[Operation]:
    args = _parse(
        call.args,
        short_value="mFun",
        long_value=frozenset(
            {
                "--message",
                "--file",
                "--local-user",
                "--contains",
                "--points-at",
                "--sort",
                "--format",
                "--cleanup",
                "--merged",
                "--no-merged",
            }
        ),
    )
    f = args.flags
    if f & {"-d", "--delete"}:
        return [
            call.op("git:DeleteTag", "delete", "medium", attributes={"tag": name})
            for name in args.positionals or [""]
        ]
    if not args.positionals or f & {"-l", "--list", "-v", "--verify", "--contains"}:
        return [call.op("git:Read", "read", "low")]
    flags = ["force"] if f & {"-f", "--force"} else []
    if f & {"-s", "--sign", "-u", "--local-user"}:
        flags.append("signed")
    return [
        call.op(
            "git:Tag",
            "write",
            "medium" if "force" in flags else "low",
            flags=flags,
            attributes={"tag": args.positionals[0]},
        )
    ]


def _remote(call: _Call) -> list[Operation]:
    args = _parse(call.args, short_value="tm", long_value=frozenset({"--mirror"}))
    words = args.positionals
    if not words or words[0] in ("show", "get-url") or (not words and "-v" in args.flags):
        return [call.op("git:Read", "read", "low")]
    action, rest = words[0], words[1:]
    attributes: dict[str, str] = {"operation": action}
    if action in ("add", "set-url"):
        if rest:
            attributes["name"] = rest[0]
        flags = ["push-url"] if "--push" in args.flags else []
        if len(rest) > 1:
            attributes["url"] = strip_url_credentials(rest[1])
            if attributes["url"] != rest[1]:
                flags.append("credentials")
        return [call.op("git:RemoteChange", "admin", "medium", flags=flags, attributes=attributes)]
    if action in ("remove", "rm", "rename"):
        if rest:
            attributes["name"] = rest[0]
        if action == "rename" and len(rest) > 1:
            attributes["new_name"] = rest[1]
        return [call.op("git:RemoteChange", "admin", "medium", attributes=attributes)]
    if action in ("prune", "update"):
        return [call.op("git:Fetch", "write", "low", attributes=attributes)]
    return [call.op("git:RemoteChange", "admin", "medium", attributes=attributes)]


def _config(call: _Call) -> list[Operation]:
    args = _parse(
        call.args,
        short_value="f",
        long_value=frozenset({"--file", "--blob", "--type", "--default", "--comment"}),
    )
    f = args.flags
    words = list(args.positionals)
    scope = "local"
    for option, name in (
        ("--global", "global"),
        ("--system", "system"),
        ("--worktree", "worktree"),
        ("--file", "file"),
        ("-f", "file"),
    ):
        if option in f:
            scope = name
    reads = {"--get", "--get-all", "--get-regexp", "--get-urlmatch", "--list", "-l",
             "--get-color", "--get-colorbool", "--show-origin", "--show-scope"}  # fmt: skip
    writes = {"--unset", "--unset-all", "--add", "--replace-all", "--rename-section",
              "--remove-section", "-e", "--edit"}  # fmt: skip
    if words and words[0] in ("get", "list"):
        reading = True
        words = words[1:]
    elif words and words[0] in ("set", "unset", "rename-section", "remove-section", "edit"):
        reading = False
        words = words[1:]
    elif f & writes:
        reading = False
    elif f & reads:
        reading = True
    else:
        reading = len(words) < 2
    attributes: dict[str, str] = {"scope": scope}
    if words:
        attributes["key"] = words[0]
    if reading:
        return [call.op("git:Config", "read", "low", attributes=attributes)]
    flags: list[str] = []
    risk: Risk = "low"
    access: Access = "write"
    if scope in ("global", "system"):
        access = "admin"
        risk = "medium"
    key = attributes.get("key", "").lower()
    if key.startswith(_EXEC_CONFIG_PREFIXES):
        flags.append("exec-config")
        risk = "high"
    return [call.op("git:Config", access, risk, flags=flags, attributes=attributes)]


# ---------------------------------------------------------------------------------------------
# remotes: clone, fetch, pull
# ---------------------------------------------------------------------------------------------


def _clone(call: _Call) -> list[Operation]:
    args = _parse(
        call.args,
        short_value="bocuj",
        long_value=frozenset(
            {
                "--branch",
                "--origin",
                "--config",
                "--depth",
                "--reference",
                "--reference-if-able",
                "--separate-git-dir",
                "--upload-pack",
                "--template",
                "--jobs",
                "--filter",
                "--shallow-since",
                "--shallow-exclude",
                "--server-option",
                "--bundle-uri",
                "--revision",
            }
        ),
    )
    words = args.positionals + args.after_dashdash
    if not words:
        return []
    url = words[0]
    clean = strip_url_credentials(url)
    flags: list[str] = []
    if clean != url:
        flags.append("credentials")
    attributes = {"url": clean}
    directory = words[1] if len(words) > 1 else _clone_dir(url)
    if directory:
        attributes["directory"] = resolve_path(directory, call.context)[0]
    branch = args.values.get("-b") or args.values.get("--branch")
    if branch:
        attributes["branch"] = branch
    risk: Risk = "low"
    if args.flags & {"-u", "--upload-pack", "-c", "--config"}:
        flags.append("config-override")
        risk = "medium"
    return [call.op("git:Clone", "read", risk, resource=clean, flags=flags, attributes=attributes)]


def _clone_dir(url: str) -> str:
    tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return tail[:-4] if tail.endswith(".git") else tail


def _fetch_like(call: _Call) -> list[Operation]:
    args = _parse(
        call.args,
        short_value="jo",
        long_value=frozenset(
            {
                "--depth",
                "--deepen",
                "--shallow-since",
                "--shallow-exclude",
                "--jobs",
                "--upload-pack",
                "--server-option",
                "--refmap",
                "--negotiation-tip",
                "--recurse-submodules-default",
                "--strategy",
                "--strategy-option",
                "-X",
                "-s",
            }
        ),
    )
    pull = call.subcommand == "pull"
    flags: list[str] = []
    attributes: dict[str, str] = {}
    words = args.positionals
    if words:
        attributes["remote"] = strip_url_credentials(words[0])
        if strip_url_credentials(words[0]) != words[0]:
            flags.append("credentials")
    if len(words) > 1:
        branch, _tag = _branch_of(words[1].lstrip("+").partition(":")[0])
        if branch:
            attributes["branch"] = branch
    if args.flags & {"-p", "--prune", "-P", "--prune-tags"}:
        flags.append("prune")
    if "--all" in args.flags:
        flags.append("all")
    if args.flags & {"-f", "--force"}:
        flags.append("force")
    if pull:
        if args.flags & {"-r", "--rebase"} or "--rebase" in args.values:
            flags.append("rebase")
        return [call.op("git:Pull", "write", "low", flags=flags, attributes=attributes)]
    return [call.op("git:Fetch", "read", "low", flags=flags, attributes=attributes)]


# ---------------------------------------------------------------------------------------------
# everything else
# ---------------------------------------------------------------------------------------------


def _rm(call: _Call) -> list[Operation]:
    args = _parse(call.args, long_value=frozenset({"--pathspec-from-file"}))
    paths = args.positionals + args.after_dashdash
    flags = []
    if args.flags & {"-r"}:
        flags.append("recursive")
    if args.flags & {"-f", "--force"}:
        flags.append("force")
    attributes = {"paths": ",".join(paths)}
    if "--cached" in args.flags:
        return [
            call.op("git:Remove", "write", "low", flags=["cached", *flags], attributes=attributes)
        ]
    if args.flags & {"-n", "--dry-run"}:
        return [call.op("git:Remove", "read", "low", flags=["dry-run"], attributes=attributes)]
    return [call.op("git:Remove", "delete", "medium", flags=flags, attributes=attributes)]


def _history_rewrite(call: _Call) -> list[Operation]:
    action = "git:FilterRepo" if call.subcommand == "filter-repo" else "git:FilterBranch"
    return [call.op(action, "delete", "critical", flags=["rewrites-history"])]


def _reflog(call: _Call) -> list[Operation]:
    action = call.args[0] if call.args else "show"
    if action in ("expire", "delete"):
        return [call.op("git:ReflogExpire", "delete", "high", flags=["rewrites-history"])]
    return [call.op("git:Read", "read", "low")]


def _gc(call: _Call) -> list[Operation]:
    prune_now = any(a in ("--prune=now", "--prune=all") for a in call.args)
    if call.subcommand == "prune" or prune_now:
        return [call.op("git:Prune", "delete", "medium", flags=["prune"])]
    return [call.op("git:Maintenance", "write", "low")]


def _update_ref(call: _Call) -> list[Operation]:
    args = _parse(call.args, short_value="m")
    ref = args.positionals[0] if args.positionals else ""
    branch, _tag = _branch_of(ref)
    attributes = {"ref": ref}
    if args.flags & {"-d"}:
        return [call.op("git:UpdateRef", "delete", "high", flags=["delete"], attributes=attributes)]
    risk: Risk = "high" if branch in PROTECTED_BRANCHES else "medium"
    return [call.op("git:UpdateRef", "write", risk, attributes=attributes)]


def _worktree(call: _Call) -> list[Operation]:
    action = call.args[0] if call.args else "list"
    if action == "list":
        return [call.op("git:Read", "read", "low")]
    if action in ("remove", "prune"):
        force = any(a in ("-f", "--force") for a in call.args[1:])
        return [
            call.op(
                "git:Worktree",
                "delete",
                "medium" if force else "low",
                flags=["force"] if force else [],
                attributes={"operation": action},
            )
        ]
    return [call.op("git:Worktree", "write", "low", attributes={"operation": action})]


def _simple(
    action: str, access: Access = "write", risk: Risk = "low"
) -> Callable[[_Call], list[Operation]]:
    def handler(call: _Call) -> list[Operation]:
        flags = ["abort"] if "--abort" in call.args else []
        return [call.op(action, access, risk, flags=flags)]

    return handler


_HANDLERS = {
    "push": _push,
    "reset": _reset,
    "clean": _clean,
    "branch": _branch,
    "commit": _commit,
    "rebase": _rebase,
    "checkout": _checkout,
    "switch": _switch,
    "restore": _restore,
    "remote": _remote,
    "clone": _clone,
    "fetch": _fetch_like,
    "pull": _fetch_like,
    "config": _config,
    "stash": _stash,
    "tag": _tag,
    "filter-branch": _history_rewrite,
    "filter-repo": _history_rewrite,
    "rm": _rm,
    "reflog": _reflog,
    "gc": _gc,
    "prune": _gc,
    "update-ref": _update_ref,
    "worktree": _worktree,
    "add": _simple("git:Add"),
    "mv": _simple("git:Move"),
    "merge": _simple("git:Merge"),
    "cherry-pick": _simple("git:CherryPick"),
    "revert": _simple("git:Revert"),
    "am": _simple("git:Apply"),
    "apply": _simple("git:Apply"),
    "init": _simple("git:Init"),
    "submodule": _simple("git:Submodule"),
    "notes": _simple("git:Notes"),
    "bisect": _simple("git:Bisect"),
    "maintenance": _simple("git:Maintenance"),
    "sparse-checkout": _simple("git:SparseCheckout"),
    "lfs": _simple("git:Lfs", "write", "low"),
}
