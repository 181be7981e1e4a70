"""The Grafana dashboard and Prometheus files ask only for series a live ferry exports."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import settings_for
from tests.deploy.conftest import DEFAULT_PORT, DEPLOY
from tests.fakes.engine import FakeEngine
from tests.servers import live_server

METRIC = re.compile(r"\bferry_[a-z0-9_]+")


def dashboard_exprs() -> list[str]:
    board = json.loads((DEPLOY / "grafana" / "ferry.json").read_text())
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    exprs += [variable["definition"] for variable in board["templating"]["list"] if "definition" in variable]
    return exprs


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_every_queried_metric_is_exported(sqlite_template: Path, tmp_path: Path) -> None:
    """After a migration and some requests, /metrics has a series for every ferry_* name the Grafana
    dashboard and the alerts query."""
    database = tmp_path / "ferry.db"
    shutil.copy(sqlite_template, database)
    engines = {"files": FakeEngine("files"), "disk": FakeEngine("disk")}
    with live_server(settings_for(f"sqlite:///{database}", tmp_path), engines) as server:
        options = {"units": 40, "unitSeconds": 0.02}
        body = {"migrationId": "m", "kind": "files", "source": "/s", "target": "/t", "options": options}
        assert server.client.post("/migrations", json=body).status_code == 201
        deadline = time.monotonic() + 10
        running = ""
        while 'migration="m"' not in running:  # per-migration series exist while it runs
            assert time.monotonic() < deadline, "migration m never showed in /metrics"
            running = server.client.get("/metrics").text
        server.wait_for("m", {"COMPLETED"})
        done = server.client.get("/metrics").text
    exported = {
        sample.name
        for text in (running, done)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    wanted = {name for expr in dashboard_exprs() + alert_exprs() for name in METRIC.findall(expr)}
    assert len(wanted) >= 12
    assert wanted <= exported, sorted(wanted - exported)


def test_dashboard_is_importable() -> None:
    """Unique panel ids, a Prometheus datasource variable, and every panel on that datasource."""
    board: dict[str, Any] = json.loads((DEPLOY / "grafana" / "ferry.json").read_text())
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    assert board["uid"]
    assert board["templating"]["list"][0] == {**board["templating"]["list"][0], "type": "datasource"}
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


def test_scrape_config_uses_a_bearer_token_on_metrics(routes: frozenset[str]) -> None:
    """Prometheus scrapes /metrics (a real route) on ferry's port, with a bearer token from a file."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] in routes
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"]
    (targets,) = job["static_configs"]
    assert all(target.endswith(f":{DEFAULT_PORT}") for target in targets["targets"])
    assert config["rule_files"] == ["alerts.yml"]
