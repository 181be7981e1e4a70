"""Fixtures shared by every test: databases on both backends, real servers, real-component checks.

* ``database_url``: a fresh database at schema head, on SQLite always and on PostgreSQL too when
  ``FERRY_TEST_DATABASE_URL`` is set (each test gets its own database, cloned from a template).
* ``FERRY_REQUIRE_REAL=1`` (set by ``.ci/run``) turns a skip for a missing real component
  (PostgreSQL, nbdkit, libnbd) into a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.db import schema

PG_URL = os.environ.get("FERRY_TEST_DATABASE_URL", "")
REQUIRE_REAL = os.environ.get("FERRY_REQUIRE_REAL") == "1"


def need_real(available: bool, what: str) -> None:
    """Skip when a real component is missing, or fail when CI requires real components."""
    if available:
        return
    if REQUIRE_REAL:
        pytest.fail(f"{what} is required (FERRY_REQUIRE_REAL=1) but not available")
    pytest.skip(f"{what} not available")


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ferry.db"
    schema.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    need_real(bool(PG_URL), "PostgreSQL (FERRY_TEST_DATABASE_URL)")
    name = f"ferry_template_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    schema.upgrade(url)
    yield name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at head, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "ferry.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    with postgres_database(request.getfixturevalue("postgres_template")) as url:
        yield url


@contextmanager
def postgres_database(template: str, prefix: str = "ferry_test") -> Iterator[str]:
    """A new PostgreSQL database cloned from the migrated ``template``, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
