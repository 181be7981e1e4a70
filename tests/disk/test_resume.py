"""Stop and resume from a checkpoint, verification after a copy, and VERIFY runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db.models import DiscrepancyRow
from app.engines.base import Purpose
from app.pool.run import StopReason

from .conftest import Driver, MiB, Servers, digest, wait_for

pytestmark = pytest.mark.nbd

SIZE = 8 * MiB


def read_bytes_logged(log: Path) -> int:
    """Bytes the nbdkit log filter saw requested by Read commands."""
    text = log.read_text() if log.exists() else ""
    return sum(int(n, 16) for n in re.findall(r" Read id=\d+ offset=0x[0-9a-f]+ count=(0x[0-9a-f]+)", text))


def test_stop_then_resume_copies_only_the_rest(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """A copy stopped midway checkpoints its finished chunks; the resumed run reads only the
    remaining bytes from the source and the result is identical."""
    size = 4 * SIZE  # 256 chunks of 50 ms each: a stop after 8 comes long before the end
    slow = servers.nbdkit("pattern", str(size), "rdelay=50ms", filters=("delay",))
    target = tmp_path / "disk.img"
    pool, run = driver.start(slow, str(target), {"chunkSize": 131072}, job_id="resumable")
    wait_for(lambda: (run.progress_fields().get("extentsDone") or 0) >= 8)
    run.request_stop(StopReason.USER)
    first = driver.wait(pool, run)
    assert first.outcome == "STOPPED"
    assert first.checkpoint is not None
    done_first = first.checkpoint["counters"]["bytesCopied"]
    assert 0 < done_first < size

    log = tmp_path / "reads.log"
    logged = servers.nbdkit("pattern", str(size), f"logfile={log}", filters=("log",))
    second = driver.run(logged, str(target), {"chunkSize": 131072}, checkpoint=first.checkpoint, job_id="resumable")
    assert (second.outcome, second.error) == ("COMPLETED", None)
    assert read_bytes_logged(log) == size - done_first
    assert second.progress["bytesCopied"] == size
    assert second.progress["extentsDone"] == second.progress["extentsTotal"]
    assert digest(str(target), size) == digest(logged, size)


def test_verify_option_passes_on_a_good_copy(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """verify: true reads both sides back after the copy and completes when they match."""
    source = servers.nbdkit("sparse-random", str(SIZE), "seed=4", "percent=40", "runlength=1048576")
    done = driver.run(source, str(tmp_path / "disk.img"), {"verify": True})
    assert (done.outcome, done.error) == ("COMPLETED", None)


def test_verify_option_fails_when_target_loses_writes(servers: Servers, driver: Driver) -> None:
    """A target that drops writes (nbdkit null) passes the copy but fails verification."""
    source = servers.nbdkit("pattern", str(SIZE))
    target = servers.nbdkit("null", str(SIZE))
    done = driver.run(source, target, {"verify": True})
    assert done.outcome == "FAILED"
    assert "verification failed" in (done.error or "")


def test_verify_run_records_content_mismatch(servers: Servers, driver: Driver, db: object, tmp_path: Path) -> None:
    """A VERIFY run over a copied disk with one corrupted byte reports exactly that range as a
    CONTENT_MISMATCH discrepancy, with report counts in progress."""
    source = servers.nbdkit("pattern", str(SIZE))
    target = tmp_path / "disk.img"
    assert driver.run(source, str(target), job_id="checked").outcome == "COMPLETED"
    with target.open("r+b") as f:
        f.seek(5 * MiB + 17)
        f.write(b"\x01")
    done = driver.run(source, str(target), {"chunkSize": "1MiB"}, purpose=Purpose.VERIFY, job_id="checked")
    assert (done.outcome, done.error) == ("COMPLETED", None)
    assert done.progress["bytesChecked"] == SIZE
    assert done.progress["contentMismatch"] == done.progress["discrepancies"] == 1
    with driver.db.session() as session:
        rows = session.scalars(select(DiscrepancyRow).where(DiscrepancyRow.job_id == "checked")).all()
        assert [(r.type, r.path) for r in rows] == [("CONTENT_MISMATCH", f"offset={5 * MiB} length={MiB}")]
