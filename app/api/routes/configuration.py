"""``/configuration``: runtime properties (SPEC section 2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ServicesDep
from app.api.problems import errors
from app.api.schemas import Property
from app.services.properties import PropertyView

router = APIRouter(tags=["configuration"])

Key = Annotated[
    str,
    Query(
        description="property key: global.scan.limit, global.scan.pool.max, migration.priority.pool.allocations, "
        "migration.max.scan.threads, migration.max.running.migrations or global.bandwidth.limit",
        max_length=256,
        examples=["global.scan.limit"],
    ),
]
Value = Annotated[
    str,
    Query(
        max_length=1024,
        description="the new value as text, percent-encoded in the URL (7%25%2C36%25%2C49%25 for 7%,36%,49%)",
        examples=["50"],
    ),
]


def _wire(view: PropertyView) -> Property:
    return Property(
        key=view.key,
        value=view.value,
        default_value=view.default_value,
        description=view.description,
        is_default=view.is_default,
    )


@router.get("/configuration/properties", operation_id="listProperties", summary="List every property")
def list_properties(services: ServicesDep) -> list[Property]:
    """Every runtime property with its value, default and meaning.

    ```sh
    curl http://127.0.0.1:18080/configuration/properties
    ```
    """
    return [_wire(view) for view in services.properties.list_all()]


@router.get(
    "/configuration/property", operation_id="getProperty", summary="Read a property", responses=errors(404, 422)
)
def get_property(services: ServicesDep, key: Key) -> Property:
    """One property; 404 for a key ferry does not know.

    ```sh
    curl 'http://127.0.0.1:18080/configuration/property?key=global.scan.limit'
    ```
    """
    return _wire(services.properties.get(key))


@router.put("/configuration/property", operation_id="setProperty", summary="Set a property", responses=errors(404, 422))
def set_property(services: ServicesDep, key: Key, value: Value) -> Property:
    """Set a property (admin); stored in the database and applied to running migrations within
    a second. 404 for an unknown key (a per-migration key is set by PATCH on the migration), 422
    for a value not in the accepted form, and then nothing is stored.

    ```sh
    curl -X PUT 'http://127.0.0.1:18080/configuration/property?key=global.scan.limit&value=50' -H 'accept: */*'
    curl -X PUT 'http://127.0.0.1:18080/configuration/property?key=migration.priority.pool.allocations&value=7%25%2C36%25%2C49%25' -H 'accept: */*'
    ```
    """  # noqa: E501 - the SPEC's commands, verbatim
    return _wire(services.properties.set(key, value))


@router.delete(
    "/configuration/property",
    operation_id="resetProperty",
    summary="Return a property to its default",
    responses=errors(404, 422),
)
def reset_property(services: ServicesDep, key: Key) -> Property:
    """Return a property to its default (admin); applied live.

    ```sh
    curl -X DELETE 'http://127.0.0.1:18080/configuration/property?key=global.scan.limit'
    ```
    """
    return _wire(services.properties.reset(key))
