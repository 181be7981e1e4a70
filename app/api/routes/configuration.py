"""``/configuration``: runtime properties (SPEC section 2)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.api.deps import ServicesDep
from app.api.schemas import Property
from app.services.properties import PropertyView

router = APIRouter(tags=["configuration"])

Key = Query(description="property key, e.g. global.scan.limit", max_length=256)


def _wire(view: PropertyView) -> Property:
    return Property(
        key=view.key,
        value=view.value,
        default_value=view.default_value,
        description=view.description,
        is_default=view.is_default,
    )


@router.get("/configuration/properties", operation_id="listProperties")
def list_properties(services: ServicesDep) -> list[Property]:
    return [_wire(view) for view in services.properties.list_all()]


@router.get("/configuration/property", operation_id="getProperty")
def get_property(services: ServicesDep, key: str = Key) -> Property:
    return _wire(services.properties.get(key))


@router.put("/configuration/property", operation_id="setProperty")
def set_property(services: ServicesDep, key: str = Key, value: str = Query(max_length=1024)) -> Property:
    return _wire(services.properties.set(key, value))


@router.delete("/configuration/property", operation_id="resetProperty")
def reset_property(services: ServicesDep, key: str = Key) -> Property:
    return _wire(services.properties.reset(key))
