"""The engines a server runs with, by migration kind."""

from __future__ import annotations

from app.engines.base import Engine
from app.engines.disk import DiskEngine
from app.engines.files import FilesEngine

#: Helper processes a serving files engine starts at once: the default share of the default pool
#: (4 threads) never waits for one to start.
HELPERS_AT_START = 4


def default_engines() -> dict[str, Engine]:
    return {"files": FilesEngine(), "disk": DiskEngine()}


def serving_engines() -> dict[str, Engine]:
    """The engines of ``ferry serve``, with what they start ahead of their first job started."""
    files = FilesEngine()
    files.warm_up(HELPERS_AT_START)
    return {"files": files, "disk": DiskEngine()}
