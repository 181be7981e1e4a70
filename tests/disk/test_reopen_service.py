"""Servers that are down when a run opens, through the whole service: a resume and a kill -9.

While it waits the migration is RUNNING, holds no thread, says in ``error`` what it waits for and
shows its checkpoint's progress; a FAILED one shows that progress too, also after a restart.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from app.db.models import CopyJobRow
from app.db.session import Database
from app.engines.disk import DiskEngine
from tests.api.conftest import settings_for
from tests.disk.conftest import Servers, digest, wait_for
from tests.disk.test_service import bytes_read, checkpointed
from tests.servers import free_port, live_server, server_process

pytestmark = pytest.mark.nbd
FERRY = Path(sys.executable).parent / "ferry"
MiB = 1024 * 1024
#: 64 MiB with 32 MiB of data, read at 4 MB/s (the rate filter counts bits) on one connection:
#: about 8 s of copying, so a stop or a kill comes well before the end.
DISK = ("sparse-random", "size=64M", "percent=50", "seed=5")
SLOW = ("rate=32M",)
OPTIONS = {"parallel": False, "chunkSize": "1MiB", "retryDelay": 0.5}
WAITING = re.compile(r"waiting for the source nbd\+unix:///\S+: connect: .+; .+, giving up at \d\d:\d\d:\d\d UTC")
#: The progress fields a checkpoint carries (speed and ETA are of the moment).
KEPT = ("bytesTotal", "bytesCopied", "bytesZeroed", "bytesSkipped", "extentsDone", "retries", "percentComplete")


def kept(progress: dict[str, Any]) -> dict[str, Any]:
    return {key: progress.get(key) for key in KEPT}


def waiting_for_source(body: dict[str, Any]) -> bool:
    return body["state"] == "RUNNING" and bool(WAITING.fullmatch(body["error"] or ""))


def holds_nothing_between_tries(body: dict[str, Any]) -> bool:
    """Waiting for the source, between two tries, holding no thread (a try is granted one)."""
    if not waiting_for_source(body):
        return False
    share = (body["pool"]["granted"], body["pool"]["active"])
    assert max(share) <= 1, f"a run waiting for its server holds at most the thread of a try: {body}"
    return "next try in" in body["error"] and share == (0, 0)


def test_resume_with_the_source_down_waits_then_fails_showing_the_checkpoint(
    database_url: str, servers: Servers, tmp_path: Path
) -> None:
    """Stop mid-copy, take the source down, resume: RUNNING, no thread, `error` says what it
    waits for, progress is the checkpoint's. After openTimeout it is FAILED with that progress,
    and a restarted service shows it the same, never zeros; a migration that ended short of
    done shows no speed and no ETA."""
    source = servers.nbdkit(*DISK, *SLOW, filters=("rate",))
    target = tmp_path / "data" / "disk.raw"
    settings = settings_for(database_url, tmp_path)
    options = {**OPTIONS, "openTimeout": 3}
    body = {"migrationId": "vm", "kind": "disk", "source": source, "target": str(target), "options": options}
    with live_server(settings, {"disk": DiskEngine()}) as api:
        assert api.client.post("/migrations", json=body).status_code == 201
        wait_for(lambda: api.client.get("/migrations/vm").json()["progress"].get("bytesCopied", 0) >= 4 * MiB)
        assert api.client.post("/migrations/vm/stop").status_code == 200
        wait_for(lambda: api.client.get("/migrations/vm").json()["node"] is None)  # the run has settled
        stopped = api.client.get("/migrations/vm").json()
        assert stopped["state"] == "STOPPED"
        assert 4 * MiB <= stopped["progress"]["bytesCopied"] < 32 * MiB
        assert (stopped["progress"]["bytesPerSecond"], stopped["progress"]["etaSeconds"]) == (0, None)

        servers.halt(source)
        assert api.client.post("/migrations/vm/resume").status_code == 200
        seen: list[dict[str, Any]] = []

        def waiting_now() -> bool:
            seen.append(api.client.get("/migrations/vm").json())
            return holds_nothing_between_tries(seen[-1])

        wait_for(waiting_now)
        assert kept(seen[-1]["progress"]) == kept(stopped["progress"])

        failed = api.wait_for("vm", {"FAILED"}, timeout=30)
        assert re.fullmatch(r"gave up after 3 s waiting for the source nbd\+unix:///\S+: connect: .+", failed["error"])
        assert kept(failed["progress"]) == kept(stopped["progress"])
        assert (failed["progress"]["bytesPerSecond"], failed["progress"]["etaSeconds"]) == (0, None)
    with live_server(settings, {"disk": DiskEngine()}) as api:
        restarted = api.client.get("/migrations/vm").json()
        assert restarted["state"] == "FAILED"
        assert kept(restarted["progress"]) == kept(stopped["progress"])


@pytest.mark.slow
def test_kill_9_then_the_source_down_at_restart(database_url: str, servers: Servers, tmp_path: Path) -> None:
    """kill -9 of ferry serve mid-copy, and the source is down when ferry serve starts again (as
    after a host reboot): the migration stays RUNNING with no thread, saying what it waits for,
    with its checkpoint's progress; once the source is back it copies the rest, byte-identical."""
    log = tmp_path / "reads.log"
    source = servers.nbdkit(*DISK, *SLOW, f"logfile={log}", filters=("log", "rate"))
    data = tmp_path / "data"
    data.mkdir()
    target = data / "disk.raw"
    env = {**os.environ, "FERRY_DATABASE_URL": database_url, "FERRY_DATA_DIR": str(data),
           "FERRY_PORT": str(free_port()), "FERRY_INSTANCE_ID": "disk-restart"}  # fmt: skip
    body = {"migrationId": "vm", "kind": "disk", "source": source, "target": str(target), "options": OPTIONS}
    db = Database(database_url)
    try:
        with server_process([str(FERRY), "serve"], env, tmp_path / "serve.log") as server:
            assert server.client.post("/migrations", json=body).status_code == 201
            wait_for(lambda: checkpointed(db) >= 2 * MiB)
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(10)
        servers.halt(source)
        with db.session() as session:
            row = session.get(CopyJobRow, "vm")
            assert row is not None
            saved = dict(row.progress)
        assert 0 < saved["bytesCopied"] < 32 * MiB

        with server_process([str(FERRY), "serve"], env, tmp_path / "serve.log") as server:
            waiting = server.wait_for("vm", holds_nothing_between_tries, timeout=30)
            assert kept(waiting["progress"]) == kept(saved)
            assert servers.revive() == 1  # its log starts afresh: what follows is this run's
            done = server.wait_for("vm", lambda m: m["state"] in ("COMPLETED", "FAILED"), timeout=120)
            assert (done["state"], done["error"]) == ("COMPLETED", None)
    finally:
        db.dispose()
    assert bytes_read(log) < done["progress"]["bytesCopied"], "read the whole disk again: no checkpoint used"
    same_disk = servers.nbdkit(*DISK)
    assert digest(str(target), 64 * MiB) == digest(same_disk, 64 * MiB)
