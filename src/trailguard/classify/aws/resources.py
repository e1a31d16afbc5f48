"""The resource an AWS API call acts on, named from its identifier options (ARNs where possible)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trailguard.classify._tool_common import looks_prod, raise_risk
from trailguard.classify.aws.rules import _RISK_BY_ACCESS, KIND, UNKNOWN_ACTION
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import Access, Operation, Risk

# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------

_ID_SUFFIXES = (
    "Identifiers",
    "Identifier",
    "Names",
    "Name",
    "Arns",
    "ARNs",
    "Arn",
    "ARN",
    "Ids",
    "Id",
    "IDs",
    "ID",
    "Urls",
    "Url",
    "URL",
)
# Identifier members whose names carry no suffix (ecs ``--cluster``, ``--service``...).
_BARE_ID_MEMBERS = frozenset(
    {"bucket", "cluster", "clusters", "service", "services", "task", "tasks", "taskdefinition"}
)
_NOT_IDENTIFIERS = frozenset({"clienttoken", "nexttoken", "idempotencytoken", "maxresults"})


@dataclass(frozen=True)
class _Member:
    cli_name: str
    name: str
    root: str | None
    """The member name without its identifier suffix, lower-cased (``RoleName`` → ``role``), or
    None for a member that is not identifier-like."""
    required: bool
    index: int


@dataclass(frozen=True)
class _OperationSpec:
    name: str
    options: Mapping[str, str]
    """CLI option name (no dashes) → ``flag`` (boolean), ``list`` (takes every following word)
    or ``scalar`` (takes one word)."""
    candidates: tuple[_Member, ...]
    """String-valued members that may name the resource, in model order."""


@dataclass(frozen=True)
class _Service:
    name: str
    prefix: str
    model: Mapping[str, Any]
    operations: Mapping[str, str]
    """CLI command name → operation name."""


@dataclass
class _Args:
    positionals: list[str] = field(default_factory=list)
    options: dict[str, list[str]] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.options

    def get(self, name: str) -> str | None:
        values = self.options.get(name)
        return values[-1] if values else None


@dataclass
class _Call:
    """What every Operation of one command shares."""

    command: SimpleCommand
    context: ClassifyContext
    service: str
    operation: str
    profile: str
    region: str | None
    endpoint: str | None

    def attributes(self, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
        attributes: dict[str, str] = {"profile": self.profile}
        if self.region:
            attributes["region"] = self.region
        if self.service:
            attributes["service"] = self.service
        if self.operation:
            attributes["operation"] = self.operation
        if self.endpoint:
            attributes["endpointUrl"] = self.endpoint
        for key, value in (extra or {}).items():
            if value:
                attributes[key] = value
        return attributes

    @property
    def partition(self) -> str:
        region = self.region or ""
        if region.startswith("cn-"):
            return "aws-cn"
        if region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def make(
        self,
        action: str,
        access: Access,
        *,
        resource: str | None = None,
        risk: Risk | None = None,
        flags: Iterable[str] = (),
        attributes: Mapping[str, str | None] | None = None,
        dry_run: bool = False,
    ) -> Operation:
        all_flags = list(flags)
        level = risk or _RISK_BY_ACCESS[access]
        if self.endpoint:
            all_flags.append("custom-endpoint")
        if looks_prod(self.profile):
            level = raise_risk(level)
            all_flags.append("prod-profile")
        if dry_run:
            level = "low"
            all_flags.append("dryrun")
        return Operation(
            kind=KIND,
            action=action,
            resource=resource,
            access=access,
            risk=level,
            flags=list(dict.fromkeys(all_flags)),
            attributes=self.attributes(attributes),
            raw=self.command.text,
        )

    def make_each(
        self,
        actions: Iterable[str],
        access: Access,
        *,
        resource: str | None,
        risk: Risk,
        flags: Iterable[str],
        attributes: Mapping[str, str | None],
        dry_run: bool,
    ) -> list[Operation]:
        """One operation per IAM action a call needs, alike but for the action."""
        flags = list(flags)
        return [
            self.make(
                action,
                access,
                resource=resource,
                risk=risk,
                flags=flags,
                attributes=attributes,
                dry_run=dry_run,
            )
            for action in actions
        ]

    def unknown(self, *flags: str) -> Operation:
        return self.make(
            UNKNOWN_ACTION, "write", risk="medium", flags=("unknown-operation", *flags)
        )
