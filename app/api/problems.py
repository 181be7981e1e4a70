"""Every error as problem+json, with the offending field or parameter named in ``detail``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_problem.handler import add_exception_handler, new_exception_handler
from rfc9457 import Problem

from app.errors import InternalError

_PLACES = {"query": "query parameter", "path": "path parameter", "body": "body field", "header": "header"}


def describe_location(loc: Sequence[Any]) -> str:
    """``("body", "options", "scanType")`` -> ``"body field 'options.scanType'"``."""
    if not loc:
        return "request"
    place, *rest = loc
    name = ".".join(str(part) for part in rest)
    if place not in _PLACES:
        return repr(".".join(str(part) for part in loc))
    return f"{_PLACES[place]} {name!r}" if name else "request body"


def _validation_problem(_handler: Any, _request: Request, exc: RequestValidationError) -> Problem:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    detail = f"{describe_location(first.get('loc', ()))}: {first.get('msg', 'invalid')}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    fields = [
        {"field": describe_location(error.get("loc", ())), "message": str(error.get("msg", ""))} for error in errors
    ]
    return Problem(title="Invalid request", type_="invalid-request", status=422, detail=detail, errors=fields)


#: Problems each operation may answer, documented in the OpenAPI description.
DOCUMENTED = {
    "401": "no or unknown bearer token",
    "403": "the token's role may not do this",
    "404": "no such migration or property",
    "409": "the migration's state forbids this action",
    "422": "a value ferry refuses; detail names the field",
}
_OPEN = {"/healthz", "/readyz"}


def install(app: FastAPI) -> None:
    handler = new_exception_handler(
        logger=logging.getLogger("ferry.api"),
        request_validation_handler=_validation_problem,
        unhandled_wrappers={"default": InternalError},
    )
    add_exception_handler(app, handler, generic_swagger_defaults=False)
    describe = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = describe()
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in document.get("paths", {}).items():
            if path in _OPEN:
                continue
            for operation in operations.values():
                for status, description in DOCUMENTED.items():
                    operation["responses"][status] = {"description": description, "content": problem}
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
