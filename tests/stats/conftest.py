"""A real ferry server with the real engines, on SQLite: the figures here do not depend on the backend."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engines.disk import DiskEngine
from app.engines.files import FilesEngine
from tests.api.conftest import settings_for
from tests.disk.conftest import _real_tools, servers  # noqa: F401 - nbdkit servers, real-tool checks
from tests.servers import LiveServer, live_server


@pytest.fixture
def api(sqlite_template: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """ferry over HTTP with the files and disk engines; allowed root: tmp_path/data."""
    database = tmp_path / "ferry.db"
    shutil.copy(sqlite_template, database)
    engines = {"files": FilesEngine(), "disk": DiskEngine()}
    with live_server(settings_for(f"sqlite:///{database}", tmp_path), engines) as server:
        yield server
