from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer, live_server


def settings_for(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data,
        "allowed_roots": (data,),
        "drain_timeout": 5.0,
        "node_id": "test-instance",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def engines() -> dict[str, FakeEngine]:
    return {"files": FakeEngine("files"), "disk": FakeEngine("disk")}


@pytest.fixture
def server(database_url: str, tmp_path: Path, engines: dict[str, FakeEngine]) -> Iterator[LiveServer]:
    """ferry over real HTTP with the fake engine for both kinds, on each database backend."""
    with live_server(settings_for(database_url, tmp_path), engines) as live:
        yield live
