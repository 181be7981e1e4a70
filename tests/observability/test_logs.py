"""Logs are events: JSON lines off a terminal, readable lines on one; one line per transition, none per unit."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
UNITS = 60


def environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    return {**env, "PYTHONPATH": str(ROOT), **values}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[httpx.Client, subprocess.Popen[bytes], Path]]:
    """A ferry process with the fake engine, its stderr going to a file as under a service manager."""
    port = free_port()
    log = tmp_path / "stderr.log"
    env = environment(
        FERRY_PORT=str(port),
        FERRY_DATA_DIR=str(tmp_path),
        FERRY_LOG_FORMAT="auto",
        FERRY_NODE_ID="log-test",
        FERRY_DRAIN_TIMEOUT="5",
    )
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "tests.fakes.serve"], cwd=ROOT, env=env, stderr=sink)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 20
            while True:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "ferry did not start in 20 s"
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            yield client, process, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def wait_for(client: httpx.Client, job_id: str, state: str) -> None:
    deadline = time.monotonic() + 20
    while client.get(f"/migrations/{job_id}").json()["state"] != state:
        assert time.monotonic() < deadline, f"{job_id} not {state} in 20 s"
        time.sleep(0.05)


def test_a_migration_logs_events_not_units(served: tuple[httpx.Client, subprocess.Popen[bytes], Path]) -> None:
    """Piped to a file, every line is JSON. A migration of 60 units logs its admission and its end, with the
    migration id and an action, and nothing per unit; a property change logs the pool's new config; each
    request is one line with its request id; SIGTERM logs the shutdown."""
    client, process, log = served
    options = {"units": UNITS, "unitSeconds": 0.01}
    body = {"migrationId": "m", "kind": "files", "source": "/s", "target": "/t", "options": options}
    created = client.post("/migrations", json=body, headers={"X-Request-Id": "create-m"})
    assert created.status_code == 201
    assert created.headers["x-request-id"] == "create-m"
    wait_for(client, "m", "COMPLETED")
    assert client.put("/configuration/property", params={"key": "global.scan.limit", "value": "50"}).is_success
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0  # a drained shutdown is a clean exit

    events: list[dict[str, Any]] = [json.loads(line) for line in log.read_text().splitlines()]
    by_action = {event.get("action"): event for event in events}
    for action in ("admit", "run_completed"):
        assert by_action[action]["migration_id"] == "m", action
        assert by_action[action]["level"] == "info"
        assert by_action[action]["timestamp"].endswith("Z")
    assert by_action["config_applied"]["limit"] == 50
    assert "shutdown" in by_action
    create = next(e for e in events if e.get("action") == "http_request" and e["request_id"] == "create-m")
    assert (create["method"], create["path"], create["status"]) == ("POST", "/migrations", 201)
    assert all(e.get("request_id") for e in events if e.get("action") == "http_request")
    about_m = [e for e in events if e.get("migration_id") == "m"]
    assert [e["action"] for e in about_m] == ["create", "start", "admit", "run_started", "run_completed"]
    rebalances = [e["grants"] for e in events if e.get("action") == "rebalance"]
    assert rebalances[0] == {"m": 4}, "the leader granted the migration its NORMAL share"
    start = next(e for e in about_m if e["action"] == "start")
    assert (start["from_state"], start["to_state"]) == ("NONSCHEDULED", "SCHEDULED")
    assert len([e for e in events if e.get("action") != "http_request"]) < UNITS / 3


def read_pty(fd: int, until: bytes, timeout: float = 10) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while until not in out:
        assert time.monotonic() < deadline, out
        if select.select([fd], [], [], 0.1)[0]:
            try:
                out += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
    return out


def test_auto_format_is_readable_on_a_terminal_and_json_otherwise() -> None:
    """FERRY_LOG_FORMAT=auto: the same event renders as key=value text on a terminal and as JSON in a pipe."""
    script = (
        "from app.observability.logging import configure; import structlog; configure('INFO', 'auto'); "
        "structlog.get_logger('t').info('migration running', action='admit', migration_id='m')"
    )
    command = [sys.executable, "-c", script]
    piped = subprocess.run(command, cwd=ROOT, env=environment(), capture_output=True, timeout=30, check=True)
    event = json.loads(piped.stderr)
    assert (event["event"], event["action"], event["migration_id"]) == ("migration running", "admit", "m")

    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(command, cwd=ROOT, env=environment(), stderr=terminal)
        os.close(terminal)
        text = read_pty(controller, b"migration_id").decode()
        assert process.wait(30) == 0
    finally:
        os.close(controller)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colours, which a terminal shows
    assert "migration running" in plain
    assert "action=admit" in plain
    assert not plain.lstrip().startswith("{")
