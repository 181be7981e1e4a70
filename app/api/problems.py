"""Every error as problem+json, with the offending field or parameter named in ``detail``.

It also writes the errors into the OpenAPI document: each operation lists the problems it can
answer (its routes say which with :func:`errors`), plus 401, and 403 for writes, on the routes
that need a token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_problem.handler import add_exception_handler, new_exception_handler
from rfc9457 import Problem

from app.errors import PROBLEM_BASE, InternalError

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


def _invalid_json(error: dict[str, Any]) -> Problem:
    """Pydantic reports ``("body", 1)``: the character where decoding stopped, not a field."""
    position = next((part for part in error.get("loc", ())[1:] if isinstance(part, int)), None)
    reason = (error.get("ctx") or {}).get("error") or error.get("msg") or "cannot be decoded"
    where = f" at character {position}" if position is not None else ""
    detail = f"request body: not valid JSON{where}: {reason}"
    return Problem(title="Invalid JSON", type_="invalid-json", status=422, detail=detail)


def _validation_problem(_handler: Any, request: Request, exc: RequestValidationError) -> Problem:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        return _invalid_json(dict(first))
    detail = f"{describe_location(first.get('loc', ()))}: {first.get('msg', 'invalid')}"
    media = request.headers.get("content-type", "").partition(";")[0].strip()
    if tuple(first.get("loc", ())) == ("body",) and media and media != "application/json":
        # FastAPI reads a body it cannot take for JSON as a string, and then says "not an object".
        detail = f"request body: sent as {media}; send a JSON object with Content-Type: application/json"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    fields = [
        {"field": describe_location(error.get("loc", ())), "message": str(error.get("msg", ""))} for error in errors
    ]
    return Problem(title="Invalid request", type_="invalid-request", status=422, detail=detail, errors=fields)


#: What each problem status means, as the OpenAPI document says it.
MEANINGS = {
    401: "no or unknown bearer token (only when FERRY_TOKENS is set)",
    403: "the token's role may not do this (only when FERRY_TOKENS is set)",
    404: "no such migration or property; detail names it",
    409: "the migration's state forbids this; detail says in which states it is allowed",
    422: "a value ferry refuses, a query parameter it does not know, or a body that is not JSON; "
    "detail names the field",
    503: "not ready: the database is unreachable or its schema is not at head",
}
#: Documented on an operation with parameters that declares none of its own (a route added
#: without :func:`errors`), so that no answer it gives is undocumented.
_FALLBACK = (404, 409, 422)
_OPEN = {"/healthz", "/readyz"}
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route: the problems it can answer besides 401 and 403."""
    return {status: {"description": MEANINGS[status], "content": _PROBLEM} for status in statuses}


def _document_problems(document: dict[str, Any]) -> None:
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation["responses"]
            declared = {code for code in responses if code.startswith(("4", "5"))} - {"422"}
            if "422" in responses and responses["422"].get("content") != _PROBLEM:
                del responses["422"]  # FastAPI's own validation-error body, which ferry never sends
            takes_input = "parameters" in operation or "requestBody" in operation
            statuses = list(_FALLBACK) if takes_input and not declared and "422" not in responses else []
            if path not in _OPEN:
                statuses += [401] if method == "get" else [401, 403]
            for status in statuses:
                responses.setdefault(str(status), {"description": MEANINGS[status], "content": _PROBLEM})
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if "Problem" in schemas:
        schemas["Problem"]["properties"]["type"]["description"] = (
            f"a URI under {PROBLEM_BASE}: not-found, conflict, invalid-value, invalid-request, invalid-json, "
            "unauthorized, forbidden, internal, http-not-found, http-method-not-allowed"
        )
        schemas["Problem"]["properties"]["detail"]["description"] = "what was wrong, naming the field or parameter"


def install(app: FastAPI) -> None:
    handler = new_exception_handler(
        logger=logging.getLogger("ferry.api"),
        request_validation_handler=_validation_problem,
        unhandled_wrappers={"default": InternalError},
        documentation_uri_template=PROBLEM_BASE + "{type}",
    )
    add_exception_handler(app, handler, generic_swagger_defaults=False)
    describe = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = describe()
        _document_problems(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
