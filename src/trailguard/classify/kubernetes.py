"""Kubernetes: ``kubectl``, OpenShift's ``oc`` and ``helm``.

``kubectl <verb> ...`` becomes ``k8s:<Verb>`` on ``k8s://<context>/<namespace>/<kind>/<name>``
(one operation per named target); ``helm <verb>`` becomes ``helm:<Verb>`` on
``helm://<kube-context>/<namespace>/<release>``. A context or namespace that is not given is
``current`` (whatever the kubeconfig selects); cluster-scoped kinds use namespace ``_cluster``.
"""

from __future__ import annotations

import re
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

PROGRAMS: frozenset[str] = frozenset({"kubectl", "oc", "helm"})

CURRENT = "current"
CLUSTER_SCOPE = "_cluster"

_GLOBAL_VALUE_FLAGS = frozenset(
    {
        "--context",
        "--cluster",
        "--user",
        "-n",
        "--namespace",
        "--kubeconfig",
        "-s",
        "--server",
        "--token",
        "--as",
        "--as-group",
        "--as-uid",
        "--request-timeout",
        "--cache-dir",
        "--certificate-authority",
        "--client-certificate",
        "--client-key",
        "--tls-server-name",
        "--password",
        "--username",
        "-v",
        "--v",
        "--vmodule",
        "--log-dir",
        "--log-file",
        "--profile",
        "--profile-output",
        "--log-flush-frequency",
    }
)
_VALUE_FLAGS = _GLOBAL_VALUE_FLAGS | frozenset(
    {
        "-f",
        "--filename",
        "-k",
        "--kustomize",
        "-o",
        "--output",
        "-l",
        "--selector",
        "--field-selector",
        "-c",
        "--container",
        "-p",
        "--patch",
        "--patch-file",
        "--type",
        "--replicas",
        "--current-replicas",
        "--resource-version",
        "--timeout",
        "--grace-period",
        "--image",
        "--port",
        "--target-port",
        "--name",
        "--overrides",
        "--from-literal",
        "--from-file",
        "--from-env-file",
        "--from",
        "--sort-by",
        "--tail",
        "--since",
        "--since-time",
        "--limit-bytes",
        "--max-log-requests",
        "--for",
        "--field-manager",
        "--prune-allowlist",
        "--template",
        "-L",
        "--label-columns",
        "--chunk-size",
        "--subresource",
        "--address",
        "--pod-running-timeout",
        "--to-revision",
        "--revision",
        "--min",
        "--max",
        "--cpu-percent",
        "--docker-server",
        "--docker-username",
        "--docker-password",
        "--docker-email",
        "--cert",
        "--key",
        "--clusterip",
        "--external-name",
        "--tcp",
        "--schedule",
        "--restart",
        "--env",
        "-e",
        "--labels",
        "--serviceaccount",
        "--pod-selector",
        "--skip-wait-for-delete-timeout",
        "--raw",
        "--verb",
        "--resource",
        "--role",
        "--clusterrole",
        "--group",
        "--duration",
        "--audience",
        "--target",
        "--profile",
        "--copy-to",
    }
)
# For `kubectl logs`, -f is --follow and -p is --previous: both are booleans.
_LOGS_VALUE_FLAGS = _VALUE_FLAGS - {"-f", "-p"}

_SECRET_FLAGS = frozenset({"--token", "--password", "--docker-password"})
_LOGIN_SECRET_FLAGS = _SECRET_FLAGS | {"-p"}  # `oc login -u bob -p secret`

_KINDS: dict[str, tuple[str, ...]] = {
    "pod": ("po", "pods"),
    "service": ("svc", "services"),
    "deployment": ("deploy", "deployments"),
    "namespace": ("ns", "namespaces"),
    "node": ("no", "nodes"),
    "replicaset": ("rs", "replicasets"),
    "statefulset": ("sts", "statefulsets"),
    "daemonset": ("ds", "daemonsets"),
    "configmap": ("cm", "configmaps"),
    "secret": ("secrets",),
    "serviceaccount": ("sa", "serviceaccounts"),
    "ingress": ("ing", "ingresses"),
    "job": ("jobs",),
    "cronjob": ("cj", "cronjobs"),
    "persistentvolume": ("pv", "persistentvolumes"),
    "persistentvolumeclaim": ("pvc", "persistentvolumeclaims"),
    "customresourcedefinition": ("crd", "crds", "customresourcedefinitions"),
    "role": ("roles",),
    "rolebinding": ("rolebindings",),
    "clusterrole": ("clusterroles",),
    "clusterrolebinding": ("clusterrolebindings",),
    "horizontalpodautoscaler": ("hpa", "horizontalpodautoscalers"),
    "networkpolicy": ("netpol", "networkpolicies"),
    "storageclass": ("sc", "storageclasses"),
    "endpoints": ("ep",),
    "event": ("ev", "events"),
    "certificatesigningrequest": ("csr", "certificatesigningrequests"),
    "poddisruptionbudget": ("pdb", "poddisruptionbudgets"),
    "priorityclass": ("pc", "priorityclasses"),
    "mutatingwebhookconfiguration": ("mutatingwebhookconfigurations",),
    "validatingwebhookconfiguration": ("validatingwebhookconfigurations",),
    "apiservice": ("apiservices",),
    "project": ("projects",),
    "route": ("routes",),
    "deploymentconfig": ("dc", "deploymentconfigs"),
    "buildconfig": ("bc", "buildconfigs"),
    "imagestream": ("is", "imagestreams"),
}
_KIND_ALIASES: dict[str, str] = {
    name: canonical for canonical, aliases in _KINDS.items() for name in (canonical, *aliases)
}

_CLUSTER_SCOPED = frozenset(
    {
        "namespace",
        "node",
        "persistentvolume",
        "customresourcedefinition",
        "clusterrole",
        "clusterrolebinding",
        "storageclass",
        "certificatesigningrequest",
        "priorityclass",
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
        "apiservice",
        "project",
    }
)
_NAMESPACE_KINDS = frozenset({"namespace", "project"})
_SYSTEM_NAMESPACES = frozenset({"kube-system"})
_SECRET_OUTPUTS = ("yaml", "json", "jsonpath", "go-template", "template", "custom-columns")

# verb → (access, base risk). Verbs with sub-verbs are refined in _access_and_risk.
_VERBS: dict[str, tuple[Access, Risk]] = {
    "get": ("read", "low"),
    "describe": ("read", "low"),
    "logs": ("read", "low"),
    "log": ("read", "low"),
    "top": ("read", "low"),
    "explain": ("read", "low"),
    "api-resources": ("read", "low"),
    "api-versions": ("read", "low"),
    "version": ("read", "low"),
    "cluster-info": ("read", "low"),
    "diff": ("read", "low"),
    "wait": ("read", "low"),
    "events": ("read", "low"),
    "kustomize": ("read", "low"),
    "whoami": ("read", "low"),
    "status": ("read", "low"),
    "projects": ("read", "low"),
    "process": ("read", "low"),
    "extract": ("read", "medium"),
    "config": ("write", "low"),
    "project": ("write", "low"),
    "apply": ("write", "medium"),
    "create": ("write", "medium"),
    "patch": ("write", "medium"),
    "edit": ("write", "medium"),
    "scale": ("write", "medium"),
    "label": ("write", "medium"),
    "annotate": ("write", "medium"),
    "rollout": ("write", "medium"),
    "replace": ("write", "medium"),
    "run": ("write", "medium"),
    "expose": ("write", "medium"),
    "set": ("write", "medium"),
    "autoscale": ("write", "medium"),
    "new-app": ("write", "medium"),
    "new-project": ("write", "medium"),
    "start-build": ("write", "medium"),
    "tag": ("write", "medium"),
    "import-image": ("write", "medium"),
    "delete": ("delete", "high"),
    "drain": ("delete", "high"),
    "exec": ("admin", "high"),
    "attach": ("admin", "high"),
    "debug": ("admin", "high"),
    "rsh": ("admin", "high"),
    "cp": ("admin", "medium"),
    "rsync": ("admin", "medium"),
    "port-forward": ("admin", "medium"),
    "proxy": ("admin", "medium"),
    "auth": ("admin", "high"),
    "certificate": ("admin", "high"),
    "taint": ("admin", "medium"),
    "cordon": ("admin", "medium"),
    "uncordon": ("admin", "medium"),
    "login": ("admin", "medium"),
    "adm": ("admin", "high"),
    "policy": ("admin", "high"),
}
_SUBVERB_VERBS = frozenset({"rollout", "auth", "certificate", "config", "set", "adm", "policy"})
_IMPLIED_KIND = {
    "logs": "pod",
    "log": "pod",
    "exec": "pod",
    "attach": "pod",
    "rsh": "pod",
    "port-forward": "pod",
    "debug": "pod",
    "drain": "node",
    "cordon": "node",
    "uncordon": "node",
    "run": "pod",
    "project": "namespace",
    "new-project": "namespace",
    "new-app": "application",
    "start-build": "buildconfig",
    "certificate": "certificatesigningrequest",
}
_NO_TARGET_VERBS = frozenset(
    {
        "auth",
        "config",
        "api-resources",
        "api-versions",
        "version",
        "cluster-info",
        "login",
        "adm",
        "policy",
        "whoami",
        "status",
        "proxy",
        "kustomize",
        "explain",
    }
)
_TYPED_CREATE = {
    "secret": frozenset({"generic", "tls", "docker-registry"}),
    "service": frozenset({"clusterip", "nodeport", "loadbalancer", "externalname"}),
}


def normalize_kind(kind: str) -> str:
    """``po`` → ``pod``, ``deployments.apps`` → ``deployment``; unknown kinds stay as written."""
    kind = kind.lower()
    base, dot, _group = kind.partition(".")
    if base in _KIND_ALIASES:
        return _KIND_ALIASES[base]
    return kind if dot else _KIND_ALIASES.get(kind, kind)


@never_raises
def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    if command.program == "helm":
        return _classify_helm(command, context)
    if command.program in ("kubectl", "oc"):
        return _classify_kubectl(command, context)
    return []


# --- kubectl / oc -------------------------------------------------------------------------


def _classify_kubectl(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    args = command.argv[1:]
    verb_index = first_positional(args, _GLOBAL_VALUE_FLAGS)
    if verb_index is None:
        return []
    verb = args[verb_index].lower()
    if not is_command_word(verb):
        return []
    value_flags = _LOGS_VALUE_FLAGS if verb in ("logs", "log", "attach") else _VALUE_FLAGS
    parsed = parse_args(args[:verb_index], _GLOBAL_VALUE_FLAGS).merge(
        parse_args(args[verb_index + 1 :], value_flags)
    )
    words = parsed.positionals
    subverb = words[0].lower() if verb in _SUBVERB_VERBS and words else ""
    if subverb:
        words = words[1:]

    kube_context = parsed.get("--context") or CURRENT
    kubeconfig = parsed.get("--kubeconfig") or env_value(command, context, "KUBECONFIG")
    cluster = parsed.get("--cluster")
    server = parsed.get("--server", "-s")
    all_namespaces = parsed.has("-A", "--all-namespaces")
    namespace = "*" if all_namespaces else (parsed.get("-n", "--namespace") or CURRENT)
    files = parsed.all("-f", "--filename", "-k", "--kustomize")

    flags: list[str] = []
    attributes: dict[str, str | None] = {
        "context": kube_context,
        "cluster": cluster,
        "server": server,
        "kubeconfig": kubeconfig,
        "file": ",".join(files) if files else None,
        "subcommand": subverb or None,
        "selector": parsed.get("-l", "--selector"),
        "container": parsed.get("-c", "--container"),
        "tool": command.program,
    }
    access, risk = _access_and_risk(verb, subverb, parsed)

    dry_run = parsed.get("--dry-run")
    if dry_run is not None and dry_run != "none":
        flags.append("dry-run")
    if parsed.has("--all"):
        flags.append("all")
    if all_namespaces:
        flags.append("all-namespaces")
    if parsed.has("--force"):
        flags.append("force")
    if parsed.has("--prune"):
        flags.append("prune")
    if parsed.has("--as", "--as-group", "--as-uid"):
        flags.append("impersonation")
        attributes["as"] = parsed.get("--as")
    if parsed.has("--insecure-skip-tls-verify"):
        flags.append("insecure-tls")
    raw, has_secret = (
        command.text,
        gives_secrets(command, _LOGIN_SECRET_FLAGS if verb == "login" else _SECRET_FLAGS),
    )
    if has_secret or verb == "login" or parsed.has("--token", "--password"):
        flags.append("credentials")
    if verb in ("exec", "attach", "debug", "rsh"):
        exec_command = parsed.rest or (words[1:] if verb == "exec" else [])
        if exec_command:
            attributes["command"] = shlex.join(exec_command)
            words = words[:1]
    if verb == "login" and words:
        attributes["server"] = server or words[0]
        server = attributes["server"]
    if verb in ("adm", "policy") and words:
        attributes["subcommand"] = " ".join([subverb, *words[:1]])
    if verb == "project" and not words:
        access, risk = "read", "low"
    if verb == "create" and words and words[0].lower() == "token":
        access, risk = "admin", "high"
        flags.append("credentials")

    targets = _targets(verb, subverb, words, parsed, command)
    operations: list[Operation] = []
    for kind, name, target_namespace in targets[:MAX_TARGETS]:
        target_ns = target_namespace or namespace
        if kind in _NAMESPACE_KINDS:
            target_ns = name or target_ns
        elif kind in _CLUSTER_SCOPED:
            target_ns = CLUSTER_SCOPE
        target_risk, target_flags = _target_risk(
            verb, access, risk, kind, name, target_ns, parsed, flags
        )
        prod = looks_prod(kube_context, target_ns, cluster, server, kubeconfig, *files)
        system = target_ns in _SYSTEM_NAMESPACES and access != "read"
        if prod:
            target_flags.append("prod")
        if system:
            target_flags.append("system-namespace")
        if prod or system:
            target_risk = raise_risk(target_risk)
        if "impersonation" in target_flags:
            target_risk = raise_risk(target_risk)
        if "dry-run" in target_flags:
            target_risk = "low"
        operations.append(
            make_operation(
                "kubernetes",
                f"k8s:{camel(verb)}",
                access=access,
                risk=target_risk,
                resource=f"k8s://{kube_context}/{target_ns}/{kind or '*'}/{name or '*'}",
                flags=target_flags,
                attributes={
                    **attributes,
                    "namespace": target_ns if target_ns != CLUSTER_SCOPE else None,
                    "kind": kind,
                    "name": name,
                },
                raw=raw,
            )
        )
    return operations


def _access_and_risk(verb: str, subverb: str, parsed: ParsedArgs) -> tuple[Access, Risk]:
    access, risk = _VERBS.get(verb, ("write", "medium"))
    if verb == "rollout" and subverb in ("status", "history"):
        return "read", "low"
    if verb == "rollout" and subverb == "undo":
        return "write", "high"
    if verb == "auth" and subverb in ("can-i", "whoami"):
        return "admin", "low"
    if verb == "config":
        if subverb in ("view", "get-contexts", "current-context", "get-clusters", "get-users"):
            return "read", "low"
        if subverb == "set-credentials":
            return "admin", "medium"
    if verb == "replace" and parsed.has("--force"):
        return "write", "high"
    if verb == "apply" and parsed.has("--prune"):
        return "write", "high"
    return access, risk


def _target_risk(
    verb: str,
    access: Access,
    risk: Risk,
    kind: str | None,
    name: str | None,
    namespace: str,
    parsed: ParsedArgs,
    flags: list[str],
) -> tuple[Risk, list[str]]:
    target_flags = list(flags)
    if kind == "secret":
        target_flags.append("secrets")
        output = parsed.get("-o", "--output") or ""
        if verb == "get" and output.startswith(_SECRET_OUTPUTS):
            target_flags.append("reads-secrets")
            risk = max_risk(risk, "medium")
    if verb == "delete":
        if kind in _NAMESPACE_KINDS or kind == "customresourcedefinition":
            risk = "critical"
        if parsed.has("--all", "-A", "--all-namespaces"):
            risk = "critical"
        if namespace in _SYSTEM_NAMESPACES:
            risk = "critical"
    if verb == "drain" and parsed.has("--disable-eviction"):
        target_flags.append("disable-eviction")
        risk = raise_risk(risk)
    if access != "read" and kind in ("clusterrolebinding", "rolebinding", "clusterrole", "role"):
        target_flags.append("rbac")
        risk = max_risk(risk, "high")
    return risk, target_flags


def _targets(
    verb: str,
    subverb: str,
    words: list[str],
    parsed: ParsedArgs,
    command: SimpleCommand,
) -> list[tuple[str | None, str | None, str | None]]:
    """(kind, name, namespace-override) for each object the command names; one ``(None, None,
    None)`` entry when it names none."""
    if verb in _NO_TARGET_VERBS:
        return [(None, None, None)]
    if verb in ("cp", "rsync"):
        return [_copy_target(words, parsed)]
    if verb == "top":
        return [(normalize_kind(subverb or words[0]) if words else None, None, None)]
    if verb in ("label", "annotate", "taint", "set", "scale", "expose", "autoscale"):
        words = [word for word in words if "=" not in word and not word.endswith("-")]
        if verb == "taint":
            words = [word for word in words if ":" not in word]
    if verb in ("port-forward",):
        words = words[:1]
    if verb == "create" and words:
        kind = normalize_kind(words[0])
        rest = words[1:]
        if kind in _TYPED_CREATE and rest and rest[0].lower() in _TYPED_CREATE[kind]:
            rest = rest[1:]
        return [(kind, rest[0] if rest else None, None)]
    stdin_targets = _stdin_targets(parsed, command)
    if stdin_targets:
        return stdin_targets
    implied = _IMPLIED_KIND.get(verb)
    if implied:
        if not words:
            return [(implied, None, None)]
        if "/" in words[0] and verb != "project":
            kind, _, name = words[0].partition("/")
            return [(normalize_kind(kind), name, None)]
        return [(implied, word, None) for word in words]
    if not words:
        return [(None, None, None)]
    if "/" in words[0]:
        targets: list[tuple[str | None, str | None, str | None]] = []
        for word in words:
            kind, _, name = word.partition("/")
            targets.append((normalize_kind(kind), name or None, None))
        return targets
    kinds = [normalize_kind(kind) for kind in words[0].split(",") if kind]
    kind_text = ",".join(kinds) or None
    names = words[1:]
    if not names:
        return [(kind_text, None, None)]
    return [(kind_text, name, None) for name in names]


def _copy_target(words: list[str], parsed: ParsedArgs) -> tuple[str | None, str | None, str | None]:
    """``kubectl cp [ns/]pod:/path local`` (or the reverse): the pod and its namespace."""
    for word in words[:2]:
        remote, colon, _path = word.partition(":")
        if colon and remote:
            namespace, slash, pod = remote.rpartition("/")
            return ("pod", pod, namespace if slash else None)
    return ("pod", None, None)


_YAML_KEY = re.compile(r"^(\s*)(kind|name|namespace):\s*[\"']?([^\"'#\s]+)")


def _stdin_targets(
    parsed: ParsedArgs, command: SimpleCommand
) -> list[tuple[str | None, str | None, str | None]]:
    """Objects of a manifest fed on stdin (``kubectl apply -f - <<EOF``)."""
    if "-" not in parsed.all("-f", "--filename") or not command.stdin:
        return []
    targets: list[tuple[str | None, str | None, str | None]] = []
    for document in re.split(r"(?m)^---.*$", command.stdin):
        kind = name = namespace = None
        in_metadata = False
        metadata_indent: int | None = None
        for line in document.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            indent = len(line) - len(line.lstrip())
            if indent == 0:
                in_metadata = line.rstrip() == "metadata:"
                metadata_indent = None
            match = _YAML_KEY.match(line)
            if match is None:
                continue
            key, value = match[2], match[3]
            if indent == 0 and key == "kind":
                kind = normalize_kind(value)
            elif in_metadata and indent > 0:
                metadata_indent = metadata_indent or indent
                if indent == metadata_indent and key == "name" and name is None:
                    name = value
                elif indent == metadata_indent and key == "namespace" and namespace is None:
                    namespace = value
        if kind or name:
            targets.append((kind, name, namespace))
    return targets


# --- helm ---------------------------------------------------------------------------------

_HELM_VALUE_FLAGS = frozenset(
    {
        "-n",
        "--namespace",
        "--kube-context",
        "--kubeconfig",
        "-f",
        "--values",
        "--set",
        "--set-string",
        "--set-file",
        "--set-json",
        "--set-literal",
        "--version",
        "--repo",
        "-o",
        "--output",
        "--timeout",
        "--description",
        "--post-renderer",
        "--post-renderer-args",
        "--username",
        "--password",
        "--ca-file",
        "--cert-file",
        "--key-file",
        "--registry-config",
        "--repository-cache",
        "--repository-config",
        "--max",
        "-m",
        "--revision",
        "--kube-apiserver",
        "--kube-token",
        "--kube-as-user",
        "--kube-as-group",
        "--kube-ca-file",
        "--kube-tls-server-name",
        "--burst-limit",
        "--qps",
        "--cascade",
        "--history-max",
        "--name-template",
        "--api-versions",
        "-a",
        "--kube-version",
        "--show-only",
        "-s",
        "--output-dir",
        "--destination",
        "-d",
        "--untardir",
        "--filter",
        "--offset",
        "--time-format",
        "--keyring",
        "--selector",
        "-l",
        "--labels",
        "--release-name",
    }
)
_HELM_GLOBAL_VALUE_FLAGS = frozenset(
    {
        "-n",
        "--namespace",
        "--kube-context",
        "--kubeconfig",
        "--kube-apiserver",
        "--kube-token",
        "--kube-as-user",
        "--kube-as-group",
        "--kube-ca-file",
        "--registry-config",
        "--repository-cache",
        "--repository-config",
        "--burst-limit",
        "--qps",
    }
)
_HELM_ALIASES = {
    "delete": "uninstall",
    "del": "uninstall",
    "un": "uninstall",
    "ls": "list",
    "hist": "history",
    "fetch": "pull",
    "inspect": "show",
    "dep": "dependency",
    "dependencies": "dependency",
}
_HELM_VERBS: dict[str, tuple[Access, Risk]] = {
    "install": ("write", "medium"),
    "upgrade": ("write", "medium"),
    "rollback": ("write", "medium"),
    "test": ("write", "medium"),
    "uninstall": ("delete", "high"),
    "list": ("read", "low"),
    "status": ("read", "low"),
    "history": ("read", "low"),
    "get": ("read", "low"),
    "template": ("read", "low"),
    "show": ("read", "low"),
    "search": ("read", "low"),
    "lint": ("read", "low"),
    "version": ("read", "low"),
    "env": ("read", "low"),
    "verify": ("read", "low"),
    "pull": ("read", "low"),
    "create": ("write", "low"),
    "package": ("write", "low"),
    "dependency": ("write", "low"),
    "repo": ("write", "low"),
    "push": ("write", "high"),
    "plugin": ("admin", "medium"),
    "registry": ("admin", "medium"),
}
_HELM_CLUSTER_VERBS = frozenset(
    {"install", "upgrade", "rollback", "test", "uninstall", "list", "status", "history", "get"}
)
_HELM_SECRET_FLAGS = frozenset({"--password", "-p", "--kube-token"})


def _classify_helm(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    args = command.argv[1:]
    verb_index = first_positional(args, _HELM_GLOBAL_VALUE_FLAGS)
    if verb_index is None:
        return []
    verb = _HELM_ALIASES.get(args[verb_index].lower(), args[verb_index].lower())
    if not is_command_word(verb):
        return []
    parsed = parse_args(args[:verb_index], _HELM_GLOBAL_VALUE_FLAGS).merge(
        parse_args(args[verb_index + 1 :], _HELM_VALUE_FLAGS)
    )
    words = parsed.positionals
    subverb = ""
    if verb in ("get", "show", "repo", "dependency", "plugin", "registry") and words:
        subverb, words = words[0].lower(), words[1:]
    access, risk = _HELM_VERBS.get(verb, ("write", "medium"))
    if verb == "repo" and subverb in ("list", "ls", "index"):
        access, risk = "read", "low"

    release = chart = None
    if verb in ("install", "template"):
        if parsed.has("-g", "--generate-name") or (verb == "template" and len(words) == 1):
            chart = words[0] if words else None
        else:
            release = words[0] if words else None
            chart = words[1] if len(words) > 1 else None
    elif verb == "upgrade":
        release = words[0] if words else None
        chart = words[1] if len(words) > 1 else None
    elif verb in ("uninstall", "rollback", "status", "history", "test", "get"):
        release = words[0] if words else None
    elif verb in ("pull", "push", "show", "package", "lint"):
        chart = words[0] if words else None

    kube_context = parsed.get("--kube-context") or env_value(command, context, "HELM_KUBECONTEXT")
    kube_context = kube_context or CURRENT
    namespace = parsed.get("-n", "--namespace") or env_value(command, context, "HELM_NAMESPACE")
    namespace = "*" if parsed.has("-A", "--all-namespaces") else (namespace or CURRENT)
    values_files = parsed.all("-f", "--values")
    kubeconfig = parsed.get("--kubeconfig") or env_value(command, context, "KUBECONFIG")

    flags: list[str] = []
    if parsed.has("--dry-run"):
        flags.append("dry-run")
    if parsed.has("--force"):
        flags.append("force")
    if verb == "upgrade" and parsed.has("-i", "--install"):
        flags.append("install")
    if parsed.has("--atomic", "--rollback-on-failure"):
        flags.append("atomic")
    raw, has_secret = command.text, gives_secrets(command, _HELM_SECRET_FLAGS)
    if has_secret or (verb == "registry" and subverb == "login"):
        flags.append("credentials")
    if verb == "uninstall" and parsed.has("--keep-history"):
        flags.append("keep-history")
    if looks_prod(kube_context, namespace, release, kubeconfig, *values_files):
        flags.append("prod")
        risk = raise_risk(risk)
    if "dry-run" in flags:
        risk = "low"

    attributes = {
        "release": release,
        "chart": chart,
        "namespace": namespace,
        "kube-context": kube_context,
        "kubeconfig": kubeconfig,
        "values": ",".join(values_files) if values_files else None,
        "version": parsed.get("--version"),
        "subcommand": subverb or None,
    }
    resource: str | None = f"helm://{kube_context}/{namespace}/{release or '*'}"
    if verb not in _HELM_CLUSTER_VERBS:
        resource = (words[1] if verb == "push" and len(words) > 1 else None) or chart
    operations = [
        make_operation(
            "helm",
            f"helm:{camel(verb)}",
            access=access,
            risk=risk,
            resource=resource,
            flags=flags,
            attributes=attributes,
            raw=raw,
        )
    ]
    if verb == "push" and chart:
        remote = words[1] if len(words) > 1 else None
        operations.append(
            make_operation(
                "package",
                "package:Publish",
                access="write",
                risk=max_risk(risk, "high"),
                resource=f"package://helm/{chart}",
                flags=[*flags, "publish"],
                attributes={"ecosystem": "helm", "registry": remote, "package": chart},
                raw=raw,
            )
        )
    return operations
