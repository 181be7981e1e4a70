"""Actions answer with the state after them, and stop-all admits nothing on its way."""

from __future__ import annotations

from typing import Any

from tests.fakes.engine import FakeEngine
from tests.servers import LiveServer
from tests.waiting import wait_until


def create(server: LiveServer, job_id: str, **options: Any) -> dict[str, Any]:
    body = {"migrationId": job_id, "kind": "files", "source": "/s", "target": "/t", "options": options}
    response = server.client.post("/migrations", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_stop_all_stops_the_waiting_before_the_running(server: LiveServer, engines: dict[str, FakeEngine]) -> None:
    """Race: stopping the RUNNING migration frees its place under max.running.migrations, and the
    scheduler admits the SCHEDULED one (creating its target) before stop-all reaches it. Stop-all
    stops both in one step: the waiting one never runs."""
    server.client.put("/configuration/property", params={"key": "migration.max.running.migrations", "value": "1"})
    create(server, "running", units=10_000, unitSeconds=0.02)
    wait_until(lambda: server.client.get("/migrations/running").json()["pool"]["active"] > 0, 10, "running")
    assert create(server, "waiting", units=5)["state"] == "SCHEDULED"
    stopped = server.client.post("/migrations/stop").json()
    assert sorted((m["migrationId"], m["state"]) for m in stopped) == [("running", "STOPPED"), ("waiting", "STOPPED")]
    wait_until(lambda: server.client.get("/migrations/running").json()["node"] is None, 10, "run let go")
    waiting = server.client.get("/migrations/waiting").json()
    assert waiting["startTime"] is None, "the waiting migration was admitted"
    assert all(job_id != "waiting" for job_id, _ in engines["files"].executed)


def test_a_stop_answers_with_no_grant(server: LiveServer) -> None:
    """The answer to a stop is the migration as it now is: STOPPED, and granted nothing."""
    create(server, "s", units=10_000, unitSeconds=0.02)
    wait_until(lambda: server.client.get("/migrations/s").json()["pool"]["granted"] > 0, 10, "granted")
    answer = server.client.post("/migrations/s/stop").json()
    assert answer["state"] == "STOPPED"
    assert answer["pool"]["granted"] == 0
    later = wait_until(lambda: (m := server.client.get("/migrations/s").json())["node"] is None and m, 10)
    assert (later["pool"]["granted"], later["pool"]["active"]) == (0, 0)


def test_verify_answers_with_the_verification_state(server: LiveServer) -> None:
    """POST verify answers with the verification RUNNING, not only the copy's COMPLETED."""
    create(server, "v", units=3, unitSeconds=0.0)
    wait_until(lambda: server.client.get("/migrations/v").json()["state"] == "COMPLETED", 10, "completed")
    answer = server.client.post("/migrations/v/verify").json()
    assert (answer["state"], answer["verification"]) == ("COMPLETED", "RUNNING")
    wait_until(lambda: server.client.get("/migrations/v").json()["verification"] == "COMPLETED", 10, "verified")
