"""Ownership and heartbeats: what a later multi-instance ferry needs is recorded in the database."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from app.db.models import CopyJobRow, NodeRow, utcnow
from app.db.session import Database
from tests.api.conftest import settings_for
from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer, live_server


def row(database_url: str, job_id: str) -> CopyJobRow:
    database = Database(database_url)
    with database.session() as session:
        found = session.get(CopyJobRow, job_id)
        assert found is not None
    database.dispose()
    return found


def test_running_jobs_record_owner_and_heartbeat(server: LiveServer, database_url: str) -> None:
    """A RUNNING job names its instance and its heartbeat advances; an ended one is released."""
    body = {
        "migrationId": "hb",
        "kind": "files",
        "source": "/s",
        "target": "/t",
        "options": {"units": 1000, "unitSeconds": 0.05},
    }
    server.client.post("/migrations", json=body)
    server.wait_for("hb", {"RUNNING"})
    first = row(database_url, "hb")
    assert first.owner == "test-instance"
    assert first.heartbeat_at is not None
    time.sleep(2.5)
    second = row(database_url, "hb")
    assert second.heartbeat_at is not None
    assert second.heartbeat_at > first.heartbeat_at
    assert second.checkpoint is not None
    assert second.checkpoint["done"]
    server.client.post("/migrations/hb/stop")
    deadline = time.monotonic() + 10
    while row(database_url, "hb").owner is not None:
        assert time.monotonic() < deadline, "stopped job still owned"
        time.sleep(0.05)


def test_boot_takes_over_only_jobs_of_dead_nodes(database_url: str, tmp_path: Path) -> None:
    """At start, RUNNING jobs of a dead node (stale heartbeat, or no node row) are taken over.

    On PostgreSQL a live node's jobs (fresh heartbeat) are left to it; on SQLite there is no
    other live node (the file lock proves it), so its jobs are taken over too.
    """
    database = Database(database_url)
    with database.session() as session:
        session.add(NodeRow(node_id="other-node", host="elsewhere", pid=1, heartbeat_at=utcnow(), stats={}))
        session.add(
            NodeRow(
                node_id="dead-node", host="elsewhere", pid=2, heartbeat_at=utcnow() - timedelta(minutes=5), stats={}
            )
        )
        for job_id, owner in (("abandoned", "dead-node"), ("alive", "other-node")):
            session.add(
                CopyJobRow(
                    id=job_id,
                    kind="files",
                    source="/s",
                    target="/t",
                    priority="NORMAL",
                    options={"units": 3, "unitSeconds": 0.0, "unitBytes": 1, "failAt": -1, "openSeconds": 0.0},
                    state="RUNNING",
                    progress={},
                    owner=owner,
                    run_purpose="copy",
                    lease_epoch=1,
                    started_at=utcnow(),
                    run_number=1,
                    passes=0,
                )
            )
    database.dispose()
    sqlite = database_url.startswith("sqlite")
    with live_server(settings_for(database_url, tmp_path), {"files": FakeEngine()}) as server:
        server.wait_for("abandoned", {"COMPLETED"})
        if sqlite:
            server.wait_for("alive", {"COMPLETED"})
        else:
            time.sleep(1.0)  # several ticks: a takeover would have happened by now
            assert server.client.get("/migrations/alive").json()["state"] == "RUNNING"
            assert row(database_url, "alive").owner == "other-node"
