"""``/migrations``: create, read, patch, act, delete — over real HTTP with the fake engine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer


def create(server: LiveServer, job_id: str, **fields: Any) -> dict[str, Any]:
    body = {"migrationId": job_id, "kind": "files", "source": "/src", "target": "/dst", **fields}
    response = server.client.post("/migrations", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_post_runs_to_completion(server: LiveServer, engines: dict[str, FakeEngine]) -> None:
    """POST starts at once (autoStart defaults true) and the job reaches COMPLETED with progress."""
    created = create(server, "m1", options={"units": 10, "unitSeconds": 0.01})
    assert created["state"] in ("SCHEDULED", "RUNNING", "COMPLETED")
    assert created["priority"] == "NORMAL"
    done = server.wait_for("m1", {"COMPLETED"})
    assert done["progress"]["unitsDone"] == 10
    assert done["progress"]["percentComplete"] == 100.0
    assert done["startTime"]
    assert done["completeTime"]
    assert sorted(n for job, n in engines["files"].executed if job == "m1") == list(range(10))


def test_generated_id_and_case_insensitive_priority(server: LiveServer) -> None:
    """An absent id is generated; priority is accepted in any case and shown in capitals."""
    response = server.client.post(
        "/migrations", json={"kind": "disk", "source": "/a", "target": "/b", "priority": "high", "autoStart": False}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["migrationId"].startswith("disk-")
    assert (body["priority"], body["state"]) == ("HIGH", "NONSCHEDULED")
    assert body["pool"] == {
        "percentage": "8%",
        "percentageSource": "priority",
        "requested": 8,
        "granted": 0,
        "active": 0,
    }


def test_put_with_query_parameters_is_idempotent(server: LiveServer) -> None:
    """PUT by query parameters creates (201, not started), again the same (200), differently (409)."""
    url = "/migrations/q1?kind=files&source=/s&target=/t&priority=LOW&units=3&unitSeconds=0"
    first = server.client.put(url)
    assert first.status_code == 201, first.text
    assert first.json()["state"] == "NONSCHEDULED"
    assert first.json()["options"]["units"] == 3
    assert server.client.put(url).status_code == 200
    clash = server.client.put("/migrations/q1?kind=files&source=/s&target=/other")
    assert clash.status_code == 409
    assert "q1" in clash.json()["detail"]
    assert server.client.get("/migrations/q1").json()["target"] == "/t"


def test_put_with_json_body_and_auto_start(server: LiveServer) -> None:
    """PUT accepts the same JSON as POST; autoStart=true starts it."""
    body = {"kind": "files", "source": "/s", "target": "/t", "options": {"units": 2, "unitSeconds": 0}}
    response = server.client.put("/migrations/j1?autoStart=true", json=body)
    assert response.status_code == 201
    server.wait_for("j1", {"COMPLETED"})


def test_list_with_state_filter_and_unknown_id(server: LiveServer) -> None:
    """GET /migrations filters by state; an unknown id is a 404 problem."""
    create(server, "a", autoStart=False)
    create(server, "b", options={"units": 1, "unitSeconds": 0})
    server.wait_for("b", {"COMPLETED"})
    assert [m["migrationId"] for m in server.client.get("/migrations?state=NONSCHEDULED").json()] == ["a"]
    assert [m["migrationId"] for m in server.client.get("/migrations").json()] == ["a", "b"]
    missing = server.client.get("/migrations/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_patch_percentage_override_as_in_the_seed(server: LiveServer) -> None:
    """The seed's PATCH sets migration.parallel.scan.percentage=13%; an empty value removes it."""
    create(server, "my-migration-id", autoStart=False)
    response = server.client.patch(
        "/migrations/my-migration-id?migration.parallel.scan.percentage=13%25",
        headers={"accept": "*/*", "Content-Type": "application/json"},
        content="{\n}",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["properties"] == {"migration.parallel.scan.percentage": "13%"}
    assert body["pool"]["percentage"] == "13%"
    assert body["pool"]["percentageSource"] == "override"
    assert body["pool"]["requested"] == 13
    cleared = server.client.patch("/migrations/my-migration-id?migration.parallel.scan.percentage=").json()
    assert cleared["properties"] == {}
    assert cleared["pool"]["percentageSource"] == "priority"


def test_patch_json_merge_patch(server: LiveServer) -> None:
    """A merge-patch body changes priority, properties and (while not running) options."""
    create(server, "p", autoStart=False)
    patch = {"priority": "high", "properties": {"migration.parallel.scan.percentage": "25"}, "options": {"units": 5}}
    response = server.client.patch(
        "/migrations/p", json=patch, headers={"content-type": "application/merge-patch+json"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["priority"], body["options"]["units"], body["pool"]["percentage"]) == ("HIGH", 5, "25%")
    removed = server.client.patch("/migrations/p", json={"properties": {"migration.parallel.scan.percentage": None}})
    assert removed.json()["properties"] == {}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"priority": "URGENT"}, "priority"),
        ({"properties": {"migration.parallel.scan.percentage": "0"}}, "migration.parallel.scan.percentage"),
        ({"properties": {"migration.parallel.scan.percentage": "101%"}}, "migration.parallel.scan.percentage"),
        ({"properties": {"no.such": "1"}}, "properties.no.such"),
        ({"options": {"bogus": 1}}, "options.bogus"),
        ({"state": "COMPLETED"}, "state"),
    ],
)
def test_bad_patch_names_the_field_and_changes_nothing(server: LiveServer, patch: dict[str, Any], field: str) -> None:
    """A refused PATCH is a 422 naming the field, and the migration is as it was."""
    before = create(server, "x", autoStart=False)
    response = server.client.patch("/migrations/x", json=patch)
    assert response.status_code == 422
    assert field in response.json()["detail"]
    after = server.client.get("/migrations/x").json()
    assert {k: after[k] for k in ("priority", "properties", "options")} == {
        k: before[k] for k in ("priority", "properties", "options")
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "tape", "source": "/a", "target": "/b"}, "kind"),
        ({"kind": "files", "source": "relative", "target": "/b"}, "source"),
        ({"kind": "files", "target": "/b"}, "source"),
        ({"migrationId": "bad id!", "kind": "files", "source": "/a", "target": "/b"}, "migrationId"),
        ({"migrationId": "x" * 129, "kind": "files", "source": "/a", "target": "/b"}, "migrationId"),
        ({"kind": "files", "source": "/a", "target": "/b", "priority": "urgent"}, "priority"),
        ({"kind": "files", "source": "/a", "target": "/b", "extra": 1}, "extra"),
    ],
)
def test_bad_definitions_are_refused(server: LiveServer, body: dict[str, Any], field: str) -> None:
    """A bad definition is a 422 naming the field; nothing is created."""
    response = server.client.post("/migrations", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert server.client.get("/migrations").json() == []


def test_stop_and_resume_continue_without_redoing_work(server: LiveServer, engines: dict[str, FakeEngine]) -> None:
    """stop -> STOPPED (units in flight finish); resume continues: no unit is executed twice."""
    create(server, "long", options={"units": 60, "unitSeconds": 0.02})
    server.wait_for("long", {"RUNNING"})
    deadline = time.monotonic() + 10
    while not engines["files"].executed and time.monotonic() < deadline:
        time.sleep(0.01)
    stopped = server.client.post("/migrations/long/stop")
    assert stopped.status_code == 200
    assert stopped.json()["state"] == "STOPPED"
    assert server.client.post("/migrations/long/stop").status_code == 409
    resumed = server.client.post("/migrations/long/resume")
    assert resumed.status_code == 200
    assert resumed.json()["state"] in ("SCHEDULED", "RUNNING")
    server.wait_for("long", {"COMPLETED"})
    numbers = [n for job, n in engines["files"].executed if job == "long"]
    assert sorted(numbers) == list(range(60))


def test_start_on_completed_runs_a_new_pass_and_reset_forgets(
    server: LiveServer, engines: dict[str, FakeEngine]
) -> None:
    """start after COMPLETED runs again (incremental pass); reset forgets progress."""
    create(server, "again", options={"units": 3, "unitSeconds": 0})
    server.wait_for("again", {"COMPLETED"})
    assert server.client.post("/migrations/again/start").status_code == 200
    server.wait_for("again", {"COMPLETED"})
    assert len([n for job, n in engines["files"].executed if job == "again"]) == 6
    assert engines["files"].runs["again"].ctx.incremental is True
    reset = server.client.post("/migrations/again/reset").json()
    assert reset["state"] == "NONSCHEDULED"
    assert reset["progress"]["unitsDone"] == 0


def test_actions_refused_by_state_are_409(server: LiveServer) -> None:
    """resume of a NONSCHEDULED job, verify of a new one, start of a running one: 409, unchanged."""
    create(server, "n", autoStart=False)
    for action in ("resume", "stop", "verify"):
        response = server.client.post(f"/migrations/n/{action}")
        assert response.status_code == 409, action
        assert "NONSCHEDULED" in response.json()["detail"]
    create(server, "r", options={"units": 500, "unitSeconds": 0.02})
    server.wait_for("r", {"RUNNING"})
    assert server.client.post("/migrations/r/start").status_code == 409
    assert server.client.post("/migrations/r/reset").status_code == 409
    assert server.client.delete("/migrations/r").status_code == 409
    assert server.client.get("/migrations/r").json()["state"] == "RUNNING"
    server.client.post("/migrations/r/stop")


def test_delete(server: LiveServer) -> None:
    """DELETE answers 204 and the job is gone; it never touches data (the engine is not called)."""
    create(server, "d", autoStart=False)
    assert server.client.delete("/migrations/d").status_code == 204
    assert server.client.get("/migrations/d").status_code == 404


def test_stop_all(server: LiveServer) -> None:
    """POST /migrations/stop stops every SCHEDULED and RUNNING migration."""
    for name in ("s1", "s2"):
        create(server, name, options={"units": 500, "unitSeconds": 0.02})
    create(server, "idle", autoStart=False)
    stopped = server.client.post("/migrations/stop").json()
    assert sorted(m["migrationId"] for m in stopped) == ["s1", "s2"]
    assert server.client.get("/migrations/idle").json()["state"] == "NONSCHEDULED"


def test_failure_is_recorded_and_resume_retries(server: LiveServer) -> None:
    """A failing unit ends the job FAILED with the reason; resume runs what was left."""
    create(server, "f", options={"units": 5, "unitSeconds": 0, "failAt": 3})
    failed = server.wait_for("f", {"FAILED"})
    assert failed["error"] == "unit 3 failed on purpose"
    server.client.patch("/migrations/f", json={"options": {"failAt": -1}})
    server.client.post("/migrations/f/resume")
    assert server.wait_for("f", {"COMPLETED"})["error"] is None


def test_running_limit_admits_by_priority_then_age(server: LiveServer, tmp_path: Path) -> None:
    """With one running slot, SCHEDULED jobs start HIGH first, then oldest; running ones stay."""
    server.client.put("/configuration/property", params={"key": "migration.max.running.migrations", "value": "1"})
    create(server, "first", options={"units": 5000, "unitSeconds": 0.02})
    server.wait_for("first", {"RUNNING"})
    create(server, "old-low", priority="LOW", options={"units": 1, "unitSeconds": 0})
    create(server, "new-high", priority="HIGH", options={"units": 1, "unitSeconds": 0})
    time.sleep(0.5)  # several coordinator ticks: nothing may be admitted while "first" runs
    assert server.client.get("/migrations/new-high").json()["state"] == "SCHEDULED"
    assert server.client.get("/stats/scannerPoolStats").json()["scheduledMigrations"] == 2
    assert server.client.get("/migrations/first").json()["state"] == "RUNNING"
    server.client.post("/migrations/first/stop")
    server.wait_for("old-low", {"COMPLETED"}, timeout=30)
    high = server.client.get("/migrations/new-high").json()
    low = server.client.get("/migrations/old-low").json()
    assert high["startTime"] < low["startTime"]
