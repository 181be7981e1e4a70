"""Query parameters a write does not know are refused, so a misspelled key cannot pass unseen.

``PATCH /migrations/x?migration.paralel.scan.percentage=13%25`` would otherwise answer 200 and
change nothing. Reads ignore what they do not know (browsers and caches add their own keys), and
``PUT /migrations/{id}`` takes a migration's options as query keys by design: its route checks
them against the engine instead.
"""

from __future__ import annotations

from fastapi import Request

from app.errors import InvalidValue

#: Operations whose unknown query keys mean something (options), checked by the operation itself.
OPEN_ENDED = frozenset({"putMigration"})
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def refuse_unknown_query(request: Request) -> None:
    """A dependency of every write: a query key the operation does not declare is a 422 (async:
    it never blocks, so a read, a stats poll above all, costs no hop through the thread pool)."""
    if request.method in _READS or not request.query_params:
        return
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return
    operation = request.app.openapi().get("paths", {}).get(path, {}).get(request.method.lower(), {})
    if operation.get("operationId") in OPEN_ENDED:
        return
    known = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
    for name in request.query_params:
        if name not in known:
            choices = f"known: {', '.join(known)}" if known else "this operation takes none"
            raise InvalidValue(name, f"unknown query parameter of {request.method} {path}; {choices}")
