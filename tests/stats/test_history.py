"""``/stats/history``: the last hour of throughput and pool use, sampled by the node, in fixed memory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services import history as history_module
from app.services.history import History, Sample
from tests.api.conftest import settings_for
from tests.disk.conftest import wait_for
from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer, live_server


def test_the_ring_keeps_one_hour_and_no_more() -> None:
    """At one sample a second the ring holds 3600 samples: after 5000 the oldest 1400 are gone,
    and ``since`` returns only the later ones."""
    clock = iter(float(n) for n in range(5000))
    ring = History(lambda at: Sample(at, int(at), 100, 4, 2, 1, 0), every=1.0, clock=lambda: next(clock))
    for _ in range(5000):
        ring.sample_now()
    kept = ring.samples()
    assert ring.capacity == 3600
    assert [kept[0].at, kept[-1].at, len(kept)] == [1400.0, 4999.0, 3600]
    assert [s.at for s in ring.samples(since=4997.0)] == [4998.0, 4999.0]


@pytest.fixture
def api(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """ferry over HTTP with the fake engine, sampling its history every 0.1 s."""
    monkeypatch.setattr(history_module, "SAMPLE_EVERY", 0.1)
    database = tmp_path / "ferry.db"
    shutil.copy(sqlite_template, database)
    engines = {"files": FakeEngine("files"), "disk": FakeEngine("disk")}
    with live_server(settings_for(f"sqlite:///{database}", tmp_path), engines) as server:
        yield server


def test_history_records_a_running_migration(api: LiveServer) -> None:
    """While a migration runs, the samples show its speed, the pool's grants and threads at work;
    ``since`` answers only what came after, for a dashboard that polls."""
    options = {"units": 400, "unitSeconds": 0.05, "unitBytes": 1_000_000}
    body = {"migrationId": "vm", "kind": "disk", "source": "/s", "target": "/t", "options": options}
    assert api.client.post("/migrations", json=body).status_code == 201

    def moving() -> bool:
        samples = api.client.get("/stats/history").json()["samples"]
        return any(s["migrations"].get("vm", 0) > 0 and s["active"] > 0 for s in samples)

    wait_for(moving, timeout=20)
    answer = api.client.get("/stats/history").json()
    assert answer["intervalSeconds"] == 0.1
    assert answer["horizonSeconds"] == 3600
    latest = answer["samples"][-1]
    assert latest["poolSize"] == 100
    assert latest["allocated"] == 4
    assert latest["runningMigrations"] == 1
    assert latest["bytesPerSecond"] == sum(latest["migrations"].values())
    newer = api.client.get("/stats/history", params={"since": latest["time"]}).json()["samples"]
    assert all(s["time"] > latest["time"] for s in newer), (latest["time"], [s["time"] for s in newer][:3])
    assert api.client.get("/stats/history", params={"since": "yesterday"}).status_code == 422
    api.client.post("/migrations/vm/stop")
