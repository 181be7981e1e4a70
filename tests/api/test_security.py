"""Tokens and roles (SPEC section 7), and the refusal to serve beyond loopback without them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.api.security import InsecureBind, check_bind
from app.settings import Settings
from tests.api.conftest import settings_for
from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer, live_server

TOKENS = "admin:a-secret,operator:o-secret,viewer:v-secret"


@pytest.fixture
def secured(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    settings = settings_for(database_url, tmp_path, tokens=TOKENS)
    with live_server(settings, {"files": FakeEngine()}) as live:
        yield live


def call(server: LiveServer, method: str, path: str, token: str | None, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, server.url + path, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/migrations", {"viewer", "operator", "admin"}),
        ("GET", "/stats/scannerPoolStats", {"viewer", "operator", "admin"}),
        ("GET", "/metrics", {"viewer", "operator", "admin"}),
        ("POST", "/migrations/stop", {"operator", "admin"}),
        ("PUT", "/configuration/property?key=global.scan.limit&value=5", {"admin"}),
        ("DELETE", "/configuration/property?key=global.scan.limit", {"admin"}),
    ],
)
def test_roles(secured: LiveServer, method: str, path: str, allowed: set[str]) -> None:
    """No token: 401; a role too weak: 403; a strong enough role: served."""
    assert call(secured, method, path, None).status_code == 401
    assert call(secured, method, path, "wrong").status_code == 401
    for role in ("viewer", "operator", "admin"):
        status = call(secured, method, path, f"{role[0]}-secret").status_code
        assert (status < 400) is (role in allowed), (role, status)
        if role not in allowed:
            assert status == 403


def test_probes_are_open(secured: LiveServer) -> None:
    """Health probes need no token, so orchestrators can call them."""
    assert call(secured, "GET", "/healthz", None).status_code == 200
    assert call(secured, "GET", "/readyz", None).status_code == 200


def test_unauthorized_is_a_problem(secured: LiveServer) -> None:
    """401 is problem+json and asks for a bearer token."""
    response = call(secured, "GET", "/migrations", None)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization" in response.json()["detail"]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.com"])
def test_refuses_non_loopback_without_tokens(host: str) -> None:
    """Without tokens, any address but loopback is refused at start."""
    with pytest.raises(InsecureBind, match="FERRY_TOKENS"):
        check_bind(Settings(host=host, tokens=""))  # type: ignore[arg-type]
    check_bind(Settings(host=host, tokens="admin:x"))  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_without_tokens_is_fine(host: str) -> None:
    """Loopback with no tokens is the development default."""
    check_bind(Settings(host=host, tokens=""))  # type: ignore[arg-type]


def test_bad_tokens_setting_is_refused() -> None:
    """FERRY_TOKENS entries must be role:token with a known role."""
    with pytest.raises(ValueError, match="role:token"):
        Settings(tokens="root:x")  # type: ignore[arg-type]
