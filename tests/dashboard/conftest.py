"""A server with tokens set, for the dashboard: the page is open, its data is not."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import settings_for
from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer, live_server

VIEWER = "viewer-token"
TOKENS = f"admin:admin-token,viewer:{VIEWER}"


@pytest.fixture
def server(sqlite_template: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """ferry with FERRY_TOKENS; its client carries the admin token."""
    database = tmp_path / "ferry.db"
    shutil.copy(sqlite_template, database)
    settings = settings_for(f"sqlite:///{database}", tmp_path, tokens=TOKENS)
    engines = {"files": FakeEngine("files"), "disk": FakeEngine("disk")}
    with live_server(settings, engines, token="admin-token") as live:
        yield live
