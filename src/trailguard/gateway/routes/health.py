"""``GET /healthz``: whether the gateway can record right now."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trailguard import __version__
from trailguard.errors import StorageUnavailableError
from trailguard.gateway.services import Gateway, gateway_services

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(services: Annotated[Gateway, Depends(gateway_services)]) -> dict[str, Any]:
    """200 while the ledger writer runs and can commit; 503 (with why) otherwise."""
    ledger = services.ledger
    if ledger.write_outage is not None and not ledger.probe():
        raise StorageUnavailableError(
            f"the ledger cannot write ({ledger.write_outage}): nothing can be recorded, and "
            "every hook is answered 503 (tool calls are denied by the hook client)"
        )
    if not ledger.healthy:
        raise StorageUnavailableError("the ledger writer is not running: nothing can be recorded")
    # pid: which process answered (with `serve --workers N`, each worker is its own).
    return {
        "status": "ok",
        "version": __version__,
        "treeSize": ledger.tree_size,
        "pid": os.getpid(),
    }
