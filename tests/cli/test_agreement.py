"""The numbers agree wherever an operator looks: the migration, the CLI, the stats, Prometheus."""

from __future__ import annotations

import json
import re

from tests.cli.conftest import Ferry
from tests.servers import LiveServer


def test_cli_stats_and_metrics_agree_on_what_was_copied(server: LiveServer, ferry: Ferry) -> None:
    """After a migration copies 12 units of 2500 bytes, `ferry migrations show`, `ferry stats`,
    /stats/scannerPoolStats and /metrics (which Grafana reads) all say 30 000 bytes."""
    body = {
        "migrationId": "m",
        "kind": "files",
        "source": "/s",
        "target": "/t",
        "options": {"units": 12, "unitSeconds": 0.0, "unitBytes": 2500},
    }
    assert server.client.post("/migrations", json=body).status_code == 201
    server.wait_for("m", {"COMPLETED"})
    shown = json.loads(ferry("migrations", "show", "m", "--json").stdout)
    assert shown["progress"]["bytesCopied"] == 30_000
    assert json.loads(ferry("stats", "--json").stdout)["totals"]["bytesCopied"] == 30_000
    assert server.client.get("/stats/scannerPoolStats").json()["totals"]["bytesCopied"] == 30_000
    metrics = server.client.get("/metrics").text
    copied = re.search(r'^ferry_copied_bytes_total\{kind="files"\} (\S+)$', metrics, re.MULTILINE)
    assert copied is not None
    assert float(copied.group(1)) == 30_000
    units = re.search(r'^ferry_units_total\{kind="files",outcome="ok",unit="sleep"\} (\S+)$', metrics, re.MULTILINE)
    assert units is not None
    assert float(units.group(1)) == 12
