"""One ASGI middleware for every request: a request id, one log line, and the HTTP metrics."""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

import structlog
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import Metrics

log = structlog.get_logger("ferry.http")

#: Request ids: this process's random prefix and a count, unique without a syscall per request.
_PREFIX = secrets.token_hex(4)
_COUNT = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNT):08x}"


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or new_request_id()
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                route = _route_of(scope)
                self.metrics.requests.labels(scope["method"], route, str(status)).inc()
                self.metrics.request_seconds.labels(scope["method"], route).observe(seconds)
                if route not in ("/healthz", "/readyz", "/metrics"):
                    # What dashboards poll many times a second is logged at debug only.
                    emit = log.debug if scope["method"] == "GET" and route.startswith("/stats/") else log.info
                    emit(
                        "request",
                        action="http_request",
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        ms=round(seconds * 1000, 1),
                    )


def _route_of(scope: dict[str, Any] | Scope) -> str:
    """The route template (``/migrations/{job_id}``), so metrics do not grow a series per id."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else _framework_route(scope)


def _framework_route(scope: dict[str, Any] | Scope) -> str:
    """Routes FastAPI adds itself (``/openapi.json``) and mounts (the docs' assets) leave no route
    in the scope: find the one that matches, on a copy of the request's method and path."""
    probe: Scope = {"type": "http", "method": scope["method"], "path": scope["path"], "root_path": ""}
    for route in getattr(scope.get("app"), "routes", ()):
        match, _ = route.matches(probe)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"
