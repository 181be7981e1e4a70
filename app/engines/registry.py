"""The engines a server runs with, by migration kind."""

from __future__ import annotations

from app.engines.base import Engine
from app.engines.disk import DiskEngine
from app.engines.files import FilesEngine


def default_engines() -> dict[str, Engine]:
    return {"files": FilesEngine(), "disk": DiskEngine()}
