"""Container engines: ``docker``, ``podman``, ``nerdctl`` and Compose (``docker compose``,
``docker-compose``, ``podman-compose``).

Every engine maps to ``docker:<Command>`` (``docker:Run``, ``docker:Rmi``,
``docker:SystemPrune``, ``docker:ComposeDown``...) so one policy covers all of them; the
``engine`` attribute says which ran. Resources are ``docker://<host>/<type>/<name>`` where
``<host>`` is ``local`` unless ``-H``/``--context``/``DOCKER_HOST`` points elsewhere.
Pushing an image (``push``, ``build --push``) also yields a ``package:Publish`` operation.
"""

from __future__ import annotations

import posixpath
import shlex

from trailguard.classify._tool_common import (
    MAX_TARGETS,
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

PROGRAMS: frozenset[str] = frozenset(
    {"docker", "podman", "nerdctl", "docker-compose", "podman-compose"}
)

_GLOBAL_VALUE_FLAGS = frozenset(
    {
        "-H",
        "--host",
        "-c",
        "--context",
        "--config",
        "-l",
        "--log-level",
        "--tlscacert",
        "--tlscert",
        "--tlskey",
        "--connection",
        "--url",
        "--root",
        "--runroot",
        "--storage-driver",
        "--storage-opt",
        "--identity",
        "--cgroup-manager",
        "--events-backend",
        "--module",
        "--tmpdir",
        "--volumepath",
        "--imagestore",
        "--hooks-dir",
        "--runtime",
        "--conmon",
        "--namespace",
        "-n",
        "--address",
        "-a",
        "--snapshotter",
        "--cni-path",
        "--data-root",
    }
)
_RUN_VALUE_FLAGS = frozenset(
    {
        "-a",
        "--attach",
        "--add-host",
        "--annotation",
        "--blkio-weight",
        "--blkio-weight-device",
        "--cap-add",
        "--cap-drop",
        "--cgroup-parent",
        "--cgroupns",
        "--cidfile",
        "--cpu-period",
        "--cpu-quota",
        "--cpu-rt-period",
        "--cpu-rt-runtime",
        "-c",
        "--cpu-shares",
        "--cpus",
        "--cpuset-cpus",
        "--cpuset-mems",
        "--device",
        "--device-cgroup-rule",
        "--device-read-bps",
        "--device-read-iops",
        "--device-write-bps",
        "--device-write-iops",
        "--dns",
        "--dns-option",
        "--dns-search",
        "--domainname",
        "--entrypoint",
        "-e",
        "--env",
        "--env-file",
        "--expose",
        "--gpus",
        "--group-add",
        "--health-cmd",
        "--health-interval",
        "--health-retries",
        "--health-start-period",
        "--health-start-interval",
        "--health-timeout",
        "-h",
        "--hostname",
        "--ip",
        "--ip6",
        "--ipc",
        "--isolation",
        "--kernel-memory",
        "-l",
        "--label",
        "--label-file",
        "--link",
        "--link-local-ip",
        "--log-driver",
        "--log-opt",
        "--mac-address",
        "-m",
        "--memory",
        "--memory-reservation",
        "--memory-swap",
        "--memory-swappiness",
        "--mount",
        "--name",
        "--network",
        "--net",
        "--network-alias",
        "--oom-score-adj",
        "--pid",
        "--pids-limit",
        "--platform",
        "-p",
        "--publish",
        "--pull",
        "--restart",
        "--runtime",
        "--security-opt",
        "--shm-size",
        "--stop-signal",
        "--stop-timeout",
        "--storage-opt",
        "--sysctl",
        "--tmpfs",
        "--ulimit",
        "-u",
        "--user",
        "--userns",
        "--uts",
        "-v",
        "--volume",
        "--volume-driver",
        "--volumes-from",
        "-w",
        "--workdir",
        "--detach-keys",
        "--pod",
        "--secret",
        "--arch",
        "--os",
        "--variant",
    }
)
_EXEC_VALUE_FLAGS = frozenset(
    {"-e", "--env", "--env-file", "-u", "--user", "-w", "--workdir", "--detach-keys"}
)
_BUILD_VALUE_FLAGS = frozenset(
    {
        "-t",
        "--tag",
        "-f",
        "--file",
        "--build-arg",
        "--build-context",
        "--cache-from",
        "--cache-to",
        "--label",
        "--network",
        "--platform",
        "--progress",
        "--secret",
        "--ssh",
        "--target",
        "-o",
        "--output",
        "--iidfile",
        "--metadata-file",
        "--builder",
        "--add-host",
        "--shm-size",
        "--ulimit",
        "--attest",
        "--provenance",
        "--sbom",
        "--allow",
        "--annotation",
        "--call",
        "-m",
        "--memory",
        "--cpu-shares",
        "--cgroup-parent",
        "--isolation",
    }
)
_LOGIN_VALUE_FLAGS = frozenset({"-u", "--username", "-p", "--password"})
# Long options are unambiguous across commands; short ones are not (`ps -f` filters, `rm -f`
# forces, `logs -f` follows), so each command lists its own.
_OTHER_LONG_VALUE_FLAGS = frozenset(
    {
        "--filter",
        "--format",
        "--time",
        "--timeout",
        "--signal",
        "--tail",
        "--since",
        "--until",
        "--platform",
        "--output",
        "--message",
        "--author",
        "--change",
        "--driver",
        "--opt",
        "--label",
        "--subnet",
        "--gateway",
        "--ip",
        "--ip-range",
        "--aux-address",
        "--alias",
        "--last",
        "--limit",
        "--scope",
        "--ipam-driver",
        "--ipam-opt",
        "--docker",
        "--description",
    }
)
_SHORT_VALUE_FLAGS: dict[str, frozenset[str]] = {
    "ps": frozenset({"-f", "-n"}),
    "images": frozenset({"-f"}),
    "events": frozenset({"-f"}),
    "system-events": frozenset({"-f"}),
    "search": frozenset({"-f"}),
    "logs": frozenset({"-n"}),
    "stop": frozenset({"-t", "-s"}),
    "restart": frozenset({"-t", "-s"}),
    "kill": frozenset({"-s"}),
    "commit": frozenset({"-a", "-c", "-m"}),
    "import": frozenset({"-c", "-m"}),
    "save": frozenset({"-o"}),
    "export": frozenset({"-o"}),
    "network-create": frozenset({"-d", "-o"}),
    "volume-create": frozenset({"-d", "-o"}),
}
_COMPOSE_GLOBAL_VALUE_FLAGS = frozenset(
    {
        "-f",
        "--file",
        "-p",
        "--project-name",
        "--project-directory",
        "--env-file",
        "--profile",
        "--ansi",
        "--parallel",
        "--progress",
    }
)
_COMPOSE_LONG_VALUE_FLAGS = frozenset(
    {
        "--scale",
        "--timeout",
        "--exit-code-from",
        "--pull",
        "--wait-timeout",
        "--attach",
        "--no-attach",
        "--rmi",
        "--env",
        "--entrypoint",
        "--name",
        "--publish",
        "--user",
        "--volume",
        "--workdir",
        "--label",
        "--index",
        "--tail",
        "--since",
        "--until",
        "--build-arg",
        "--ssh",
        "--policy",
        "--format",
        "--filter",
        "--signal",
    }
)
_COMPOSE_SHORT_VALUE_FLAGS: dict[str, frozenset[str]] = {
    "up": frozenset({"-t"}),
    "down": frozenset({"-t"}),
    "stop": frozenset({"-t"}),
    "restart": frozenset({"-t"}),
    "run": frozenset({"-e", "-p", "-u", "-v", "-w", "-l"}),
    "exec": frozenset({"-e", "-u", "-w"}),
    "logs": frozenset({"-n"}),
    "kill": frozenset({"-s"}),
}
# (group, command) → normalised command.
_MANAGEMENT: dict[tuple[str, str], str] = {
    ("container", "ls"): "ps",
    ("container", "list"): "ps",
    ("container", "prune"): "container-prune",
    ("image", "rm"): "rmi",
    ("image", "remove"): "rmi",
    ("image", "ls"): "images",
    ("image", "list"): "images",
    ("image", "prune"): "image-prune",
    ("system", "info"): "info",
    ("builder", "build"): "build",
    ("buildx", "build"): "build",
    ("buildx", "b"): "build",
    ("buildx", "bake"): "build",
    ("buildx", "prune"): "builder-prune",
    ("buildx", "rm"): "builder-rm",
}
_COMMAND_ALIASES = {"remove": "rm", "delete": "rm", "list": "ps", "container-ls": "ps"}
_PASSTHROUGH_GROUPS = frozenset({"container", "image"})
_GROUPS = frozenset(
    {
        "container",
        "image",
        "volume",
        "network",
        "system",
        "builder",
        "buildx",
        "context",
        "plugin",
        "secret",
        "config",
        "swarm",
        "node",
        "service",
        "stack",
        "manifest",
        "trust",
        "pod",
        "machine",
        "kube",
    }
)
_COMMANDS: dict[str, tuple[Access, Risk]] = {
    "run": ("write", "medium"),
    "create": ("write", "medium"),
    "exec": ("admin", "medium"),
    "attach": ("admin", "medium"),
    "cp": ("admin", "medium"),
    "build": ("write", "low"),
    "push": ("write", "high"),
    "pull": ("read", "low"),
    "tag": ("write", "low"),
    "commit": ("write", "low"),
    "save": ("read", "low"),
    "export": ("read", "low"),
    "load": ("write", "low"),
    "import": ("write", "low"),
    "start": ("write", "low"),
    "stop": ("write", "low"),
    "restart": ("write", "low"),
    "pause": ("write", "low"),
    "unpause": ("write", "low"),
    "kill": ("write", "low"),
    "rename": ("write", "low"),
    "update": ("write", "low"),
    "rm": ("delete", "medium"),
    "rmi": ("delete", "medium"),
    "container-prune": ("delete", "medium"),
    "image-prune": ("delete", "medium"),
    "builder-prune": ("delete", "low"),
    "builder-rm": ("delete", "low"),
    "system-prune": ("delete", "medium"),
    "system-df": ("read", "low"),
    "system-events": ("read", "low"),
    "volume-rm": ("delete", "high"),
    "volume-prune": ("delete", "high"),
    "volume-create": ("write", "low"),
    "volume-ls": ("read", "low"),
    "volume-inspect": ("read", "low"),
    "network-rm": ("delete", "medium"),
    "network-prune": ("delete", "medium"),
    "network-create": ("write", "low"),
    "network-connect": ("write", "low"),
    "network-disconnect": ("write", "low"),
    "network-ls": ("read", "low"),
    "network-inspect": ("read", "low"),
    "ps": ("read", "low"),
    "images": ("read", "low"),
    "logs": ("read", "low"),
    "inspect": ("read", "low"),
    "info": ("read", "low"),
    "version": ("read", "low"),
    "stats": ("read", "low"),
    "top": ("read", "low"),
    "history": ("read", "low"),
    "diff": ("read", "low"),
    "port": ("read", "low"),
    "events": ("read", "low"),
    "search": ("read", "low"),
    "wait": ("read", "low"),
    "login": ("admin", "medium"),
    "logout": ("admin", "low"),
    "context-ls": ("read", "low"),
    "context-inspect": ("read", "low"),
    "context-show": ("read", "low"),
    "context-use": ("write", "low"),
    "context-create": ("write", "low"),
    "plugin-install": ("admin", "high"),
    "secret-create": ("admin", "medium"),
    "secret-rm": ("delete", "medium"),
}
_COMPOSE_COMMANDS: dict[str, tuple[Access, Risk]] = {
    "up": ("write", "medium"),
    "down": ("delete", "medium"),
    "rm": ("delete", "medium"),
    "run": ("write", "medium"),
    "exec": ("admin", "medium"),
    "cp": ("admin", "medium"),
    "build": ("write", "low"),
    "push": ("write", "high"),
    "pull": ("read", "low"),
    "create": ("write", "low"),
    "start": ("write", "low"),
    "stop": ("write", "low"),
    "restart": ("write", "low"),
    "pause": ("write", "low"),
    "unpause": ("write", "low"),
    "kill": ("write", "low"),
    "scale": ("write", "low"),
    "watch": ("write", "medium"),
    "ps": ("read", "low"),
    "logs": ("read", "low"),
    "config": ("read", "low"),
    "ls": ("read", "low"),
    "images": ("read", "low"),
    "top": ("read", "low"),
    "port": ("read", "low"),
    "version": ("read", "low"),
    "events": ("read", "low"),
    "stats": ("read", "low"),
    "wait": ("read", "low"),
}

_CONTAINER_TARGET = frozenset(
    {
        "exec",
        "attach",
        "start",
        "stop",
        "restart",
        "pause",
        "unpause",
        "kill",
        "rm",
        "logs",
        "inspect",
        "top",
        "stats",
        "port",
        "diff",
        "export",
        "commit",
        "rename",
        "update",
        "wait",
    }
)
_IMAGE_TARGET = frozenset({"rmi", "pull", "push", "history", "save", "tag", "run", "create"})
_DANGEROUS_CAPS = frozenset(
    {
        "ALL",
        "SYS_ADMIN",
        "SYS_PTRACE",
        "SYS_MODULE",
        "SYS_RAWIO",
        "DAC_READ_SEARCH",
        "DAC_OVERRIDE",
        "NET_ADMIN",
        "BPF",
        "PERFMON",
    }
)
_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/var/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
)
_SOCKET_DIRECTORIES = frozenset({"/var/run", "/run", "/run/podman", "/run/containerd"})
_SENSITIVE_HOST_PATHS = (
    "/etc",
    "/root",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/var/lib/docker",
    "/var/lib/containers",
    "/var/lib/kubelet",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
)
_SENSITIVE_HOME_DIRS = (
    ".ssh",
    ".aws",
    ".kube",
    ".docker",
    ".gnupg",
    ".azure",
    ".config/gcloud",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
)
_SECRET_FLAGS = frozenset({"-p", "--password"})


@never_raises
def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    program = command.program
    if program not in PROGRAMS:
        return []
    args = list(command.argv[1:])
    if program in ("docker-compose", "podman-compose"):
        engine = "podman" if program.startswith("podman") else "docker"
        return _classify_compose(command, context, args, engine, ParsedArgs())
    engine = program
    index = first_positional(args, _GLOBAL_VALUE_FLAGS)
    if index is None:
        return []
    global_args = parse_args(args[:index], _GLOBAL_VALUE_FLAGS)
    name = args[index].lower()
    rest = args[index + 1 :]
    if not is_command_word(name):
        return []
    if name == "compose":
        return _classify_compose(command, context, rest, engine, global_args)
    if name in _GROUPS:
        sub_index = first_positional(rest, _GLOBAL_VALUE_FLAGS)
        if sub_index is None:
            return []
        sub = rest[sub_index].lower()
        if not is_command_word(sub):
            return []
        rest = rest[:sub_index] + rest[sub_index + 1 :]
        if (name, sub) in _MANAGEMENT:
            name = _MANAGEMENT[(name, sub)]
        elif name in _PASSTHROUGH_GROUPS:
            name = _COMMAND_ALIASES.get(sub, sub)
        else:
            name = f"{name}-{_COMMAND_ALIASES.get(sub, sub)}"
    return _classify_engine(command, context, engine, name, global_args, rest)


def _host(command: SimpleCommand, context: ClassifyContext, global_args: ParsedArgs) -> str:
    """The engine the command talks to, for the resource: ``local`` for the default or a unix
    socket, else the host (scheme removed) or context name."""
    host = _host_setting(command, context, global_args)
    if host.startswith("unix://"):
        return "local"
    return host.partition("://")[2] or host if "://" in host else host


def _host_setting(command: SimpleCommand, context: ClassifyContext, global_args: ParsedArgs) -> str:
    return (
        global_args.get("-H", "--host", "--context", "--connection", "--url")
        or (global_args.get("-c") if command.program != "nerdctl" else None)
        or env_value(command, context, "DOCKER_HOST", "DOCKER_CONTEXT", "CONTAINER_HOST")
        or env_value(command, context, "CONTAINER_CONNECTION")
        or "local"
    )


def _value_flags(name: str) -> frozenset[str]:
    if name in ("run", "create"):
        return _RUN_VALUE_FLAGS
    if name == "exec":
        return _EXEC_VALUE_FLAGS
    if name == "build":
        return _BUILD_VALUE_FLAGS
    if name == "login":
        return _LOGIN_VALUE_FLAGS
    return _OTHER_LONG_VALUE_FLAGS | _SHORT_VALUE_FLAGS.get(name, frozenset())


def _classify_engine(
    command: SimpleCommand,
    context: ClassifyContext,
    engine: str,
    name: str,
    global_args: ParsedArgs,
    rest: list[str],
) -> list[Operation]:
    access, risk = _COMMANDS.get(name, ("write", "medium"))
    if name in ("run", "create", "exec"):
        # Options end at the image / container: the rest is the command run inside.
        image_index = first_positional(rest, _value_flags(name))
        if image_index is not None:
            inner = rest[image_index + 1 :]
            rest = [*rest[: image_index + 1], "--", *inner]
    parsed = parse_args(rest, _value_flags(name))
    words = parsed.positionals
    host = _host(command, context, global_args)
    setting = _host_setting(command, context, global_args)
    flags: list[str] = []
    attributes: dict[str, str | None] = {
        "engine": engine,
        "host": setting if setting != "local" else None,
    }
    raw, has_secret = command.text, gives_secrets(command, _SECRET_FLAGS if name == "login" else ())

    if name in ("run", "create"):
        risk = _run_risk(parsed, context, flags, attributes)
        attributes["name"] = parsed.get("--name")
    elif name == "exec":
        if parsed.has("--privileged"):
            flags.append("privileged")
            risk = "high"
        user = parsed.get("-u", "--user")
        if user and user.split(":")[0] in ("root", "0"):
            flags.append("root")
        attributes["user"] = user
    elif name == "system-prune":
        if parsed.has("--volumes"):
            flags.append("volumes")
            risk = "high"
        if parsed.has("-a", "--all"):
            flags.append("all")
    elif name in ("rm", "rmi", "volume-rm") and parsed.has("-f", "--force"):
        flags.append("force")
    elif name == "login":
        flags.append("credentials")
        if has_secret:
            flags.append("inline-secret")
        attributes["registry"] = words[0] if words else "docker.io"
        attributes["username"] = parsed.get("-u", "--username")
    if name == "rm" and parsed.has("-v", "--volumes"):
        flags.append("volumes")
        risk = "high"
    if parsed.rest and name in ("run", "create", "exec"):
        attributes["command"] = shlex.join(parsed.rest)

    published: list[str] = []
    if name == "push":
        published = words[:1]
    elif name == "build":
        tags = parsed.all("-t", "--tag")
        attributes["tags"] = ",".join(tags) if tags else None
        outputs = parsed.all("-o", "--output")
        if parsed.has("--push") or any("type=registry" in output for output in outputs):
            access, risk = "write", "high"
            published = tags or ["(untagged)"]
            flags.append("publish")
    if published:
        flags.append("publish")
        attributes["registry"] = registry_of(published[0])

    if looks_prod(setting) or (name == "push" and looks_prod(*published)):
        flags.append("prod")
        risk = raise_risk(risk)

    targets = _targets(name, words)
    operations = [
        make_operation(
            "docker",
            f"docker:{camel(name)}",
            access=access,
            risk=risk,
            resource=f"docker://{host}/{kind}/{target}" if kind else f"docker://{host}",
            flags=flags,
            attributes={**attributes, kind or "target": target},
            raw=raw,
        )
        for kind, target in targets[:MAX_TARGETS]
    ]
    for image in published[:MAX_TARGETS]:
        operations.append(
            make_operation(
                "package",
                "package:Publish",
                access="write",
                risk=max_risk(risk, "high"),
                resource=f"package://docker/{image}",
                flags=flags,
                attributes={
                    "ecosystem": "docker",
                    "registry": registry_of(image),
                    "package": image,
                    "tool": engine,
                },
                raw=raw,
            )
        )
    return operations


def _targets(name: str, words: list[str]) -> list[tuple[str | None, str | None]]:
    """(type, name) of each object a command names: one entry with no type when it names none."""
    if name in ("run", "create"):
        return [("image", words[0] if words else None)]
    if name == "build":
        return [("context", words[0] if words else ".")]
    if name == "cp":
        for word in words[:2]:
            container, colon, _path = word.partition(":")
            if colon and container and "/" not in container:
                return [("container", container)]
        return [("container", None)]
    if name in _IMAGE_TARGET:
        kind = "image"
        if name == "tag":
            words = words[1:2]
    elif name in _CONTAINER_TARGET:
        kind = "container"
        if name == "rename":
            words = words[:1]
    elif name.partition("-")[0] in ("volume", "network", "context", "secret") and (
        name.partition("-")[2] in ("rm", "create", "inspect", "use", "connect", "disconnect")
    ):
        kind = name.partition("-")[0]
        if name in ("network-connect", "network-disconnect"):
            words = words[:1]
    else:
        return [(None, None)]
    if not words:
        return [(kind, None)]
    return [(kind, word) for word in words]


def registry_of(image: str) -> str:
    """The registry an image reference names (``ghcr.io/acme/app:1`` → ``ghcr.io``); Docker Hub
    (``docker.io``) when the first component is not a host."""
    first, slash, _rest = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _run_risk(
    parsed: ParsedArgs,
    context: ClassifyContext,
    flags: list[str],
    attributes: dict[str, str | None],
) -> Risk:
    """Flag each way a container can reach the host; one makes the run high risk, the host's
    root or container socket mounted (or two ways at once) critical."""
    vectors: list[str] = []
    critical = False
    if parsed.has("--privileged"):
        vectors.append("privileged")
    for option, flag in (
        (("--network", "--net"), "host-network"),
        (("--pid",), "host-pid"),
        (("--ipc",), "host-ipc"),
        (("--userns",), "host-userns"),
        (("--uts",), "host-uts"),
        (("--cgroupns",), "host-cgroupns"),
    ):
        if parsed.get(*option) == "host":
            vectors.append(flag)
    caps = {cap.upper().removeprefix("CAP_") for cap in parsed.all("--cap-add")}
    if caps & _DANGEROUS_CAPS:
        vectors.append("dangerous-capability")
    for security_opt in parsed.all("--security-opt"):
        normalised = security_opt.replace(":", "=").replace(" ", "")
        if normalised in ("seccomp=unconfined", "apparmor=unconfined", "label=disable") or (
            normalised.startswith("systempaths=unconfined")
        ):
            vectors.append("unconfined")
    if parsed.has("--device"):
        vectors.append("host-device")

    mounts = _host_mounts(parsed)
    if mounts:
        attributes["mounts"] = ",".join(mounts)
    for source in mounts:
        path = _expand_home(source, context)
        if path == "/":
            vectors.append("host-root-mount")
            critical = True
        elif path in _SOCKETS or path in _SOCKET_DIRECTORIES:
            vectors.append("docker-socket")
            critical = True
        elif _is_sensitive(source, path, context):
            vectors.append("sensitive-mount")
    flags.extend(vectors)
    attributes["image"] = parsed.positionals[0] if parsed.positionals else None
    if critical or len(set(vectors)) >= 2:
        return "critical"
    if vectors:
        return "high"
    return "medium"


def _host_mounts(parsed: ParsedArgs) -> list[str]:
    """Host paths bind-mounted by ``-v SRC:DST`` or ``--mount type=bind,source=SRC,...``."""
    sources: list[str] = []
    for volume in parsed.all("-v", "--volume"):
        source, colon, _target = volume.partition(":")
        if colon and source.startswith(("/", "~", ".", "$")):
            sources.append(source)
    for mount in parsed.all("--mount"):
        fields = dict(part.partition("=")[::2] for part in mount.split(",") if "=" in part)
        if fields.get("type", "volume") != "bind":
            continue
        bind_source = fields.get("source") or fields.get("src")
        if bind_source:
            sources.append(bind_source)
    return sources


def _expand_home(path: str, context: ClassifyContext) -> str:
    home = context.home or "~"
    for prefix in ("$HOME", "${HOME}", "~"):
        if path == prefix or path.startswith(prefix + "/"):
            path = home + path[len(prefix) :]
            break
    normalised = posixpath.normpath(path) if path.startswith("/") else path
    return normalised


def _is_sensitive(source: str, path: str, context: ClassifyContext) -> bool:
    """A host path whose mounting hands the container secrets or control of the host: system
    directories, a whole home directory, or credentials under one."""
    home = (context.home or "").rstrip("/")
    if source.rstrip("/") in ("~", "$HOME", "${HOME}") or (home and path.rstrip("/") == home):
        return True
    for base in filter(None, (home, "~", "$HOME", "${HOME}")):
        if _home_secret(path, base) or _home_secret(source, base):
            return True
    if home and path.startswith(home + "/"):
        return False  # a project directory under the home is an ordinary mount
    parts = path.strip("/").split("/")
    if parts[0] == "home":
        return len(parts) <= 2  # /home or /home/alice, not /home/alice/src/app
    return any(path == prefix or path.startswith(prefix + "/") for prefix in _SENSITIVE_HOST_PATHS)


def _home_secret(path: str, home: str) -> bool:
    base = home.rstrip("/") + "/"
    return path.startswith(base) and any(
        path[len(base) :] == secret or path[len(base) :].startswith(secret + "/")
        for secret in _SENSITIVE_HOME_DIRS
    )


# --- compose --------------------------------------------------------------------------------


def _classify_compose(
    command: SimpleCommand,
    context: ClassifyContext,
    args: list[str],
    engine: str,
    global_args: ParsedArgs,
) -> list[Operation]:
    index = first_positional(args, _COMPOSE_GLOBAL_VALUE_FLAGS)
    if index is None:
        return []
    compose_args = parse_args(args[:index], _COMPOSE_GLOBAL_VALUE_FLAGS)
    sub = args[index].lower()
    if not is_command_word(sub):
        return []
    parsed = parse_args(
        args[index + 1 :],
        _COMPOSE_LONG_VALUE_FLAGS | _COMPOSE_SHORT_VALUE_FLAGS.get(sub, frozenset()),
    )
    access, risk = _COMPOSE_COMMANDS.get(sub, ("write", "medium"))
    host = _host(command, context, global_args)
    setting = _host_setting(command, context, global_args)
    project = (
        compose_args.get("-p", "--project-name")
        or env_value(command, context, "COMPOSE_PROJECT_NAME")
        or "current"
    )
    files = compose_args.all("-f", "--file")
    compose_file_env = env_value(command, context, "COMPOSE_FILE")
    if not files and compose_file_env:
        files = compose_file_env.replace(";", ":").split(":")
    flags: list[str] = []
    if sub in ("down", "rm") and parsed.has("-v", "--volumes"):
        flags.append("volumes")
        risk = "high"
    if sub == "down" and parsed.has("--rmi"):
        flags.append("remove-images")
    if sub == "up" and parsed.has("-d", "--detach"):
        flags.append("detach")
    if sub == "up" and parsed.has("--build"):
        flags.append("build")
    if sub == "up" and parsed.has("--force-recreate"):
        flags.append("force-recreate")
    if sub == "run":
        for source in _host_mounts(parsed):
            path = _expand_home(source, context)
            if path == "/" or _is_sensitive(source, path, context):
                flags.append("sensitive-mount")
                risk = "high"
    if sub == "push":
        flags.append("publish")
    if looks_prod(setting, project, *files, compose_args.get("--env-file")):
        flags.append("prod")
        risk = raise_risk(risk)
    services = [word for word in parsed.positionals if sub not in ("run", "exec")]
    if sub in ("run", "exec") and parsed.positionals:
        services = parsed.positionals[:1]
    raw = command.text
    attributes = {
        "engine": engine,
        "host": setting if setting != "local" else None,
        "project": project,
        "files": ",".join(files) if files else None,
        "services": ",".join(services) if services else None,
    }
    operations = [
        make_operation(
            "docker",
            f"docker:Compose{camel(sub)}",
            access=access,
            risk=risk,
            resource=f"docker://{host}/compose/{project}",
            flags=flags,
            attributes=attributes,
            raw=raw,
        )
    ]
    if sub == "push":
        operations.append(
            make_operation(
                "package",
                "package:Publish",
                access="write",
                risk=max_risk(risk, "high"),
                resource=f"package://docker/compose:{project}",
                flags=flags,
                attributes={"ecosystem": "docker", "package": f"compose:{project}"},
                raw=raw,
            )
        )
    return operations
