"""botocore service models, loaded per service on first use."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.loaders import Loader

from trailguard.classify.aws.names import _COMMON_OPERATION_OPTIONS, _PREFIX_OVERRIDES
from trailguard.classify.aws.resources import (
    _BARE_ID_MEMBERS,
    _ID_SUFFIXES,
    _NOT_IDENTIFIERS,
    _Member,
    _OperationSpec,
    _Service,
)

# --------------------------------------------------------------------------------------------
# Service models (loaded per service, on first use)
# --------------------------------------------------------------------------------------------

_SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")


@functools.lru_cache(maxsize=1)
def _loader() -> Loader:
    from botocore.loaders import Loader

    return Loader()


@functools.lru_cache(maxsize=512)
def _service(name: str) -> _Service | None:
    """The botocore service ``name`` (its service-2 model and CLI command table), or None if
    botocore has no such service (or is not installed: every API call is then unknown)."""
    if not _SERVICE_NAME.fullmatch(name) or ".." in name:
        return None
    try:
        from botocore import xform_name

        model = _loader().load_service_model(name, "service-2")
    except Exception:
        return None
    metadata = model.get("metadata", {})
    prefix = (
        _PREFIX_OVERRIDES.get(name)
        or metadata.get("signingName")
        or metadata.get("endpointPrefix")
        or name
    )
    operations = {xform_name(op, "-"): op for op in model.get("operations", {})}
    return _Service(name=name, prefix=prefix, model=model, operations=operations)


@functools.lru_cache(maxsize=256)
def _waiters(name: str) -> Mapping[str, str]:
    """CLI waiter name (``instance-running``) → the operation it polls."""
    from botocore import xform_name

    try:
        config = _loader().load_service_model(name, "waiters-2")
    except Exception:
        return {}
    return {
        xform_name(waiter, "-"): str(spec.get("operation", ""))
        for waiter, spec in config.get("waiters", {}).items()
    }


@functools.lru_cache(maxsize=4096)
def _operation_spec(service: str, operation: str) -> _OperationSpec:
    from botocore import xform_name

    model = _service(service)
    assert model is not None
    shapes: Mapping[str, Any] = model.model.get("shapes", {})
    op_model = model.model["operations"][operation]
    input_name = op_model.get("input", {}).get("shape")
    input_shape: Mapping[str, Any] = shapes.get(input_name, {}) if input_name else {}
    required = set(input_shape.get("required", ()))
    options: dict[str, str] = dict(_COMMON_OPERATION_OPTIONS)
    candidates: list[_Member] = []
    for index, (member, ref) in enumerate(input_shape.get("members", {}).items()):
        cli_name = xform_name(member, "-")
        shape = shapes.get(ref.get("shape", ""), {})
        shape_type = shape.get("type")
        if shape_type == "boolean":
            options[cli_name] = "flag"
            options[f"no-{cli_name}"] = "flag"
            continue
        options[cli_name] = "list" if shape_type == "list" else "scalar"
        item_type = (
            shapes.get(shape.get("member", {}).get("shape", ""), {}).get("type")
            if shape_type == "list"
            else shape_type
        )
        if item_type != "string" or member.lower() in _NOT_IDENTIFIERS:
            continue
        root = _identifier_root(member)
        if root is None and member not in required:
            continue
        candidates.append(_Member(cli_name, member, root, member in required, index))
    return _OperationSpec(operation, options, tuple(candidates))


def _identifier_root(member: str) -> str | None:
    if member.lower() in _BARE_ID_MEMBERS:
        return member.lower().removesuffix("s")
    for suffix in _ID_SUFFIXES:
        if member.endswith(suffix):
            return member[: -len(suffix)].lower()
    return None
