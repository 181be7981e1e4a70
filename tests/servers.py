"""A real ferry server on a real port, in this process, for tests that speak HTTP."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from app.api.app import create_app
from app.api.deps import Services
from app.engines.base import Engine
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


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


class ServerProcess:
    """A ferry server in a process of its own (``argv``), for tests that signal or kill it."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{env['FERRY_PORT']}"
        self.output = log.open("ab")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.output, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=10)
        try:
            self._wait_ready(log)
        except BaseException:
            self.close()  # never leave a server behind, least of all on a fixed port
            raise

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"server exited at start; see {log}"
            try:
                if self.client.get("/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"server did not become ready; see {log}"
            time.sleep(0.1)

    def migration(self, job_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"/migrations/{job_id}").json())

    def wait_for(self, job_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        """Poll a migration until ``check`` holds; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.migration(job_id)
            if check(body):
                return body
            assert time.monotonic() < deadline, f"timed out; last: {body}"
            time.sleep(0.05)

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.output.close()


@contextmanager
def server_process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(argv, env, log)
    try:
        yield process
    finally:
        process.close()
