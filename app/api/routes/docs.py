"""``/docs`` (Swagger UI 5) and ``/redoc`` (ReDoc 2), with every asset served by ferry itself.

The scripts come from the ``fastapi-offline`` wheel (its ``static/`` folder, mounted at
:data:`ASSETS`), so the pages work with no internet. ``swagger-ui-bundle`` was the other
candidate: its Swagger UI 4 cannot read the OpenAPI 3.1 document FastAPI writes, and it has no
ReDoc. The pages' Content-Security-Policy keeps them on this origin: ReDoc's footer would fetch
its logo from cdn.redoc.ly, and the policy turns that into nothing instead of a hang offline.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)

#: Where the Swagger UI and ReDoc files are served from.
ASSETS = "/static-offline-docs"
#: Inline script and style: Swagger UI is started by an inline script and ReDoc styles inline.
POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


def _secured(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = POLICY
    page.headers["Cache-Control"] = "no-cache"
    return page


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return _secured(
        get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="ferry - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )
    )


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc() -> HTMLResponse:
    return _secured(
        get_redoc_html(
            openapi_url="/openapi.json",
            title="ferry - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
    )


def install(app: FastAPI) -> None:
    """The two pages and their assets; the app must be made with ``docs_url=None, redoc_url=None``."""
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=Path(str(files("fastapi_offline") / "static"))), name="docs-assets")
