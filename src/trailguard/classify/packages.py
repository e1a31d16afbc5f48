"""Package managers: publishing (``npm publish``, ``twine upload``, ``cargo publish``,
``gem push``...) and installing (``npm install``, ``pip install``, ``cargo add``...).

Publishing is ``package:Publish`` (write, high); ``npm unpublish`` and ``cargo``/``gem yank``
are ``package:Unpublish`` / ``package:Yank`` (delete, high); installs are ``package:Install``
(write, low), medium when they fetch from a URL or git (flag ``from-url``) or from a custom
index. ``docker push`` is classified with the containers. Resources are
``package://<ecosystem>/<package>``.
"""

from __future__ import annotations

import re

from trailguard.classify._tool_common import (
    ParsedArgs,
    env_value,
    first_positional,
    gives_secrets,
    make_operation,
    never_raises,
    parse_args,
    strip_userinfo,
)
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import Access, Operation, Risk

__all__ = ["PROGRAMS", "classify"]

_PYTHONS = frozenset({"python", "python3", *(f"python3.{minor}" for minor in range(8, 15))})
PROGRAMS: frozenset[str] = frozenset(
    {
        "npm",
        "yarn",
        "pnpm",
        "bun",
        "twine",
        "pip",
        "pip3",
        "pipx",
        "poetry",
        "cargo",
        "gem",
        "uv",
        "hatch",
        "flit",
        "pdm",
        *_PYTHONS,
    }
)

_ECOSYSTEMS = {
    "npm": "npm",
    "yarn": "npm",
    "pnpm": "npm",
    "bun": "npm",
    "twine": "pypi",
    "pip": "pypi",
    "pipx": "pypi",
    "poetry": "pypi",
    "uv": "pypi",
    "hatch": "pypi",
    "flit": "pypi",
    "pdm": "pypi",
    "cargo": "crates",
    "gem": "rubygems",
}
_NPM_INSTALL = frozenset(
    {
        "install",
        "i",
        "in",
        "ins",
        "inst",
        "insta",
        "instal",
        "isnt",
        "isnta",
        "isntal",
        "isntall",
        "add",
        "ci",
        "clean-install",
        "install-clean",
        "install-test",
        "it",
    }
)
_NPM_UNINSTALL = frozenset({"uninstall", "remove", "rm", "r", "un", "unlink"})
_LONG_VALUE_FLAGS = frozenset(
    {
        # npm / yarn / pnpm / bun
        "--registry",
        "--tag",
        "--access",
        "--otp",
        "--workspace",
        "--prefix",
        "--omit",
        "--include",
        "--userconfig",
        "--cache",
        "--loglevel",
        "--new-version",
        "--filter",
        "--dir",
        "--cwd",
        "--message",
        # pip / uv / twine / poetry / hatch / flit / pdm / pipx
        "--requirement",
        "--constraint",
        "--editable",
        "--index-url",
        "--extra-index-url",
        "--index",
        "--default-index",
        "--find-links",
        "--target",
        "--root",
        "--src",
        "--upgrade-strategy",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--no-binary",
        "--only-binary",
        "--progress-bar",
        "--trusted-host",
        "--cert",
        "--client-cert",
        "--proxy",
        "--log",
        "--cache-dir",
        "--exists-action",
        "--config-settings",
        "--report",
        "--python",
        "--password",
        "--username",
        "--repository",
        "--repository-url",
        "--repo",
        "--publish-url",
        "--token",
        "--auth",
        "--comment",
        "--identity",
        "--sign-with",
        "--config-file",
        "--group",
        "--extras",
        "--source",
        "--dest",
        # cargo / gem
        "--git",
        "--branch",
        "--rev",
        "--path",
        "--version",
        "--vers",
        "--features",
        "--package",
        "--manifest-path",
        "--host",
        "--key",
        "--install-dir",
        "--bindir",
        "--jobs",
        "--target-dir",
    }
)
_SHORT_VALUE_FLAGS: dict[str, frozenset[str]] = {
    "npm": frozenset({"-w"}),
    "yarn": frozenset(),
    "pnpm": frozenset({"-C", "-w"}),
    "bun": frozenset(),
    "pip": frozenset({"-r", "-c", "-e", "-i", "-f", "-t"}),
    "twine": frozenset({"-r", "-u", "-p", "-c", "-i"}),
    "poetry": frozenset({"-r", "-u", "-p", "-G", "-E", "-C"}),
    "cargo": frozenset({"-p", "-F", "-j"}),
    "gem": frozenset({"-v", "-s", "-k", "-i"}),
    "uv": frozenset({"-p", "-t", "-u", "-r", "-c", "-e", "-i", "-f", "-C"}),
    "hatch": frozenset({"-r", "-u", "-a"}),
    "pdm": frozenset({"-r", "-u", "-P", "-G", "-p"}),
}
_SECRET_FLAGS: dict[str, frozenset[str]] = {
    "npm": frozenset({"--otp"}),
    "yarn": frozenset({"--otp"}),
    "pnpm": frozenset({"--otp"}),
    "bun": frozenset({"--otp"}),
    "twine": frozenset({"-p", "--password"}),
    "poetry": frozenset({"-p", "--password"}),
    "cargo": frozenset({"--token"}),
    "gem": frozenset({"--otp"}),
    "uv": frozenset({"--password", "--token"}),
    "hatch": frozenset({"-a", "--auth"}),
    "flit": frozenset(),
    "pdm": frozenset({"-P", "--password"}),
}
_UV_PUBLISH_SECRET_FLAGS = frozenset({"-p", "-t", "--password", "--token"})
_AUTH_CONFIG = re.compile(r"^--.*(?:_authToken|_auth|_password)$", re.IGNORECASE)
_NPM_REMOTE_SPEC = re.compile(
    r"^(?:git\+|git@|git://|https?://|github:|gitlab:|bitbucket:|gist:|[\w.-]+/[\w.-]+(?:#.*)?$)"
)
_TEST_REGISTRY = re.compile(r"test\.pypi|testpypi|localhost|127\.0\.0\.1|verdaccio", re.I)


@never_raises
def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    program = command.program
    if program not in PROGRAMS:
        return []
    args = list(command.argv[1:])
    if program in _PYTHONS:
        module_args = _python_module(args)
        if module_args is None:
            return []
        program, args = module_args
        if program not in ("pip", "twine"):
            return []
    if program == "uv" and args[:1] == ["pip"]:
        program, args = "pip", args[1:]
    elif program == "uv" and args[:2] == ["tool", "install"]:
        args = ["install", *args[2:]]
    elif program == "yarn" and args[:2] == ["npm", "publish"]:
        args = ["publish", *args[2:]]
    elif program in ("yarn", "pnpm") and args[:1] == ["global"]:
        args = [*args[1:], "--global"]

    family = "pip" if program in ("pip", "pip3", "pipx") else program
    value_flags = _LONG_VALUE_FLAGS | _SHORT_VALUE_FLAGS.get(family, frozenset())
    index = first_positional(args, value_flags)
    if index is None:
        if program != "yarn":  # a bare `yarn` (or `yarn --frozen-lockfile`) installs
            return []
        verb, rest = "install", args
    else:
        verb = args[index].lower()
        rest = args[:index] + args[index + 1 :]
    secret_flags = _SECRET_FLAGS.get(family, frozenset())
    if program == "uv" and verb == "publish":
        secret_flags = _UV_PUBLISH_SECRET_FLAGS
    secret_flags |= {arg.partition("=")[0] for arg in args if _is_auth_config(arg)}
    parsed = parse_args(rest, value_flags | secret_flags)
    ecosystem = _ECOSYSTEMS.get(program, program)
    raw, has_secret = command.text, gives_secrets(command, secret_flags)

    if verb in ("publish", "upload", "push") and _publishes(program, verb):
        return [_publish(command, context, program, ecosystem, parsed, raw, has_secret)]
    if (program == "npm" and verb == "unpublish") or (
        verb == "yank" and program in ("cargo", "gem")
    ):
        return [_unpublish(command, context, program, ecosystem, verb, parsed, raw, has_secret)]
    if _installs(program, verb):
        return [_install(command, context, program, ecosystem, parsed, raw, has_secret)]
    if _uninstalls(program, verb):
        packages = parsed.positionals
        return [
            make_operation(
                "package",
                "package:Uninstall",
                access="delete",
                risk="low",
                resource=f"package://{ecosystem}/{packages[0] if len(packages) == 1 else '*'}",
                flags=["global"] if parsed.has("-g", "--global") else [],
                attributes={
                    "ecosystem": ecosystem,
                    "tool": _tool(command, program),
                    "packages": ",".join(packages[:20]) if packages else None,
                },
                raw=raw,
            )
        ]
    return []


def _python_module(args: list[str]) -> tuple[str, list[str]] | None:
    """``python [-I -u ...] -m MODULE args`` → (MODULE, args); None for scripts and ``-c``."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-m" and index + 1 < len(args):
            return args[index + 1], args[index + 2 :]
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:], args[index + 1 :]
        if not arg.startswith("-") or arg.startswith("-c") or arg == "-":
            return None
        if arg in ("-W", "-X", "--check-hash-based-pycs"):
            index += 1
        index += 1
    return None


def _tool(command: SimpleCommand, program: str) -> str:
    """What ran: ``uv`` for ``uv pip install``, the module for ``python -m twine``."""
    return program if command.program in _PYTHONS else command.program


def _is_auth_config(arg: str) -> bool:
    return _AUTH_CONFIG.match(arg.partition("=")[0]) is not None


def _publishes(program: str, verb: str) -> bool:
    if verb == "publish":
        return program in (
            "npm",
            "yarn",
            "pnpm",
            "bun",
            "poetry",
            "cargo",
            "uv",
            "hatch",
            "flit",
            "pdm",
        )
    if verb == "upload":
        return program == "twine"
    return verb == "push" and program == "gem"


def _installs(program: str, verb: str) -> bool:
    if program == "npm":
        return verb in _NPM_INSTALL
    if program in ("yarn", "pnpm", "bun"):
        return verb in ("add", "install", "i")
    if program in ("pip", "pip3", "pipx", "cargo", "gem"):
        return verb in ("install", "add") and not (program in ("pip", "pip3") and verb == "add")
    if program in ("poetry", "uv", "pdm"):
        return verb in ("add", "install", "sync")
    return False


def _uninstalls(program: str, verb: str) -> bool:
    if program == "npm":
        return verb in _NPM_UNINSTALL
    if program in ("yarn", "pnpm", "bun", "poetry", "uv", "pdm", "cargo"):
        return verb in ("remove", "rm", "uninstall", "un")
    return program in ("pip", "pip3", "pipx", "gem") and verb == "uninstall"


def _registry(
    command: SimpleCommand, context: ClassifyContext, program: str, parsed: ParsedArgs
) -> str | None:
    registry = parsed.get(
        "--registry",
        "--repository-url",
        "--publish-url",
        "--index",
        "--host",
        "-r",
        "--repository",
        "--repo",
    )
    if registry is None and program in ("npm", "yarn", "pnpm", "bun"):
        registry = env_value(command, context, "npm_config_registry", "NPM_CONFIG_REGISTRY")
    if registry is None and program == "twine":
        registry = env_value(command, context, "TWINE_REPOSITORY_URL", "TWINE_REPOSITORY")
    if registry is None and program == "uv":
        registry = env_value(command, context, "UV_PUBLISH_URL")
    if registry is None and program == "gem":
        registry = env_value(command, context, "RUBYGEMS_HOST")
    return strip_userinfo(registry) if registry else None


def _publish(
    command: SimpleCommand,
    context: ClassifyContext,
    program: str,
    ecosystem: str,
    parsed: ParsedArgs,
    raw: str,
    has_secret: bool,
) -> Operation:
    flags = ["publish"]
    risk: Risk = "high"
    registry = _registry(command, context, program, parsed)
    package = parsed.get("-p", "--package") if program == "cargo" else None
    if program in ("npm", "yarn", "pnpm", "bun", "gem") and parsed.positionals:
        package = parsed.positionals[0]
    elif program == "twine" and parsed.positionals:
        package = ",".join(parsed.positionals[:20])
    if parsed.has("--dry-run", "-n") and program != "gem":
        flags.append("dry-run")
        risk = "low"
    elif registry and _TEST_REGISTRY.search(registry):
        flags.append("test-registry")
        risk = "medium"
    if has_secret:
        flags.append("credentials")
    if parsed.get("--access") == "public":
        flags.append("public")
    if parsed.has("--no-git-checks"):
        flags.append("no-git-checks")
    return make_operation(
        "package",
        "package:Publish",
        access="write",
        risk=risk,
        resource=f"package://{ecosystem}/{package or '.'}",
        flags=flags,
        attributes={
            "ecosystem": ecosystem,
            "tool": _tool(command, program),
            "registry": registry,
            "package": package,
            "tag": parsed.get("--tag"),
        },
        raw=raw,
    )


def _unpublish(
    command: SimpleCommand,
    context: ClassifyContext,
    program: str,
    ecosystem: str,
    verb: str,
    parsed: ParsedArgs,
    raw: str,
    has_secret: bool,
) -> Operation:
    package = parsed.positionals[0] if parsed.positionals else None
    version = parsed.get("--version", "--vers", "-v")
    flags: list[str] = []
    access: Access = "delete"
    if parsed.has("--force", "-f"):
        flags.append("force")
    if parsed.has("--undo"):
        flags.append("undo")
        access = "write"
    if has_secret:
        flags.append("credentials")
    return make_operation(
        "package",
        "package:Unpublish" if verb == "unpublish" else "package:Yank",
        access=access,
        risk="high",
        resource=f"package://{ecosystem}/{package or '.'}",
        flags=flags,
        attributes={
            "ecosystem": ecosystem,
            "tool": _tool(command, program),
            "registry": _registry(command, context, program, parsed),
            "package": package,
            "version": version,
        },
        raw=raw,
    )


def _install(
    command: SimpleCommand,
    context: ClassifyContext,
    program: str,
    ecosystem: str,
    parsed: ParsedArgs,
    raw: str,
    has_secret: bool,
) -> Operation:
    specs = [*parsed.positionals, *parsed.all("-e", "--editable")]
    if program == "cargo":
        specs += [f"git+{url}" for url in parsed.all("--git")]
    flags: list[str] = []
    risk: Risk = "low"
    remote = [spec for spec in specs if _is_remote(program, spec)]
    if remote:
        flags.append("from-url")
        risk = "medium"
    if any(_is_local(spec) for spec in specs if spec not in remote) or parsed.has("--path"):
        flags.append("from-path")
    index = None
    if program in ("pip", "pip3", "uv", "pipx", "poetry", "pdm"):
        index = parsed.get("-i", "--index-url", "--extra-index-url", "--index", "--default-index")
        index = index or parsed.get("-f", "--find-links")
    elif program in ("npm", "yarn", "pnpm", "bun"):
        index = parsed.get("--registry")
    elif program in ("gem", "cargo"):
        index = parsed.get("--source", "-s", "--registry", "--index")
    if index:
        flags.append("custom-index")
        risk = "medium"
    if parsed.has("--extra-index-url"):
        flags.append("extra-index")
    if parsed.has("--trusted-host"):
        flags.append("trusted-host")
        risk = "medium"
    if parsed.has("-g", "--global"):
        flags.append("global")
    if parsed.has("--break-system-packages"):
        flags.append("break-system-packages")
    if has_secret:
        flags.append("credentials")
    requirements = parsed.all("-r", "--requirement") if program in ("pip", "pip3", "uv") else []
    packages = [strip_userinfo(spec) for spec in specs]
    return make_operation(
        "package",
        "package:Install",
        access="write",
        risk=risk,
        resource=f"package://{ecosystem}/{packages[0] if len(packages) == 1 else '*'}",
        flags=flags,
        attributes={
            "ecosystem": ecosystem,
            "tool": _tool(command, program),
            "packages": ",".join(packages[:20]) if packages else None,
            "requirements": ",".join(requirements) if requirements else None,
            "registry": strip_userinfo(index) if index else None,
            "sources": ",".join(strip_userinfo(spec) for spec in remote[:20]) if remote else None,
        },
        raw=raw,
    )


def _is_remote(program: str, spec: str) -> bool:
    if "://" in spec or spec.startswith(("git+", "git@")) or " @ " in spec:
        return True
    if program in ("npm", "yarn", "pnpm", "bun") and not spec.startswith(("@", ".", "/", "~")):
        return _NPM_REMOTE_SPEC.match(spec) is not None
    return False


def _is_local(spec: str) -> bool:
    return spec.startswith((".", "/", "~", "file:")) or spec.endswith(
        (".whl", ".tar.gz", ".tgz", ".zip", ".gem", ".crate")
    )
