"""GitHub CLI: ``gh <noun> <verb>`` and ``gh api``.

The action is ``github:<Noun><Verb>`` (``gh pr merge`` → ``github:PullRequestMerge``,
``gh repo delete`` → ``github:RepoDelete``) on ``github://<owner>/<repo>/<noun>/<target>``;
``gh api`` becomes ``github:Api<Method>`` (``github:ApiDelete``), its method from ``-X``,
else GET, else POST when fields are sent, as gh does. The repository comes from ``-R/--repo``,
the positional of ``gh repo ...``, an ``repos/OWNER/REPO`` endpoint or ``GH_REPO``; else
``current`` (the checkout's remote).
"""

from __future__ import annotations

import re

from trailguard.classify._tool_common import (
    ParsedArgs,
    camel,
    env_value,
    first_positional,
    gives_secrets,
    is_command_word,
    looks_prod,
    make_operation,
    max_risk,
    never_raises,
    parse_args,
    raise_risk,
)
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import Access, Operation, Risk

__all__ = ["PROGRAMS", "classify"]

PROGRAMS: frozenset[str] = frozenset({"gh"})

_NOUNS = {
    "pr": "PullRequest",
    "issue": "Issue",
    "repo": "Repo",
    "release": "Release",
    "secret": "Secret",
    "variable": "Variable",
    "workflow": "Workflow",
    "run": "Run",
    "gist": "Gist",
    "label": "Label",
    "auth": "Auth",
    "ssh-key": "SshKey",
    "gpg-key": "GpgKey",
    "codespace": "Codespace",
    "cs": "Codespace",
    "cache": "Cache",
    "ruleset": "Ruleset",
    "rs": "Ruleset",
    "project": "Project",
    "org": "Org",
    "extension": "Extension",
    "ext": "Extension",
    "extensions": "Extension",
    "browse": "Browse",
    "search": "Search",
    "status": "Status",
    "alias": "Alias",
    "config": "Config",
    "attestation": "Attestation",
    "at": "Attestation",
    "co": "PullRequest",
    "deploy-key": "DeployKey",
}
_VERB_ALIASES = {"ls": "list", "rm": "delete", "remove": "delete", "new": "create"}
_READ_VERBS = frozenset(
    {
        "view",
        "list",
        "status",
        "diff",
        "checks",
        "checkout",
        "clone",
        "download",
        "watch",
        "verify",
        "get",
        "field-list",
        "item-list",
        "logs",
    }
)
_LONG_VALUE_FLAGS = frozenset(
    {
        "--repo",
        "--hostname",
        "--method",
        "--raw-field",
        "--field",
        "--header",
        "--input",
        "--jq",
        "--template",
        "--cache",
        "--base",
        "--head",
        "--title",
        "--body",
        "--body-file",
        "--label",
        "--assignee",
        "--reviewer",
        "--milestone",
        "--project",
        "--env",
        "--org",
        "--visibility",
        "--repos",
        "--notes",
        "--notes-file",
        "--notes-start-tag",
        "--target",
        "--description",
        "--color",
        "--state",
        "--limit",
        "--author",
        "--search",
        "--json",
        "--ref",
        "--branch",
        "--status",
        "--user",
        "--workflow",
        "--commit",
        "--event",
        "--subject",
        "--author-email",
        "--match-head-commit",
        "--homepage",
        "--team",
        "--gitignore",
        "--license",
        "--source",
        "--remote",
        "--env-file",
        "--app",
        "--job",
        "--scopes",
        "--git-protocol",
        "--discussion-category",
        "--filename",
        "--key",
        "--type",
        "--add-topic",
        "--remove-topic",
        "--default-branch",
    }
)
_SHORT_VALUE_FLAGS: dict[tuple[str, str], frozenset[str]] = {
    ("pr", "create"): frozenset(["-B", "-H", "-t", "-b", "-F", "-l", "-a", "-r", "-m", "-p", "-T"]),
    ("pr", "merge"): frozenset(["-t", "-b", "-F", "-A"]),
    ("pr", "list"): frozenset(["-s", "-L", "-A", "-S", "-l", "-B", "-H", "-a"]),
    ("pr", "edit"): frozenset(["-B", "-t", "-b", "-F"]),
    ("pr", "review"): frozenset(["-b", "-F"]),
    ("pr", "comment"): frozenset(["-b", "-F"]),
    ("pr", "close"): frozenset(["-c"]),
    ("issue", "create"): frozenset(["-t", "-b", "-F", "-l", "-a", "-m", "-p", "-T"]),
    ("issue", "list"): frozenset(["-s", "-L", "-A", "-S", "-l", "-a", "-m"]),
    ("issue", "comment"): frozenset(["-b", "-F"]),
    ("issue", "close"): frozenset(["-c", "-r"]),
    ("release", "create"): frozenset(["-n", "-F", "-t"]),
    ("release", "edit"): frozenset(["-n", "-F", "-t"]),
    ("secret", "set"): frozenset(["-b", "-e", "-o", "-v", "-f", "-a", "-r"]),
    ("secret", "delete"): frozenset(["-e", "-o", "-a"]),
    ("secret", "list"): frozenset(["-e", "-o", "-a"]),
    ("variable", "set"): frozenset(["-b", "-e", "-o", "-v", "-f", "-r"]),
    ("variable", "delete"): frozenset(["-e", "-o"]),
    ("workflow", "run"): frozenset(["-r", "-f", "-F"]),
    ("run", "list"): frozenset(["-b", "-s", "-u", "-w", "-c", "-e", "-L"]),
    ("run", "view"): frozenset(["-j"]),
    ("repo", "create"): frozenset(["-d", "-h", "-t", "-g", "-l", "-p", "-r"]),
    ("repo", "edit"): frozenset(),
    ("gist", "create"): frozenset(["-d", "-f"]),
    ("label", "create"): frozenset(["-c", "-d"]),
    ("auth", "login"): frozenset(["-h", "-p", "-s"]),
    ("auth", "refresh"): frozenset(["-h", "-s"]),
    ("auth", "token"): frozenset(["-h", "-u"]),
    ("api", ""): frozenset(["-X", "-f", "-F", "-H", "-q", "-t"]),
}
_GLOBAL_SHORT_VALUE_FLAGS = frozenset({"-R"})
_SECRET_FLAGS = frozenset({"-b", "--body"})

# (noun, verb) → (access, risk); the noun alone for every verb not listed.
_RULES: dict[tuple[str, str], tuple[Access, Risk]] = {
    ("pr", "create"): ("write", "medium"),
    ("pr", "merge"): ("write", "medium"),
    ("pr", "close"): ("write", "low"),
    ("pr", "reopen"): ("write", "low"),
    ("pr", "edit"): ("write", "medium"),
    ("pr", "comment"): ("write", "low"),
    ("pr", "review"): ("write", "medium"),
    ("pr", "ready"): ("write", "low"),
    ("pr", "lock"): ("write", "low"),
    ("pr", "unlock"): ("write", "low"),
    ("pr", "update-branch"): ("write", "low"),
    ("issue", "delete"): ("delete", "high"),
    ("issue", "transfer"): ("write", "medium"),
    ("repo", "create"): ("write", "medium"),
    ("repo", "delete"): ("delete", "critical"),
    ("repo", "archive"): ("write", "high"),
    ("repo", "unarchive"): ("write", "medium"),
    ("repo", "rename"): ("write", "high"),
    ("repo", "edit"): ("write", "medium"),
    ("repo", "fork"): ("write", "low"),
    ("repo", "sync"): ("write", "medium"),
    ("repo", "set-default"): ("write", "low"),
    ("repo", "deploy-key"): ("admin", "high"),
    ("release", "create"): ("write", "high"),
    ("release", "upload"): ("write", "high"),
    ("release", "edit"): ("write", "medium"),
    ("release", "delete"): ("delete", "high"),
    ("release", "delete-asset"): ("delete", "medium"),
    ("secret", "set"): ("admin", "high"),
    ("secret", "delete"): ("admin", "high"),
    ("variable", "set"): ("admin", "medium"),
    ("variable", "delete"): ("admin", "medium"),
    ("workflow", "run"): ("write", "medium"),
    ("workflow", "enable"): ("admin", "medium"),
    ("workflow", "disable"): ("admin", "medium"),
    ("run", "rerun"): ("write", "low"),
    ("run", "cancel"): ("write", "low"),
    ("run", "delete"): ("delete", "medium"),
    ("gist", "create"): ("write", "medium"),
    ("gist", "edit"): ("write", "medium"),
    ("gist", "delete"): ("delete", "medium"),
    ("label", "delete"): ("delete", "low"),
    ("auth", "login"): ("admin", "medium"),
    ("auth", "logout"): ("admin", "low"),
    ("auth", "refresh"): ("admin", "medium"),
    ("auth", "token"): ("admin", "high"),
    ("auth", "switch"): ("admin", "low"),
    ("auth", "setup-git"): ("admin", "low"),
    ("ssh-key", "add"): ("admin", "high"),
    ("ssh-key", "delete"): ("admin", "high"),
    ("gpg-key", "add"): ("admin", "high"),
    ("gpg-key", "delete"): ("admin", "high"),
    ("codespace", "ssh"): ("admin", "medium"),
    ("codespace", "delete"): ("delete", "medium"),
    ("cache", "delete"): ("delete", "low"),
    ("extension", "install"): ("admin", "medium"),
    ("extension", "upgrade"): ("admin", "medium"),
    ("extension", "exec"): ("admin", "medium"),
    ("ruleset", "check"): ("read", "low"),
}
_NOUN_DEFAULTS: dict[str, tuple[Access, Risk]] = {
    "issue": ("write", "low"),
    "label": ("write", "low"),
    "browse": ("read", "low"),
    "search": ("read", "low"),
    "status": ("read", "low"),
    "org": ("read", "low"),
    "alias": ("write", "low"),
    "config": ("write", "low"),
    "attestation": ("read", "low"),
    "cache": ("read", "low"),
}
_NOUN_ONLY = frozenset({"browse", "search", "status"})
_NOUN_ALIASES = {
    "cs": "codespace",
    "rs": "ruleset",
    "ext": "extension",
    "extensions": "extension",
    "at": "attestation",
}

_ADMIN_ENDPOINT = re.compile(
    r"/(?:actions/secrets|dependabot/secrets|codespaces/secrets|environments/[^/]+/secrets|"
    r"collaborators|branches/[^/]+/protection|hooks|keys|rulesets|actions/permissions|"
    r"teams|members|memberships|invitations|outside_collaborators|pages|"
    r"actions/runners|installations|transfer)(?:/|$)"
)
_REPO_ENDPOINT = re.compile(r"^/?repos/(?P<repo>[^/{}]+/[^/{}]+)(?P<rest>/.*)?$")


@never_raises
def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    if command.program not in PROGRAMS:
        return []
    args = list(command.argv[1:])
    global_flags = _GLOBAL_SHORT_VALUE_FLAGS | _LONG_VALUE_FLAGS
    index = first_positional(args, global_flags)
    if index is None:
        return []
    noun = args[index].lower()
    noun = _NOUN_ALIASES.get(noun, noun)
    if not is_command_word(noun):
        return []
    if noun == "api":
        parsed = parse_args(
            args[:index] + args[index + 1 :], global_flags | _SHORT_VALUE_FLAGS[("api", "")]
        )
        return _classify_api(command, context, parsed)
    rest = args[index + 1 :]
    verb = ""
    if noun == "co":
        noun, verb = "pr", "checkout"
    elif noun not in _NOUN_ONLY:
        verb_index = first_positional(rest, global_flags)
        if verb_index is not None:
            verb = rest[verb_index].lower()
            rest = rest[:verb_index] + rest[verb_index + 1 :]
    verb = _VERB_ALIASES.get(verb, verb)
    if verb and not is_command_word(verb):
        return []
    sub = ""
    if noun == "repo" and verb == "deploy-key":
        sub_index = first_positional(rest, global_flags)
        if sub_index is not None:
            sub = rest[sub_index].lower()
            rest = rest[:sub_index] + rest[sub_index + 1 :]
    value_flags = global_flags | _SHORT_VALUE_FLAGS.get((noun, verb), frozenset())
    args_before = args[:index]
    parsed = parse_args(args_before + rest, value_flags)
    access, risk = _rule(noun, verb)
    if sub == "list":
        access, risk = "read", "low"
    words = parsed.positionals
    flags: list[str] = []

    repo = parsed.get("-R", "--repo")
    if noun == "repo" and words and verb not in ("list", "deploy-key"):
        repo = repo or words[0]
    repo = repo or env_value(command, context, "GH_REPO")
    target = words[0] if words else None
    attributes: dict[str, str | None] = {
        "repo": repo,
        "host": parsed.get("--hostname") or env_value(command, context, "GH_HOST"),
    }
    if noun in ("pr", "issue"):
        attributes["number"] = target
        attributes["base"] = parsed.get("-B", "--base")
        attributes["head"] = parsed.get("-H", "--head")
    elif noun == "release":
        attributes["tag"] = target
        attributes["target"] = parsed.get("--target")
    elif noun in ("secret", "variable"):
        attributes["name"] = target
        attributes["environment"] = parsed.get("-e", "--env")
        attributes["org"] = parsed.get("-o", "--org")
        if parsed.get("-o", "--org"):
            flags.append("organization")
            risk = raise_risk(risk) if access != "read" else risk
    elif noun == "workflow":
        attributes["workflow"] = target
        attributes["ref"] = parsed.get("-r", "--ref")
    elif noun == "repo":
        attributes["file"] = target if verb == "deploy-key" else None
    elif target:
        attributes["target"] = target

    if noun == "pr" and verb == "merge":
        if parsed.has("--admin"):
            flags.append("bypass-protection")
            risk = "high"
        if parsed.has("--auto"):
            flags.append("auto-merge")
        if parsed.has("-d", "--delete-branch"):
            flags.append("delete-branch")
    if noun == "pr" and verb == "review" and parsed.has("-a", "--approve"):
        flags.append("approve")
        risk = "high"
    if noun in ("repo", "gist") and verb in ("create", "edit"):
        visibility = (parsed.get("--visibility") or "").lower()
        public_flags = ("--public", "-p") if noun == "gist" else ("--public",)
        if parsed.has(*public_flags) or visibility == "public":
            flags.append("public")
            risk = max_risk(risk, "high")
    if noun == "release" and verb == "create":
        flags.append("publish")
        if parsed.has("-d", "--draft"):
            flags.append("draft")
            risk = "medium"
    if noun == "auth" and verb in ("login", "token", "refresh"):
        flags.append("credentials")
    if parsed.has("--yes", "-y"):
        flags.append("yes")

    inputs = [value.partition("=")[2] for value in parsed.all("-f", "-F", "--raw-field", "--field")]
    if looks_prod(attributes.get("environment"), *(inputs if noun == "workflow" else [])):
        flags.append("prod")
        risk = raise_risk(risk)

    raw, has_secret = (
        command.text,
        gives_secrets(command, _SECRET_FLAGS if noun in ("secret", "variable") else ()),
    )
    if has_secret and noun == "secret":
        flags.append("inline-secret")
    noun_name = _NOUNS.get(noun, camel(noun))
    if noun == "repo":
        resource = f"github://{repo or 'current'}"
    else:
        resource = f"github://{repo or 'current'}/{noun}/{target or '*'}"
    return [
        make_operation(
            "github",
            f"github:{noun_name}{camel(verb)}{camel(sub)}",
            access=access,
            risk=risk,
            resource=resource,
            flags=flags,
            attributes=attributes,
            raw=raw,
        )
    ]


def _rule(noun: str, verb: str) -> tuple[Access, Risk]:
    if (noun, verb) in _RULES:
        return _RULES[(noun, verb)]
    if verb in _READ_VERBS or noun in _NOUN_ONLY:
        return "read", "low"
    if verb == "delete":
        return "delete", "medium"
    return _NOUN_DEFAULTS.get(noun, ("write", "medium"))


def _classify_api(
    command: SimpleCommand, context: ClassifyContext, parsed: ParsedArgs
) -> list[Operation]:
    endpoint = parsed.positionals[0] if parsed.positionals else ""
    fields = parsed.all("-f", "-F", "--raw-field", "--field")
    method = (parsed.get("-X", "--method") or "").upper()
    if not method:
        method = "POST" if fields or parsed.has("--input") else "GET"
    flags: list[str] = []
    repo = parsed.get("-R", "--repo") or env_value(command, context, "GH_REPO")
    match = _REPO_ENDPOINT.match(endpoint)
    rest = ""
    if match:
        repo = match["repo"]
        rest = match["rest"] or ""
    if endpoint == "graphql":
        query = " ".join(field.partition("=")[2] for field in fields)
        mutation = re.search(r"\bmutation\b", query) is not None
        access: Access = "write" if mutation else "read"
        risk: Risk = "medium" if mutation else "low"
        action = "github:ApiGraphql"
        if mutation:
            flags.append("mutation")
    else:
        action = f"github:Api{camel(method.lower())}"
        if method in ("GET", "HEAD", "OPTIONS"):
            access, risk = "read", "low"
        elif method == "DELETE":
            access, risk = "delete", "high"
        else:
            access, risk = "write", "medium"
        if access != "read" and _ADMIN_ENDPOINT.search(endpoint.split("?")[0]):
            access, risk = "admin", "high"
            flags.append("admin-endpoint")
        if method == "DELETE" and match and rest.strip("/") == "":
            flags.append("repo-delete")
            risk = "critical"
    raw = command.text
    return [
        make_operation(
            "github",
            action,
            access=access,
            risk=risk,
            resource=f"github://{repo or 'current'}/api/{endpoint.lstrip('/') or '*'}",
            flags=flags,
            attributes={
                "method": method,
                "endpoint": endpoint,
                "repo": repo,
                "host": parsed.get("--hostname") or env_value(command, context, "GH_HOST"),
            },
            raw=raw,
        )
    ]
