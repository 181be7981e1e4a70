"""What the deployment files must agree with: the settings ferry reads and the routes it serves."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from app.api.app import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
#: Every environment variable ferry reads.
SETTINGS_ENV = frozenset(f"FERRY_{name.upper()}" for name in Settings.model_fields)
DEFAULT_PORT = Settings.model_fields["port"].default
DEFAULT_DRAIN = Settings.model_fields["drain_timeout"].default


def _paths(routes: Iterable[BaseRoute]) -> Iterator[str]:
    for route in routes:
        if isinstance(route, Route | APIRoute):
            yield route.path
        # FastAPI may keep an included router whole rather than copying its routes.
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _paths(included.routes)


@pytest.fixture(scope="session")
def routes(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    """The paths the real app serves (built, not started: no database is touched)."""
    data = tmp_path_factory.mktemp("routes")
    app = create_app(Settings(data_dir=data, database_url=f"sqlite:///{data / 'x.db'}"), engines={})
    paths = frozenset(_paths(app.routes))
    assert set(app.openapi()["paths"]) <= paths  # the walk sees at least every documented route
    return paths
