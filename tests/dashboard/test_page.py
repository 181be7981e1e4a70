"""``/dashboard`` serves its own files, open and offline; the data it polls stays behind tokens."""

from __future__ import annotations

import re

import httpx

from app.api.routes.dashboard import ASSETS, STATIC
from tests.servers import LiveServer


def test_page_and_assets_load_without_a_token(server: LiveServer) -> None:
    """A browser navigation carries no token: the page and its files answer 200 with a strict CSP."""
    with httpx.Client(base_url=server.url) as anonymous:
        page = anonymous.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        for name, media_type in ASSETS.items():
            asset = anonymous.get(f"/dashboard/{name}")
            assert asset.status_code == 200
            assert asset.headers["content-type"].startswith(media_type)
            assert f"/dashboard/{name}" in page.text
        assert anonymous.get("/stats/scannerPoolStats").status_code == 401


def test_only_the_listed_files_are_served(server: LiveServer) -> None:
    """Nothing but the page's own files: unknown names and path tricks are 404 problems."""
    for path in ("/dashboard/index.py", "/dashboard/..%2F..%2Fsettings.py", "/dashboard/%2E%2E"):
        response = server.client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


def test_the_page_needs_nothing_from_the_network() -> None:
    """No CDN, no remote font or script: every URL in the shipped files is ferry's own, or the SVG namespace."""
    for path in STATIC.iterdir():
        urls = set(re.findall(r"https?://[^\s\"'`)]+", path.read_text()))
        assert urls <= {"http://www.w3.org/2000/svg"}, (path.name, urls)
