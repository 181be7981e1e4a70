"""The schema: Alembic's head matches the models, on each backend; readiness follows it."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from app.db import schema
from app.db.models import Base
from app.db.session import Database
from tests.api.conftest import settings_for
from tests.fakes.engine import FakeEngine
from tests.servers import live_server


def test_head_matches_the_models(database_url: str) -> None:
    """Upgrading to head yields exactly the tables the models declare: no migration is missing."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert schema.current_revision(engine) == schema.head_revision()
    engine.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    """`ferry db upgrade` on a database at head changes nothing and does not fail."""
    schema.upgrade(database_url)
    assert schema.is_at_head(Database(database_url).engine)


def test_readyz_fails_unless_the_schema_is_at_head(database_url: str, tmp_path: Path) -> None:
    """/readyz answers 503 with the reason when the schema is behind; /healthz stays 200."""
    with live_server(settings_for(database_url, tmp_path), {"files": FakeEngine()}) as server:
        assert server.client.get("/readyz").status_code == 200
        engine = create_engine(database_url)
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'behind'"))
        engine.dispose()
        response = server.client.get("/readyz")
        assert response.status_code == 503
        assert "ferry db upgrade" in response.json()["detail"]
        assert server.client.get("/healthz").status_code == 200
