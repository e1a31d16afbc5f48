"""The gateway's FastAPI application.

This first version serves health and the latest signed checkpoint; agent capture routes are
added on the same app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse

from trailguard import __version__
from trailguard.ledger.proof import ProofBundleError, latest_checkpoint_note
from trailguard.ledger.writer import Ledger
from trailguard.store.sqlite import SQLiteStore


def create_app(ledger: Ledger, *, stop_reason: str = "shutdown") -> FastAPI:
    """The gateway app over an open ``ledger``; shutting the app down closes the ledger
    (recording ``gateway_stop`` and a final checkpoint) before the process exits."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ledger.close(reason=stop_reason)

    app = FastAPI(title="trailguard", version=__version__, lifespan=lifespan)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness and the ledger's size; 503 when the ledger writer has stopped."""
        if not ledger.healthy:
            raise HTTPException(status_code=503, detail="the ledger writer is not running")
        return {"status": "ok", "version": __version__, "treeSize": ledger.tree_size}

    @app.get("/v1/checkpoint", response_class=PlainTextResponse)
    def checkpoint() -> str:
        """The latest signed checkpoint (C2SP tlog-checkpoint), to keep off this host."""
        store = SQLiteStore.in_data_dir(ledger.data_dir, read_only=True)
        try:
            return latest_checkpoint_note(store)
        except ProofBundleError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        finally:
            store.close()

    return app
