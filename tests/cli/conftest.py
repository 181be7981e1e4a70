"""The client commands against a real server (uvicorn on a free port) running the fake engine.

The client only speaks HTTP, so one backend (SQLite) is enough here; the API tests cover both.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner, Result

from app.cli.main import cli
from tests.api.conftest import settings_for
from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer, live_server

TOKENS = "admin:admin-secret,operator:operator-secret,viewer:viewer-secret"


@pytest.fixture(autouse=True)
def server_log(tmp_path: Path) -> Iterator[Path]:
    """The in-process server logs to a file, not to the stdout CliRunner captures for the command."""
    path = tmp_path / "server.log"
    saved = structlog.get_config()
    with path.open("w") as sink:
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(sink))
        try:
            yield path
        finally:
            structlog.configure(**saved)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "ferry.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path, engines: dict[str, FakeEngine]) -> Iterator[LiveServer]:
    with live_server(settings_for(sqlite_url, tmp_path), engines) as live:
        yield live


@pytest.fixture
def secured(sqlite_url: str, tmp_path: Path, engines: dict[str, FakeEngine]) -> Iterator[LiveServer]:
    """A server with FERRY_TOKENS set: every call needs a bearer token of a strong enough role."""
    settings = settings_for(sqlite_url, tmp_path, tokens=TOKENS)
    with live_server(settings, engines, token="admin-secret") as live:
        yield live


@pytest.fixture
def engines() -> dict[str, FakeEngine]:
    return {"files": FakeEngine("files"), "disk": FakeEngine("disk")}


class Ferry:
    """Runs ``ferry ...`` in this process as a user would type it, pointed at one server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.runner = CliRunner()

    def __call__(self, *args: str, token: str | None = None) -> Result:
        env = {"FERRY_URL": self.url, "FERRY_TOKEN": token, "COLUMNS": "200", "NO_COLOR": "1"}
        return self.runner.invoke(cli, list(args), env=env)


@pytest.fixture
def ferry(server: LiveServer) -> Ferry:
    return Ferry(server.url)


def row_of(table: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is ``first_cell``."""
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{table}")
