"""``/metrics`` counts bytes and files copied per kind, exactly once, including across a resume."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.engines.base import JobContext, Progress
from tests.api.conftest import settings_for
from tests.fakes.engine import FakeEngine, FakeRun
from tests.servers import LiveServer, live_server


class FilesRun(FakeRun):
    """The fake run, reporting each unit as one file copied, as the files engine would."""

    def progress(self) -> Progress:
        progress = super().progress()
        progress.fields["filesCopied"] = progress.fields["unitsDone"]
        return progress


class FilesFake(FakeEngine):
    def open(self, ctx: JobContext) -> FakeRun:
        run = FilesRun(self, ctx)
        self.runs[ctx.spec.job_id] = run
        return run


@pytest.fixture
def server(sqlite_template: Path, tmp_path: Path) -> Iterator[LiveServer]:
    database = tmp_path / "ferry.db"
    shutil.copy(sqlite_template, database)
    engines = {"files": FilesFake("files"), "disk": FakeEngine("disk")}
    with live_server(settings_for(f"sqlite:///{database}", tmp_path), engines) as live:
        yield live


def samples(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = server.client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def copied(server: LiveServer, what: str, kind: str) -> float:
    return samples(server)[(f"ferry_copied_{what}_total", (("kind", kind),))]


def test_copied_counters_per_kind(server: LiveServer) -> None:
    """Both kinds are exported at 0 from the start; a files and a disk migration each add their own bytes,
    and files only where the engine reports them."""
    assert copied(server, "bytes", "files") == copied(server, "bytes", "disk") == 0
    for job_id, kind, unit_bytes in (("f", "files", 1000), ("d", "disk", 4096)):
        options = {"units": 12, "unitSeconds": 0.01, "unitBytes": unit_bytes}
        body = {"migrationId": job_id, "kind": kind, "source": "/s", "target": "/t", "options": options}
        assert server.client.post("/migrations", json=body).status_code == 201
        server.wait_for(job_id, {"COMPLETED"})
    assert copied(server, "bytes", "files") == 12 * 1000
    assert copied(server, "files", "files") == 12
    assert copied(server, "bytes", "disk") == 12 * 4096
    assert copied(server, "files", "disk") == 0


def test_a_resumed_run_does_not_count_its_earlier_work_again(server: LiveServer) -> None:
    """Stop midway and resume: the resumed run starts from its checkpoint, and the counter ends at exactly
    the migration's size, not more."""
    options = {"units": 60, "unitSeconds": 0.02, "unitBytes": 1000}
    body = {"migrationId": "r", "kind": "files", "source": "/s", "target": "/t", "options": options}
    assert server.client.post("/migrations", json=body).status_code == 201
    server.wait_for("r", {"RUNNING"})
    deadline = time.monotonic() + 10
    while copied(server, "bytes", "files") < 10_000:
        assert time.monotonic() < deadline, "no progress counted in 10 s"
        time.sleep(0.02)
    assert server.client.post("/migrations/r/stop").status_code == 200
    server.wait_for("r", {"STOPPED"})
    assert 10_000 <= copied(server, "bytes", "files") < 60_000
    resumed = server.client.post("/migrations/r/resume")
    assert resumed.status_code == 200, resumed.text
    server.wait_for("r", {"COMPLETED"})
    assert copied(server, "bytes", "files") == 60_000
    assert copied(server, "files", "files") == 60
