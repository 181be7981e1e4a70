"""A real ``ferry serve`` for benchmarks: migrations go through the HTTP API, as operators run them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

FERRY = Path(sys.executable).parent / "ferry"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FerryServer:
    def __init__(self, client: httpx.Client, proc: subprocess.Popen[bytes]) -> None:
        self.client = client
        self.proc = proc

    def copy(self, job_id: str, body: dict[str, Any], poll: float = 0.1) -> tuple[float, dict[str, Any]]:
        """Run a migration to its end: a first pass by POST, an incremental pass by start after it.

        Returns the seconds from the request to the server's ``completeTime`` (so how often this
        polls changes neither the figure nor, much, the machine's load), and the final object.
        """
        started = time.time()
        existing = self.client.get(f"/migrations/{job_id}")
        if existing.status_code == 200:
            response = self.client.post(f"/migrations/{job_id}/start")
        else:
            response = self.client.post("/migrations", json={"migrationId": job_id, **body})
        response.raise_for_status()
        while True:
            migration = dict(self.client.get(f"/migrations/{job_id}").json())
            if migration["state"] in ("COMPLETED", "FAILED", "STOPPED"):
                break
            time.sleep(poll)
        if migration["state"] != "COMPLETED":
            raise RuntimeError(f"{job_id} ended {migration['state']}: {migration['error']}")
        completed = datetime.fromisoformat(migration["completeTime"]).timestamp()
        return completed - started, migration

    def set_property(self, key: str, value: str) -> None:
        self.client.put("/configuration/property", params={"key": key, "value": value}).raise_for_status()

    def peak_rss_mb(self) -> float:
        """The server's peak resident memory (VmHWM), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextmanager
def ferry_server(allowed_roots: list[Path], log: Path | None = None) -> Iterator[FerryServer]:
    """``ferry serve`` on a free port with a fresh SQLite database; stopped with SIGTERM after."""
    state = Path(tempfile.mkdtemp(prefix="ferry-bench-state-"))
    port = _free_port()
    env = {
        **os.environ,
        "FERRY_DATA_DIR": str(state),
        "FERRY_PORT": str(port),
        "FERRY_LOG_LEVEL": "WARNING",
        "FERRY_ALLOWED_ROOTS": ":".join(str(root) for root in allowed_roots),
    }
    output = (log or state / "serve.log").open("ab")
    proc = subprocess.Popen([str(FERRY), "serve"], env=env, stdout=output, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"ferry serve did not start; see {output.name}")
            time.sleep(0.1)
        yield FerryServer(client, proc)
    finally:
        client.close()
        proc.terminate()
        proc.wait(60)
        output.close()
