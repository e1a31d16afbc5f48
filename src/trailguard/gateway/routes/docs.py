"""``/docs``: the API's Swagger UI, served from the package (swagger-ui-py's copy of Swagger UI
5, which renders the OpenAPI 3.1 FastAPI describes; Swagger UI 4 cannot), not a CDN, so it works
on a gateway with no internet access. ``/openapi.json`` is FastAPI's own."""

from __future__ import annotations

from importlib import resources
from typing import Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS: Final = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` with its assets under ``/docs/assets`` (the app must be
    created with ``docs_url=None, redoc_url=None``: their defaults load from a CDN)."""
    static = resources.files("swagger_ui") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
