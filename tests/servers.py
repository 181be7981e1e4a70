"""A real ferry server on a real port, in this process, for tests that speak HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from app.api.app import create_app
from app.api.deps import Services
from app.engines.base import Engine
from app.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    client: httpx.Client
    app: FastAPI
    engines: Mapping[str, Engine]

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def wait_for(self, job_id: str, states: set[str], timeout: float = 20.0) -> dict[str, Any]:
        """Poll a migration until it reaches one of ``states``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.client.get(f"/migrations/{job_id}").json()
            if body.get("state") in states:
                return body
            time.sleep(0.05)
        raise AssertionError(f"{job_id} did not reach {states} in {timeout}s; last: {body}")


@contextmanager
def live_server(settings: Settings, engines: Mapping[str, Engine], token: str | None = None) -> Iterator[LiveServer]:
    app = create_app(settings, engines)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, headers=headers, timeout=10.0) as client:
        try:
            yield LiveServer(url, client, app, engines)
        finally:
            server.should_exit = True
            thread.join(30)
