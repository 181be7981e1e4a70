"""``ferry config ...`` and ``ferry stats``: the properties and the pool, as operators read them."""

from __future__ import annotations

import json

from tests.cli.conftest import Ferry, row_of
from tests.servers import LiveServer


def test_config_set_get_list_reset(ferry: Ferry) -> None:
    """set normalises and shows the default beside a changed value; reset returns to it; list shows all."""
    assert ferry("config", "get", "global.scan.limit").stdout == "global.scan.limit = 100\n"
    changed = ferry("config", "set", "migration.priority.pool.allocations", "7,36%,49")
    assert changed.exit_code == 0, changed.output
    assert changed.stdout == "migration.priority.pool.allocations = 7%,36%,49%  (default 2%,4%,8%)\n"
    listed = ferry("config", "list")
    assert "global.bandwidth.limit" in listed.stdout
    assert "7%,36%,49%" in listed.stdout
    reset = ferry("config", "reset", "migration.priority.pool.allocations", "--json")
    assert json.loads(reset.stdout)["isDefault"] is True
    assert ferry("config", "get", "no.such.key").exit_code == 3


def test_stats_shows_the_pool_and_running_migrations(ferry: Ferry, server: LiveServer) -> None:
    """stats prints pool size and grants, and a row per running migration with its threads."""
    ferry("config", "set", "global.scan.limit", "20")
    ferry(
        "migrations",
        "create",
        "--id",
        "s1",
        "--kind",
        "disk",
        "--source",
        "/s",
        "--target",
        "/t",
        "--percentage",
        "25",
        "-o",
        "units=400",
        "-o",
        "unitSeconds=0.05",
    )
    server.wait_for("s1", {"RUNNING"})
    result = ferry("stats")
    assert result.exit_code == 0, result.output
    assert "20 threads (max 10000)" in result.stdout
    assert row_of(result.stdout, "s1")[:6] == ["s1", "disk", "NORMAL", "25%*", "5", "5"]
    assert json.loads(ferry("stats", "--json").stdout)["poolSize"] == 20
    ferry("migrations", "stop", "s1")
