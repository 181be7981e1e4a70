"""Answers kept ready: the reads dashboards poll many times a second, served before routing.

``GET /stats/scannerPoolStats`` is a snapshot the coordinator refreshes every tick; between two
refreshes every poll gets the same bytes. Through the framework (routing, dependencies, a
response object, five layers of ``send``) one answer cost about 380 microseconds of interpreter
time, which the event loop shares with the coordinator; answered here it costs a fifth of that.

What is answered here is exactly what the route gives (the route stays, for the OpenAPI document
and as the fallback): the same bytes and headers, the same metrics and log line (this sits inside
:class:`~app.api.middleware.RequestContext`). A request the fast path cannot vouch for (a token
that is missing or wrong) goes on to the framework, which refuses it with its problem+json.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.schemas import ScannerPoolStats
from app.api.security import role_of


class Rendered:
    """The JSON of the latest answer, made again only when the answer object changes."""

    def __init__(self) -> None:
        self._last: tuple[dict[str, Any], bytes] | None = None

    def render(self, answer: dict[str, Any]) -> bytes:
        last = self._last
        if last is None or last[0] is not answer:
            last = (answer, ScannerPoolStats.model_validate(answer).model_dump_json().encode())
            self._last = last
        return last[1]


POOL_ANSWERS = Rendered()


@dataclass(frozen=True)
class ReadyAnswer:
    route: APIRoute  #: the route that documents the answer (and names it in metrics and logs)
    body: Callable[[], bytes]


class ReadyAnswers:
    """ASGI middleware: ``GET`` of a path in ``answers`` is answered from its snapshot, at once."""

    def __init__(self, app: ASGIApp, tokens: Mapping[str, str], answers: Mapping[str, ReadyAnswer]) -> None:
        self.app = app
        self.tokens = dict(tokens)
        self.answers = dict(answers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self.answers.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if answer is None or not self._allowed(scope):
            await self.app(scope, receive, send)
            return
        scope["route"] = answer.route
        body = answer.body()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope) -> bool:
        """Any role may read; with no tokens configured, anyone may (as :func:`authorize` says)."""
        if not self.tokens:
            return True
        header = next((value for name, value in scope["headers"] if name == b"authorization"), None)
        return role_of(self.tokens, header.decode("latin-1") if header is not None else None) is not None
