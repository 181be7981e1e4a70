"""``/stats/migrationSummary``: a group's percentage is of work done, not of bytes copied."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from app.services.stats import _done_bytes
from tests.disk.conftest import Servers
from tests.files.conftest import write
from tests.servers import LiveServer

MiB = 1024 * 1024


def completed_group(api: LiveServer) -> dict[str, Any]:
    group: dict[str, Any] = api.client.get("/stats/migrationSummary").json()["states"]["COMPLETED"]
    return group


@pytest.mark.nbd
def test_completed_disk_and_incremental_files_pass_read_100_percent(
    api: LiveServer, servers: Servers, tmp_path: Path
) -> None:
    """A sparse disk (its holes skipped) and an incremental files pass (one small file of 4 MiB
    copied again) both COMPLETED: the group reads 100%, though far less was copied than its total."""
    data = tmp_path / "data"
    for n in range(4):
        write(data / "src" / f"f{n}.bin", os.urandom(MiB), mtime=1_600_000_000_000_000_000)
    tree = {"migrationId": "tree", "kind": "files", "source": str(data / "src"), "target": str(data / "dst")}
    assert api.client.post("/migrations", json=tree).status_code == 201
    api.wait_for("tree", {"COMPLETED"})
    write(data / "src" / "f0.bin", b"changed", mtime=int(time.time() * 1e9))
    assert api.client.post("/migrations/tree/start").status_code == 200
    passed = api.wait_for("tree", {"COMPLETED"})
    assert passed["progress"]["bytesCopied"] == len(b"changed")
    source = servers.nbdkit("sparse-random", "size=64M", "percent=10", "seed=7")
    disk = {"migrationId": "vm", "kind": "disk", "source": source, "target": str(data / "vm.raw")}
    assert api.client.post("/migrations", json=disk).status_code == 201
    copied = api.wait_for("vm", {"COMPLETED"})["progress"]
    assert copied["bytesSkipped"] > copied["bytesCopied"]

    group = completed_group(api)
    assert group["count"] == 2
    assert group["bytesTotal"] == 3 * MiB + len(b"changed") + 64 * MiB
    assert group["bytesCopied"] < group["bytesTotal"] // 2
    assert group["percentComplete"] == 100.0


def test_a_group_under_way_sums_each_migrations_work_done() -> None:
    """A RUNNING disk 90% done with 10% copied and a STOPPED one at 60% with 5% copied: their
    group is at 75%, from the migrations' own percentages of done work, not 7.5% copied."""
    disk = {"bytesTotal": 1000, "bytesCopied": 100, "percentComplete": 90.0}
    other = {"bytesTotal": 1000, "bytesCopied": 50, "percentComplete": 60.0}
    done = _done_bytes("RUNNING", disk) + _done_bytes("STOPPED", other)
    assert done == 1500
    assert _done_bytes("COMPLETED", {"bytesTotal": 1000, "bytesCopied": 1}) == 1000
    assert _done_bytes("RUNNING", {"bytesTotal": 1000, "bytesCopied": 7, "percentComplete": None}) == 7
