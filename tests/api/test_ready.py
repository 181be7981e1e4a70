"""Answers kept ready (:mod:`app.api.ready`): served before routing, yet like the route's own."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.routing import APIRoute
from starlette.types import Message, Receive, Scope, Send

from app.api.ready import ReadyAnswer, ReadyAnswers
from app.api.schemas import ScannerPoolStats
from tests.servers import LiveServer

ROUTE = APIRoute("/ready", endpoint=lambda: None)


class Downstream:
    """Stands for the framework: records the requests the fast path passed on."""

    def __init__(self) -> None:
        self.paths: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"routed"})


def ask(app: ReadyAnswers, method: str, path: str, token: str | None = None) -> tuple[list[Message], Scope]:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "headers": headers}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, scope


def test_only_a_get_of_a_ready_path_by_a_known_token_is_answered_here() -> None:
    """A viewer's GET is answered from the snapshot, naming the route; anything else (no token,
    a wrong one, another method or path) goes on to the framework, which refuses or routes it."""
    downstream = Downstream()
    app = ReadyAnswers(downstream, {"v-secret": "viewer"}, {"/ready": ReadyAnswer(ROUTE, lambda: b'{"a":1}')})
    sent, scope = ask(app, "GET", "/ready", "v-secret")
    assert downstream.paths == []
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"]) == {b"content-length": b"7", b"content-type": b"application/json"}
    assert sent[1]["body"] == b'{"a":1}'
    assert scope["route"] is ROUTE
    for method, path, token in [
        ("GET", "/ready", None),
        ("GET", "/ready", "wrong"),
        ("HEAD", "/ready", "v-secret"),
        ("POST", "/ready", "v-secret"),
        ("GET", "/other", "v-secret"),
    ]:
        sent, _ = ask(app, method, path, token)
        assert sent[1]["body"] == b"routed", (method, path, token)
    assert len(downstream.paths) == 5


def test_without_tokens_anyone_reads_as_the_route_lets_them() -> None:
    """With no tokens configured every request is accepted (SPEC section 7), here too."""
    downstream = Downstream()
    app = ReadyAnswers(downstream, {}, {"/ready": ReadyAnswer(ROUTE, lambda: b"{}")})
    sent, _ = ask(app, "GET", "/ready")
    assert sent[0]["status"] == 200
    assert downstream.paths == []


def metric(server: LiveServer, line_start: str) -> float:
    for line in server.client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_served_poll_is_counted_logged_and_carries_its_request_id(server: LiveServer) -> None:
    """What the fast path answers is a valid ScannerPoolStats with the route's content type,
    counted under the route's name in /metrics, with the caller's request id echoed."""
    counted = 'ferry_http_requests_total{method="GET",route="/stats/scannerPoolStats",status="200"}'
    before = metric(server, counted)
    response = server.client.get("/stats/scannerPoolStats", headers={"x-request-id": "poll-7"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "poll-7"
    ScannerPoolStats.model_validate_json(response.content)
    assert metric(server, counted) == before + 1


def test_the_route_still_documents_the_answer(server: LiveServer) -> None:
    """The OpenAPI document keeps the operation the fast path serves, with its schema."""
    operation = server.client.get("/openapi.json").json()["paths"]["/stats/scannerPoolStats"]["get"]
    assert operation["operationId"] == "scannerPoolStats"
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/ScannerPoolStats")
