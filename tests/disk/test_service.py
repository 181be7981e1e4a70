"""disk migrations through the whole service: HTTP, bad input, and a kill -9 of ferry serve."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.models import CopyJobRow
from app.db.session import Database
from app.engines.disk import DiskEngine
from tests.api.conftest import settings_for
from tests.disk.conftest import Servers, digest, wait_for
from tests.servers import LiveServer, ServerProcess, free_port, live_server

pytestmark = pytest.mark.nbd
FERRY = Path(sys.executable).parent / "ferry"
MiB = 1024 * 1024


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """ferry over HTTP with the real disk engine; allowed root: tmp_path/data."""
    with live_server(settings_for(database_url, tmp_path), {"disk": DiskEngine()}) as server:
        yield server


def test_copy_and_verify_over_http(api: LiveServer, servers: Servers, tmp_path: Path) -> None:
    """POST a disk migration from nbdkit to a new image file: COMPLETED, byte-identical, and the
    verify action reports no discrepancy."""
    source = servers.nbdkit("sparse-random", "size=32M", "percent=30", "seed=11")
    target = tmp_path / "data" / "disk.raw"
    body = {"migrationId": "vm", "kind": "disk", "source": source, "target": str(target)}
    assert api.client.post("/migrations", json=body).status_code == 201
    done = api.wait_for("vm", {"COMPLETED"}, timeout=60)
    assert done["progress"]["bytesTotal"] > 0
    assert done["progress"]["percentComplete"] == 100.0
    assert digest(str(target), 32 * MiB) == digest(source, 32 * MiB)
    assert api.client.post("/migrations/vm/verify").status_code == 200
    deadline = time.monotonic() + 60
    report = api.client.get("/migrations/vm/verification").json()
    while report["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
        report = api.client.get("/migrations/vm/verification").json()
    assert report["status"] == "COMPLETED"
    assert report["counts"]["discrepancies"] == 0


@pytest.mark.parametrize(
    ("source", "target", "field"),
    [
        ("nbd+unix:///?socket=/nonexistent.sock", "{data}/x.raw", "source"),
        ("http://example/disk", "{data}/x.raw", "source"),
        ("nbd+unix:///?socket=/a\x00b", "{data}/x.raw", "source"),
        ("nbd://[::1/x", "{data}/x.raw", "source"),
        ("{nbd}", "/etc/ferry-test.raw", "target"),
        ("{nbd}", "relative.raw", "target"),
    ],
)
def test_bad_disk_definitions_are_refused(
    api: LiveServer, servers: Servers, tmp_path: Path, source: str, target: str, field: str
) -> None:
    """An unreachable or malformed source and a target outside the allowed roots are 422s naming
    the field; nothing is created and no file is written."""
    nbd = servers.nbdkit("memory", "size=1M")
    body = {"kind": "disk", "source": source.format(nbd=nbd), "target": target.format(data=tmp_path / "data")}
    response = api.client.post("/migrations", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(field)
    assert api.client.get("/migrations").json() == []
    assert not Path("/etc/ferry-test.raw").exists()


def bytes_read(log: Path, after_line: int = 0) -> int:
    """Bytes the source served, from nbdkit's log filter, counting lines after ``after_line``."""
    lines = log.read_text().splitlines()[after_line:]
    return sum(
        int(m.group(1), 16) for line in lines if " Read " in line and (m := re.search(r"count=0x([0-9a-f]+)", line))
    )


@pytest.mark.slow
def test_kill_9_of_ferry_serve_resumes_with_only_the_rest(database_url: str, servers: Servers, tmp_path: Path) -> None:
    """kill -9 a real ferry serve mid-copy, start it again: the disk completes byte-identical, and
    the second process reads from the source well under the whole disk."""
    log = tmp_path / "reads.log"
    # 32 MiB of data at 2 MB/s, on one connection with 8 MiB in flight: the copy is well short of
    # done when the kill comes (with every lane's reads in flight at once, the whole disk's data
    # would be requested at the start and finish together).
    source = servers.nbdkit(
        "sparse-random", "size=64M", "percent=50", "seed=5", "rate=16M", f"logfile={log}", filters=("log", "rate")
    )
    data = tmp_path / "data"
    data.mkdir()
    target = data / "disk.raw"
    env = {
        **os.environ,
        "FERRY_DATABASE_URL": database_url,
        "FERRY_DATA_DIR": str(data),
        "FERRY_PORT": str(free_port()),
        "FERRY_NODE_ID": "disk-restart",
    }
    options = {"parallel": False, "chunkSize": "1MiB"}
    body = {"migrationId": "vm", "kind": "disk", "source": source, "target": str(target), "options": options}
    server = ServerProcess([str(FERRY), "serve"], env, tmp_path / "serve.log")
    db = Database(database_url)
    try:
        assert server.client.post("/migrations", json=body).status_code == 201
        wait_for(lambda: checkpointed(db) >= 4 * MiB, timeout=60)
        at_kill = server.migration("vm")
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
    finally:
        server.close()
        db.dispose()
    total = bytes_read(log)
    # nbdkit 1.32 may abort, a moment later, on the client that vanished with replies due: stop
    # it either way and start it again, as an operator would.
    servers.halt(source)
    servers.revive()
    lines_before = len(log.read_text().splitlines())  # a revived nbdkit starts its log afresh
    server = ServerProcess([str(FERRY), "serve"], env, tmp_path / "serve.log")
    try:
        done = server.wait_for("vm", lambda m: m["state"] in ("COMPLETED", "FAILED"), timeout=120)
        assert done["state"] == "COMPLETED", done["error"]
    finally:
        server.close()
    second = bytes_read(log, lines_before)
    copied = done["progress"]["bytesCopied"]
    same_content = servers.nbdkit("sparse-random", "size=64M", "percent=50", "seed=5")  # without the rate limit
    assert digest(str(target), 64 * MiB) == digest(same_content, 64 * MiB)
    assert at_kill["state"] == "RUNNING"
    assert at_kill["progress"]["bytesCopied"] < copied
    assert second < copied, f"read all {copied} bytes again: the checkpoint was not used"
    assert total + second >= copied


def checkpointed(db: Database) -> int:
    """Bytes copied as of the migration's saved checkpoint (0 before the first)."""
    with db.session() as session:
        row = session.get(CopyJobRow, "vm")
        return int(((row.checkpoint if row else None) or {}).get("counters", {}).get("bytesCopied", 0))


def test_odd_targets_are_422_not_500(api: LiveServer, servers: Servers, tmp_path: Path) -> None:
    """A NUL byte or a directory as a disk target is a 422 naming the target."""
    source = servers.nbdkit("memory", "size=1M")
    for odd in (f"{tmp_path}/data/a\x00b", str(tmp_path / "data")):
        response = api.client.post("/migrations", json={"kind": "disk", "source": source, "target": odd})
        assert response.status_code == 422, (odd, response.text)
        assert response.json()["detail"].startswith("target")
