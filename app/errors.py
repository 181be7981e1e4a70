"""ferry's errors, each rendered as ``application/problem+json`` (RFC 9457).

FerryError            500  never raised on purpose; the base of the tree
├── NotFound          404  no such migration, property or route
├── Conflict          409  an action the migration's state forbids; a clashing redefinition
├── InvalidValue      422  a value ferry refuses; ``detail`` names the field
├── Unauthorized      401  no or unknown bearer token
└── Forbidden         403  a token whose role is too weak

Every problem's ``type`` is a URI under :data:`PROBLEM_BASE`: ``urn:ferry:problem:`` and the
class's name in kebab case (``urn:ferry:problem:invalid-value``); the framework's own refusals
read ``urn:ferry:problem:http-not-found``, ``...:http-method-not-allowed``, and a body that is
not JSON ``urn:ferry:problem:invalid-json``. A URN, not a web address: nothing to fetch, and no
host to keep up; the README lists them all.
"""

from __future__ import annotations

from fastapi_problem.error import StatusProblem

#: Where every problem ``type`` lives; ``{type}`` is the problem's own name.
PROBLEM_BASE = "urn:ferry:problem:"


class FerryError(StatusProblem):
    title = "Internal error"
    status = 500


class InternalError(FerryError):
    """An unexpected failure. The client is told only that; the traceback goes to the log."""

    def __init__(self, _hidden: str | None = None) -> None:
        super().__init__("internal error; the server log has the details")


class NotFound(FerryError):
    title = "Not found"
    status = 404


class Conflict(FerryError):
    title = "Conflict"
    status = 409


class InvalidValue(FerryError):
    title = "Invalid value"
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class Unauthorized(FerryError):
    title = "Unauthorized"
    status = 401
    headers_ = {"WWW-Authenticate": "Bearer"}


class Forbidden(FerryError):
    title = "Forbidden"
    status = 403
