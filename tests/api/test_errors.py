"""Errors are problem+json (RFC 9457) everywhere, and an unexpected failure leaks nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from app.api.app import create_app
from tests.api.conftest import settings_for
from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer


def test_unknown_route_and_method_are_problems(server: LiveServer) -> None:
    """404 for an unknown path and 405 for a wrong method come as problem+json too."""
    for method, path, status in (("GET", "/nowhere", 404), ("DELETE", "/stats/scannerPoolStats", 405)):
        response = server.client.request(method, path)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == status


def test_malformed_json_names_the_body(server: LiveServer) -> None:
    """A body that is not JSON is a 422 that says so, not a 500."""
    response = server.client.post("/migrations", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "body" in response.json()["detail"]


def test_unexpected_failure_is_a_bare_500_problem(sqlite_template: Path, tmp_path: Path) -> None:
    """A bug behind a route answers a problem+json 500 without its message or a traceback."""
    database = tmp_path / "ferry.db"
    shutil.copy(sqlite_template, database)
    app = create_app(settings_for(f"sqlite:///{database}", tmp_path), {"files": FakeEngine()})

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text
    assert response.json()["detail"] == "internal error; the server log has the details"
