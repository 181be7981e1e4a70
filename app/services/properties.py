"""Reading and changing configuration properties; changes reach the pool at once.

Every node reloads them each second (:func:`app.db.properties.load_config`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete

from app.db.models import PropertyRow
from app.db.properties import stored_values
from app.db.session import Database
from app.errors import InvalidValue, NotFound
from app.policy import properties as registry
from app.policy.properties import RuntimeConfig


@dataclass(frozen=True, slots=True)
class PropertyView:
    key: str
    value: str
    default_value: str
    description: str
    is_default: bool


class PropertyService:
    def __init__(self, db: Database, on_change: Callable[[RuntimeConfig], None]) -> None:
        self._db = db
        self._on_change = on_change

    def list_all(self) -> list[PropertyView]:
        with self._db.session() as session:
            stored = stored_values(session)
        return [_view(key, stored) for key in registry.REGISTRY]

    def get(self, key: str) -> PropertyView:
        _known(key)
        with self._db.session() as session:
            return _view(key, stored_values(session))

    def set(self, key: str, value: str) -> PropertyView:
        _known(key)
        with self._db.session() as session:
            stored = stored_values(session)
            try:
                normalised = registry.validate(key, value, registry.effective(stored))
            except ValueError as exc:
                raise InvalidValue("value", f"{key}: {exc}") from None
            row = session.get(PropertyRow, key)
            if row is None:
                session.add(PropertyRow(key=key, value=normalised))
            else:
                row.value = normalised
            stored[key] = normalised
        self._on_change(registry.runtime_config(stored))
        return _view(key, stored)

    def reset(self, key: str) -> PropertyView:
        _known(key)
        with self._db.session() as session:
            stored = stored_values(session)
            stored.pop(key, None)
            default = registry.REGISTRY[key].default
            try:
                registry.validate(key, default, registry.effective(stored))
            except ValueError as exc:
                raise InvalidValue("key", f"cannot return {key} to its default: {exc}") from None
            session.execute(delete(PropertyRow).where(PropertyRow.key == key))
        self._on_change(registry.runtime_config(stored))
        return _view(key, stored)


def _known(key: str) -> None:
    if key not in registry.REGISTRY:
        known = ", ".join(registry.REGISTRY)
        raise NotFound(f"key: unknown property {key!r}; known properties: {known}")


def _view(key: str, stored: dict[str, str]) -> PropertyView:
    spec = registry.REGISTRY[key]
    value = stored.get(key, spec.default)
    return PropertyView(key, value, spec.default, spec.description, key not in stored)
