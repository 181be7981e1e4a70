"""``/dashboard``: a page that polls the stats API, shipped as static files in the package.

The page and its assets are open (a browser cannot add a bearer token to a navigation); the data
it polls and the actions it sends are not: the page sends the token the operator typed, kept in
the tab's sessionStorage (gone with the tab, never shared with other tabs or written to disk).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.errors import NotFound

router = APIRouter(tags=["dashboard"], include_in_schema=False)

STATIC = Path(__file__).resolve().parents[2] / "static" / "dashboard"
#: The files the page is made of, and their media types; nothing else under STATIC is served.
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
#: Only this origin: no CDN, no inline script, so a stored token can only go back to ferry.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff"}


@router.get("/dashboard")
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/dashboard/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFound(f"path: no dashboard file {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)
