"""A server with tokens set, for the dashboard: the page is open, its data is not."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engines.disk import DiskEngine
from app.services import history
from tests.api.conftest import settings_for
from tests.disk.conftest import _real_tools, servers  # noqa: F401 - nbdkit servers, real-tool checks
from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer, live_server

VIEWER = "viewer-token"
OPERATOR = "operator-token"
TOKENS = f"admin:admin-token,operator:{OPERATOR},viewer:{VIEWER}"
#: Seconds between the server's history samples here (5 in production): a chart fills in a test's time.
SAMPLE_EVERY = 0.25


@pytest.fixture
def server(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """ferry with FERRY_TOKENS, sampling its history every SAMPLE_EVERY s; its client carries the admin token."""
    monkeypatch.setattr(history, "SAMPLE_EVERY", SAMPLE_EVERY)
    database = tmp_path / "ferry.db"
    shutil.copy(sqlite_template, database)
    settings = settings_for(f"sqlite:///{database}", tmp_path, tokens=TOKENS)
    engines = {"files": FakeEngine("files"), "disk": FakeEngine("disk")}
    with live_server(settings, engines, token="admin-token") as live:
        yield live


@pytest.fixture
def disk_server(sqlite_template: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """As ``server``, with the real disk engine (files is still the fake)."""
    database = tmp_path / "ferry.db"
    shutil.copy(sqlite_template, database)
    settings = settings_for(f"sqlite:///{database}", tmp_path, tokens=TOKENS)
    engines = {"files": FakeEngine("files"), "disk": DiskEngine()}
    with live_server(settings, engines, token="admin-token") as live:
        yield live
