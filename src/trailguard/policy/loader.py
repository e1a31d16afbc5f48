"""Policy sets from a directory of ``.cedar`` files: parsed, checked, named and versioned.

A rule's name is its ``@id("…")`` annotation (it becomes ``policyRule`` in the record);
``@decision("ask")`` turns a forbid into Claude Code's ask, and ``@reason("…")`` is the sentence a
developer sees. The version is a hash of every file's name and bytes, so a decision can be
re-run later against exactly the set that made it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import cedarpy

from trailguard.errors import InvalidInputError
from trailguard.policy.context_reads import Reads, context_reads

DEFAULT_PACK = "default"
TEAMS_FILE = "teams.json"


class PolicyError(InvalidInputError):
    """A policy set that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Rule:
    policy_id: str
    """Cedar's own id (``policy0``...), what its diagnostics name."""
    name: str
    """The ``@id`` annotation, or ``<file>:<n>`` when a policy has none."""
    effect: str
    ask: bool
    reason: str | None
    source: str
    named: bool = True
    """False when the policy has no ``@id`` (then ``name`` is its file and position)."""


@dataclass(frozen=True)
class PolicySet:
    version: str
    cedar: Any
    """The parsed cedarpy.PolicySet."""
    rules: dict[str, Rule]
    """By Cedar policy id."""
    teams: dict[str, list[str]] = field(default_factory=dict)
    """Team name → developer ids (``teams.json`` beside the policies)."""
    source: str = ""
    sources: tuple[tuple[str, str], ...] = ()
    """The ``.cedar`` files it was loaded from (name, text): what another process needs to put
    exactly this version in force (``policy_set_from_sources``)."""
    teams_source: str | None = None
    """The text of ``teams.json``, if there was one."""
    context_reads: Reads | None = None
    """What the policies read of a request's context (policy/context_reads.py); None: all."""
    entity_handles: dict[str, Any] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    """Cedar's parsed entities by developer id, filled by the engine as developers call (the
    teams above are all they hold, so they are this set's alone)."""

    def teams_of(self, developer_id: str) -> list[str]:
        return sorted(team for team, members in self.teams.items() if developer_id in members)


def _policy_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise PolicyError(f"policy directory {directory} does not exist")
    files = sorted(directory.glob("*.cedar"))
    if not files:
        raise PolicyError(f"no .cedar files in {directory}")
    return files


def _parse_teams(text: str, where: str) -> dict[str, list[str]]:
    try:
        teams = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"{where}: not readable JSON ({exc})") from None
    if not isinstance(teams, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(m, str) for m in v)
        for k, v in teams.items()
    ):
        raise PolicyError(f'{where}: must map team names to lists of developer ids: {{"t": ["d"]}}')
    return teams


def load_policy_set(directory: Path | None = None) -> PolicySet:
    """Load every ``*.cedar`` file of ``directory`` (default: the shipped pack).

    Raises PolicyError naming the file for any syntax error or duplicate rule name.
    """
    if directory is None:
        pack = resources.files("trailguard.policy").joinpath(DEFAULT_PACK)
        with resources.as_file(pack) as path:
            return _load(Path(path), source="default pack")
    return _load(directory, source=str(directory))


def _load(directory: Path, *, source: str) -> PolicySet:
    texts = []
    for path in _policy_files(directory):
        try:
            texts.append((path.name, path.read_bytes().decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise PolicyError(f"{path}: {exc}") from None
    teams_path = directory / TEAMS_FILE
    teams: str | None = None
    if teams_path.exists():
        try:
            teams = teams_path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{teams_path}: not readable JSON ({exc})") from None
    return _build(texts, teams, source=source, where=directory)


def policy_set_from_sources(
    files: list[tuple[str, str]], teams: str | None, *, source: str
) -> PolicySet:
    """The policy set of these file texts (as ``PolicySet.sources`` holds them): the same
    version as the directory they were read from."""
    return _build(sorted(files), teams, source=source, where=Path(source))


def _build(
    texts: list[tuple[str, str]], teams_text: str | None, *, source: str, where: Path
) -> PolicySet:
    digest = hashlib.sha256()
    for name, text in texts:
        digest.update(name.encode() + b"\0" + text.encode("utf-8") + b"\0")
        try:
            cedarpy.PolicySet.from_str(text)  # per file, so an error names its file
        except ValueError as exc:
            raise PolicyError(f"{where / name}: {exc}") from None
    teams = {} if teams_text is None else _parse_teams(teams_text, str(where / TEAMS_FILE))
    if teams_text is not None:
        digest.update(b"teams\0" + teams_text.encode("utf-8"))

    combined = "\n".join(text for _, text in texts)
    cedar = cedarpy.PolicySet.from_str(combined)
    est = json.loads(cedarpy.policies_to_json_str(combined))
    described = est["staticPolicies"]
    # Cedar numbers policies in text order; map each back to its file for unnamed ones.
    counts = [
        len(json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]) for _, text in texts
    ]
    owners = [name for (name, _), count in zip(texts, counts, strict=True) for _ in range(count)]
    rules: dict[str, Rule] = {}
    names: set[str] = set()
    for index in range(len(described)):
        policy_id = f"policy{index}"
        policy = described[policy_id]
        annotations = policy.get("annotations", {})
        name = annotations.get("id") or f"{owners[index]}:{index}"
        if name in names:
            raise PolicyError(f"rule name {name!r} is used twice ({owners[index]})")
        names.add(name)
        rules[policy_id] = Rule(
            policy_id=policy_id,
            name=name,
            effect=policy["effect"],
            ask=annotations.get("decision") == "ask",
            reason=annotations.get("reason"),
            source=owners[index],
            named="id" in annotations,
        )
    return PolicySet(
        version="sha256:" + digest.hexdigest(),
        cedar=cedar,
        rules=rules,
        teams=teams,
        source=source,
        sources=tuple(texts),
        teams_source=teams_text,
        context_reads=context_reads(est),
    )


def check_policy_directory(directory: Path) -> list[str]:
    """Every problem with a policy directory, as messages naming the file (empty: valid)."""
    try:
        policy_set = load_policy_set(directory)
    except PolicyError as exc:
        return [str(exc)]
    return [
        f"{rule.name}: rule has no @id annotation; decisions will name it by position"
        for rule in policy_set.rules.values()
        if not rule.named
    ]
