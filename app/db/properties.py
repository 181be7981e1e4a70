"""Reading the stored configuration properties (absent keys take their defaults)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import PropertyRow
from app.db.session import Database
from app.policy import properties as registry
from app.policy.properties import RuntimeConfig


def stored_values(session: Session) -> dict[str, str]:
    return {row.key: row.value for row in session.scalars(select(PropertyRow))}


def load_config(db: Database) -> RuntimeConfig:
    with db.session() as session:
        return registry.runtime_config(stored_values(session))
