"""Shutdown and restart of a real server process: SIGTERM drains and resumes; kill -9 loses nothing."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.servers import ServerProcess, free_port, server_process

ROOT = Path(__file__).resolve().parents[2]


def serving(env: dict[str, str], port: int, log: Path) -> AbstractContextManager[ServerProcess]:
    """A real server process whose engines are the fake one (tests.fakes.serve)."""
    return server_process([sys.executable, "-m", "tests.fakes.serve"], {**env, "FERRY_PORT": str(port)}, log)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "data"
    data.mkdir()
    return {
        **os.environ,
        "FERRY_DATABASE_URL": database_url,
        "FERRY_DATA_DIR": str(data),
        "FERRY_FAKE_LOG": str(tmp_path / "units.log"),
        "FERRY_DRAIN_TIMEOUT": "10",
        "FERRY_NODE_ID": "restart-test",
        "PYTHONPATH": str(ROOT),
    }


def units_run(env: dict[str, str], job_id: str) -> Counter[int]:
    path = Path(env["FERRY_FAKE_LOG"])
    lines = path.read_text().split() if path.exists() else []
    pairs = zip(lines[::2], lines[1::2], strict=True)
    return Counter(int(unit) for job, unit in pairs if job == job_id)


def start_two(server: ServerProcess) -> None:
    """One long migration that will be interrupted, one that a user stops."""
    body = {
        "migrationId": "long",
        "kind": "files",
        "source": "/s",
        "target": "/t",
        "options": {"units": 150, "unitSeconds": 0.05},
    }
    assert server.client.post("/migrations", json=body).status_code == 201
    body = {
        "migrationId": "halted",
        "kind": "files",
        "source": "/s",
        "target": "/t",
        "options": {"units": 500, "unitSeconds": 0.05},
    }
    assert server.client.post("/migrations", json=body).status_code == 201
    server.wait_for("long", lambda m: (m["progress"].get("unitsDone") or 0) >= 10)
    assert server.client.post("/migrations/halted/stop").json()["state"] == "STOPPED"


@pytest.mark.slow
def test_sigterm_drains_checkpoints_and_resumes_after_restart(env: dict[str, str], tmp_path: Path) -> None:
    """SIGTERM: exit 0 with units in flight finished and checkpointed; the restart continues the
    interrupted migration (not the user-stopped one) and no unit runs twice."""
    port = free_port()
    with serving(env, port, tmp_path / "server.log") as server:
        start_two(server)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
    done_before = sum(units_run(env, "long").values())
    assert 0 < done_before < 150
    with serving(env, port, tmp_path / "server.log") as server:
        final = server.wait_for("long", lambda m: m["state"] == "COMPLETED", timeout=60)
        assert final["progress"]["unitsDone"] == 150
        assert server.migration("halted")["state"] == "STOPPED"
    runs = units_run(env, "long")
    assert sorted(runs) == list(range(150))
    assert max(runs.values()) == 1, "a unit finished before SIGTERM ran again"


@pytest.mark.slow
def test_kill_9_resumes_from_the_last_checkpoint(env: dict[str, str], tmp_path: Path) -> None:
    """kill -9: the restart takes the RUNNING migration back and completes it; only the work after
    the last checkpoint (a few seconds at most) runs again; a user's stop is kept."""
    port = free_port()
    with serving(env, port, tmp_path / "server.log") as server:
        start_two(server)
        time.sleep(2.5)  # past one checkpoint
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
    before = units_run(env, "long")
    with serving(env, port, tmp_path / "server.log") as server:
        server.wait_for("long", lambda m: m["state"] == "COMPLETED", timeout=60)
        assert server.migration("halted")["state"] == "STOPPED"
    after = units_run(env, "long")
    assert sorted(after) == list(range(150))
    redone = sum(after.values()) - 150
    assert redone < sum(before.values()), "everything ran again: the checkpoint was lost"
