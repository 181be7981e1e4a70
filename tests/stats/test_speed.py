"""``bytesPerSecond`` counts bytes transferred only (SPEC 5), so it reads the bandwidth limit.

Each test copies mostly work that moves no data (holes of a sparse disk, files already equal on
the target) under ``global.bandwidth.limit``: counted as speed, that work alone would read many
times the limit.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.disk.conftest import Servers, wait_for
from tests.files.conftest import write
from tests.servers import LiveServer

MiB = 1024 * 1024
GiB = 1024 * MiB


def follow(api: LiveServer, job_id: str) -> list[dict[str, Any]]:
    """The migration's progress at every poll while it is RUNNING, until it ends."""
    seen: list[dict[str, Any]] = []

    def ended() -> bool:
        body = api.client.get(f"/migrations/{job_id}").json()
        if body["state"] == "RUNNING":
            seen.append(body["progress"])
        return body["state"] in {"COMPLETED", "FAILED", "STOPPED"}

    wait_for(ended, timeout=90)
    assert api.client.get(f"/migrations/{job_id}").json()["state"] == "COMPLETED"
    return seen


def limit_bandwidth(api: LiveServer, megabytes: int) -> None:
    value = f"{megabytes}MB"
    response = api.client.put("/configuration/property", params={"key": "global.bandwidth.limit", "value": value})
    assert response.status_code == 200, response.text


def assert_reads_the_limit(seen: list[dict[str, Any]], megabytes: int) -> None:
    speeds = [p["bytesPerSecond"] for p in seen if "bytesPerSecond" in p]
    assert max(speeds) <= 1.35 * megabytes * 1e6, speeds
    assert max(speeds) >= 0.5 * megabytes * 1e6, speeds


@pytest.mark.nbd
def test_disk_speed_counts_data_not_zeroes(api: LiveServer, servers: Servers, tmp_path: Path) -> None:
    """1 MiB of data every 32 MiB of a 1 GiB disk, at 8 MB/s, onto an export that cannot say it
    reads zero (so every hole is written as zeroes, all through the copy): the speed stays near
    8 MB/s (never above 1.35x), though the work done grows about 30 times faster; the ETA is known."""
    limit_bandwidth(api, 8)
    image = tmp_path / "source.raw"
    with image.open("wb") as disk:
        disk.truncate(GiB)
        for offset in range(0, GiB, 32 * MiB):
            disk.seek(offset)
            disk.write(os.urandom(MiB))
    source = servers.nbdkit("file", str(image))
    target = servers.nbdkit("memory", "size=1G", filters=("noextents",))
    body = {"migrationId": "vm", "kind": "disk", "source": source, "target": target}
    assert api.client.post("/migrations", json=body).status_code == 201
    seen = follow(api, "vm")
    assert_reads_the_limit(seen, 8)
    late = [p for p in seen if p.get("bytesCopied", 0) >= 8 * MiB]
    assert late, "the copy ended before 8 MiB were copied"
    assert late[0]["bytesZeroed"] >= 4 * late[0]["bytesCopied"]  # as speed, > 4x the limit
    assert late[0]["etaSeconds"] is not None


def test_files_speed_counts_copies_not_equal_files(api: LiveServer, tmp_path: Path) -> None:
    """64 MiB already equal on the target and 16 MiB to copy at 4 MB/s: the speed stays near
    4 MB/s, and the percentage counts the equal files as done."""
    limit_bandwidth(api, 4)
    data = tmp_path / "data"
    for n in range(16):
        write(data / "src" / "same" / f"big{n}.bin", os.urandom(4 * MiB), mtime=1_600_000_000 + n)
        write(data / "src" / "new" / f"small{n}.bin", os.urandom(MiB), mtime=1_600_000_000 + n)
    shutil.copytree(data / "src" / "same", data / "dst" / "same")  # copy2 keeps the mtimes
    body = {"migrationId": "tree", "kind": "files", "source": str(data / "src"), "target": str(data / "dst")}
    assert api.client.post("/migrations", json=body).status_code == 201
    seen = follow(api, "tree")
    assert_reads_the_limit(seen, 4)
    final = api.client.get("/migrations/tree").json()["progress"]
    assert final["bytesCopied"] == 16 * MiB
    assert final["filesSkipped"] == 16
    halfway = [p for p in seen if p["bytesTotal"] and 0 < p["bytesCopied"] < 16 * MiB]
    assert any(p["percentComplete"] >= 80 for p in halfway), halfway
