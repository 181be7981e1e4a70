"""``/configuration``: the SPEC's exact curl commands, persistence, and refusals."""

from __future__ import annotations

import pytest

from tests.servers import LiveServer


def test_seed_curl_commands(server: LiveServer) -> None:
    """The two PUTs of the seed document work as written (URL-encoded percentages included)."""
    response = server.client.put("/configuration/property?key=global.scan.limit&value=50", headers={"accept": "*/*"})
    assert response.status_code == 200
    assert response.json() == {
        "key": "global.scan.limit",
        "value": "50",
        "defaultValue": "100",
        "description": response.json()["description"],
        "isDefault": False,
    }
    response = server.client.put(
        "/configuration/property?key=migration.priority.pool.allocations&value=7%25%2C36%25%2C49%25",
        headers={"accept": "*/*"},
    )
    assert response.status_code == 200
    assert response.json()["value"] == "7%,36%,49%"


def test_change_reaches_the_pool_and_the_stats(server: LiveServer) -> None:
    """A property change is applied to the running pool at once, and shown in the stats."""
    server.client.put("/configuration/property", params={"key": "global.scan.limit", "value": "12"})
    server.client.put(
        "/configuration/property", params={"key": "migration.priority.pool.allocations", "value": "1,2,3"}
    )
    stats = server.client.get("/stats/scannerPoolStats").json()
    assert stats["poolSize"] == 12
    assert stats["priorityAllocations"] == {"LOW": "1%", "NORMAL": "2%", "HIGH": "3%"}
    assert server.services.coordinator.pool.policy.limit == 12


def test_list_get_and_delete_returns_to_default(server: LiveServer) -> None:
    """Every key is listed with its default; DELETE puts one back to its default."""
    listed = {item["key"]: item for item in server.client.get("/configuration/properties").json()}
    assert set(listed) == {
        "global.scan.limit",
        "global.scan.pool.max",
        "migration.priority.pool.allocations",
        "migration.max.scan.threads",
        "migration.max.running.migrations",
        "global.bandwidth.limit",
    }
    assert all(item["isDefault"] for item in listed.values())
    server.client.put("/configuration/property", params={"key": "global.bandwidth.limit", "value": "500mb"})
    got = server.client.get("/configuration/property", params={"key": "global.bandwidth.limit"}).json()
    assert (got["value"], got["isDefault"]) == ("500MB", False)
    assert server.services.coordinator.bandwidth.rate == 500_000_000
    reset = server.client.delete("/configuration/property", params={"key": "global.bandwidth.limit"}).json()
    assert (reset["value"], reset["isDefault"]) == ("0", True)
    assert server.services.coordinator.bandwidth.rate == 0


@pytest.mark.parametrize(
    ("params", "status", "names"),
    [
        ({"key": "no.such.key", "value": "1"}, 404, "key"),
        ({"key": "global.scan.limit", "value": "0"}, 422, "value"),
        ({"key": "global.scan.limit", "value": "20000"}, 422, "global.scan.pool.max"),
        ({"key": "migration.priority.pool.allocations", "value": "2%,4%"}, 422, "three percentages"),
        ({"key": "global.scan.limit"}, 422, "value"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    server: LiveServer, params: dict[str, str], status: int, names: str
) -> None:
    """Unknown key: 404; bad value: 422 naming the field and the accepted form; nothing stored."""
    before = server.client.get("/configuration/properties").json()
    response = server.client.put("/configuration/property", params=params)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= set(problem)
    assert names in problem["detail"]
    assert server.client.get("/configuration/properties").json() == before


def test_values_persist_across_restart(database_url: str, tmp_path: object) -> None:
    """Properties live in the database: a new server process sees what the last one stored."""
    from pathlib import Path  # noqa: PLC0415

    from tests.api.conftest import settings_for  # noqa: PLC0415
    from tests.fakes.engine import FakeEngine  # noqa: PLC0415
    from tests.servers import live_server  # noqa: PLC0415

    settings = settings_for(database_url, Path(str(tmp_path)))
    with live_server(settings, {"files": FakeEngine()}) as first:
        first.client.put("/configuration/property", params={"key": "migration.max.scan.threads", "value": "7"})
    with live_server(settings, {"files": FakeEngine()}) as second:
        got = second.client.get("/configuration/property", params={"key": "migration.max.scan.threads"}).json()
        assert got["value"] == "7"
        assert second.services.coordinator.config.pool.max_per_job == 7
