"""Problem details an operator can act on: URI types, states in words, hints at the right call."""

from __future__ import annotations

from typing import Any

from app.errors import PROBLEM_BASE
from tests.servers import LiveServer

PCT = "migration.parallel.scan.percentage"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].startswith(PROBLEM_BASE), body
    return body


def define(server: LiveServer, job_id: str) -> dict[str, Any]:
    body = {"migrationId": job_id, "kind": "files", "source": "/s", "target": "/t", "autoStart": False}
    response = server.client.post("/migrations", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_every_problem_type_is_a_uri_under_one_base(server: LiveServer) -> None:
    """404, 405, 409 and 422 from ferry and from the framework all carry a type under PROBLEM_BASE."""
    define(server, "p1")
    answers = [
        (server.client.get("/migrations/none"), 404, "not-found"),
        (server.client.get("/nowhere"), 404, "http-not-found"),
        (server.client.delete("/stats/scannerPoolStats"), 405, "http-method-not-allowed"),
        (server.client.post("/migrations/p1/resume"), 409, "conflict"),
        (server.client.put("/configuration/property?key=global.scan.limit&value=-1"), 422, "invalid-value"),
        (server.client.get("/migrations?state=SOMETIMES"), 422, "invalid-request"),
    ]
    for response, status, name in answers:
        assert problem(response, status)["type"] == PROBLEM_BASE + name


def test_conflict_names_the_allowed_states_in_words(server: LiveServer) -> None:
    """A refused action says where it would be allowed as a person writes it, not as a Python list."""
    define(server, "p2")
    detail = problem(server.client.post("/migrations/p2/resume"), 409)["detail"]
    assert detail == "cannot resume a migration in state NONSCHEDULED; allowed in: FAILED or STOPPED"


def test_a_body_that_is_not_json_is_called_invalid_json(server: LiveServer) -> None:
    """Malformed JSON is reported as such, with where decoding stopped, and creates nothing."""
    response = server.client.post(
        "/migrations", content=b'{"kind": files}', headers={"content-type": "application/json"}
    )
    body = problem(response, 422)
    assert body["title"] == "Invalid JSON"
    assert body["type"] == PROBLEM_BASE + "invalid-json"
    assert body["detail"].startswith("request body: not valid JSON at character 9: ")
    assert server.client.get("/migrations").json() == []


def test_a_body_sent_as_another_media_type_says_to_send_json(server: LiveServer) -> None:
    """JSON sent as text/plain is refused with the media type to use, not "not a valid dictionary"."""
    body = b'{"kind": "files", "source": "/s", "target": "/t"}'
    response = server.client.post("/migrations", content=body, headers={"content-type": "text/plain"})
    assert problem(response, 422)["detail"] == (
        "request body: sent as text/plain; send a JSON object with Content-Type: application/json"
    )
    assert server.client.get("/migrations").json() == []


def test_a_per_migration_key_on_configuration_points_to_patch(server: LiveServer) -> None:
    """PUT /configuration/property with the per-migration percentage says to PATCH the migration instead."""
    response = server.client.put(f"/configuration/property?key={PCT}&value=13%25")
    detail = problem(response, 404)["detail"]
    assert f"PATCH /migrations/{{id}}?{PCT}=13%25" in detail
    assert PCT not in {p["key"] for p in server.client.get("/configuration/properties").json()}


def test_a_plus_decoded_as_a_space_is_shown_with_the_fix(server: LiveServer) -> None:
    """An NBD URI with a bare '+' in a PUT query arrives as 'nbd unix://': the 422 shows it and suggests %2B."""
    response = server.client.put("/migrations/d1?kind=disk&source=nbd+unix:///?socket=/tmp/x.sock&target=/t")
    body = problem(response, 422)
    assert body["detail"] == (
        "source: received 'nbd unix:///?socket=/tmp/x.sock': a '+' in a query string decodes as a space; "
        "send it as %2B (nbd%2Bunix://...)"
    )
    assert server.client.get("/migrations/d1").status_code == 404


def test_a_misspelled_patch_key_is_refused_and_changes_nothing(server: LiveServer) -> None:
    """PATCH with migration.paralel.scan.percentage is a 422 naming the key and the known ones; the
    migration keeps its share. The right spelling then works."""
    define(server, "p3")
    response = server.client.patch("/migrations/p3?migration.paralel.scan.percentage=13%25")
    body = problem(response, 422)
    assert body["detail"].startswith("migration.paralel.scan.percentage: unknown query parameter")
    assert body["detail"].endswith(f"known: priority, {PCT}")
    assert server.client.get("/migrations/p3").json()["pool"]["percentageSource"] == "priority"
    fixed = server.client.patch(f"/migrations/p3?{PCT}=13%25")
    assert fixed.status_code == 200
    assert fixed.json()["pool"]["percentage"] == "13%"


def test_unknown_query_keys_are_refused_on_writes_and_ignored_on_reads(server: LiveServer) -> None:
    """A stray key on an action or a property write is a 422 before anything happens; GETs ignore
    one (browsers and caches add their own); PUT /migrations/{id} takes options as query keys."""
    define(server, "p4")
    stop = server.client.post("/migrations/p4/start?force=true")
    assert "this operation takes none" in problem(stop, 422)["detail"]
    assert server.client.get("/migrations/p4").json()["state"] == "NONSCHEDULED"
    setting = server.client.put("/configuration/property?key=global.scan.limit&value=50&vaule=60")
    assert problem(setting, 422)["field"] == "vaule"
    assert server.client.get("/configuration/property?key=global.scan.limit").json()["isDefault"] is True
    assert server.client.get("/migrations/p4?_=1700000000").status_code == 200
    put = server.client.put("/migrations/q1?kind=files&source=/s&target=/t&units=3")
    assert put.status_code == 201, put.text
    assert put.json()["options"]["units"] == 3
