"""The pool end to end: grants and threads seen through /stats/scannerPoolStats while resizing."""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer
from tests.waiting import wait_until


def pool_stats(server: LiveServer) -> dict[str, Any]:
    return dict(server.client.get("/stats/scannerPoolStats").json())


def set_property(server: LiveServer, key: str, value: str) -> None:
    assert server.client.put("/configuration/property", params={"key": key, "value": value}).status_code == 200


def test_live_shrink_from_6_to_3_is_seen_within_a_second(server: LiveServer, engines: dict[str, FakeEngine]) -> None:
    """Throttled units at a 6-thread grant; PUT limit 3: stats show 3 granted and <= 3 active within 1 s,
    and never more units at work than the limit in force when each started."""
    set_property(server, "global.scan.limit", "6")
    body = {
        "migrationId": "big",
        "kind": "files",
        "source": "/s",
        "target": "/t",
        "properties": {"migration.parallel.scan.percentage": "100"},
        "options": {"units": 2000, "unitSeconds": 0.1},
    }
    assert server.client.post("/migrations", json=body).status_code == 201
    deadline = time.monotonic() + 10
    while pool_stats(server)["active"] < 6:
        assert time.monotonic() < deadline, "never reached 6 threads at work"
        time.sleep(0.02)
    assert engines["files"].concurrency.peak == 6
    set_property(server, "global.scan.limit", "3")
    shrunk_at = time.monotonic()
    seen: dict[str, Any] = {}
    while time.monotonic() - shrunk_at < 1.0:
        seen = pool_stats(server)
        if seen["active"] <= 3:
            break
        time.sleep(0.02)
    assert seen["poolSize"] == 3
    assert seen["migrations"][0]["granted"] == 3
    assert seen["active"] <= 3, f"still {seen['active']} at work 1 s after the shrink"
    engines["files"].concurrency.peak = 0
    time.sleep(0.5)
    assert engines["files"].concurrency.peak <= 3
    assert server.services.coordinator.pool.peak_active == 6  # the peak ever, under the old limit
    server.client.post("/migrations/big/stop")


def test_stats_fields_during_a_run(server: LiveServer) -> None:
    """scannerPoolStats has every SPEC field; a running migration appears with its grant."""
    set_property(server, "migration.priority.pool.allocations", "10%,20%,30%")
    body = {
        "migrationId": "s",
        "kind": "disk",
        "source": "/s",
        "target": "/t",
        "priority": "HIGH",
        "options": {"units": 5000, "unitSeconds": 0.02},
    }
    server.client.post("/migrations", json=body)
    server.wait_for("s", {"RUNNING"})
    time.sleep(0.3)
    stats = pool_stats(server)
    assert set(stats) == {
        "poolSize",
        "poolMax",
        "allocated",
        "active",
        "idle",
        "runningMigrations",
        "waitingMigrations",
        "scheduledMigrations",
        "maxRunningMigrations",
        "maxThreadsPerMigration",
        "priorityAllocations",
        "migrations",
        "totals",
        "nodes",
        "sampledAt",
    }
    (entry,) = stats["migrations"]
    assert entry["migrationId"] == "s"
    assert (entry["kind"], entry["priority"], entry["percentage"], entry["percentageSource"]) == (
        "disk",
        "HIGH",
        "30%",
        "priority",
    )
    assert (entry["requested"], entry["granted"]) == (30, 30)
    assert stats["allocated"] == 30
    assert stats["runningMigrations"] == 1
    assert stats["idle"] == stats["allocated"] - stats["active"]
    assert set(stats["totals"]) == {
        "unitsCompleted",
        "unitsFailed",
        "retries",
        "bytesCopied",
        "filesScanned",
        "directoriesScanned",
    }
    server.client.post("/migrations/s/stop")


def test_granted_zero_waits_running_until_threads_free(server: LiveServer) -> None:
    """A migration granted 0 is RUNNING but waiting; it gets threads when the first one ends."""
    set_property(server, "global.scan.limit", "2")
    for name, units in (("first", 200), ("second", 3)):  # first: 2 s of work on its 2 threads
        body = {
            "migrationId": name,
            "kind": "files",
            "source": "/s",
            "target": "/t",
            "properties": {"migration.parallel.scan.percentage": "100"},
            "options": {"units": units, "unitSeconds": 0.02},
        }
        server.client.post("/migrations", json=body)
        server.wait_for(name, {"RUNNING", "COMPLETED"})
    # The stats come from the snapshot the coordinator refreshes every tick: within one, they
    # show the second migration admitted and waiting.
    wait_until(lambda: pool_stats(server)["waitingMigrations"] == 1, 5, "the second one waiting, in the stats")
    assert server.client.get("/migrations/first").json()["state"] == "RUNNING"
    assert server.client.get("/migrations/second").json()["pool"]["granted"] == 0
    server.wait_for("second", {"COMPLETED"}, timeout=20)


def test_summaries(server: LiveServer) -> None:
    """migrationSummary groups by state with bytes; throughputSummary covers 10, 60 and 300 s."""
    server.client.post(
        "/migrations",
        json={
            "migrationId": "done",
            "kind": "files",
            "source": "/s",
            "target": "/t",
            "options": {"units": 4, "unitSeconds": 0, "unitBytes": 250},
        },
    )
    server.wait_for("done", {"COMPLETED"})
    summary = server.client.get("/stats/migrationSummary").json()
    completed = summary["states"]["COMPLETED"]
    assert (completed["count"], completed["bytesCopied"], completed["migrations"]) == (1, 1000, ["done"])
    assert completed["percentComplete"] == 100.0
    time.sleep(0.6)
    windows = server.client.get("/stats/throughputSummary").json()["windows"]
    assert [w["seconds"] for w in windows] == [10, 60, 300]
    assert windows[0]["bytes"] == 1000
