"""Zero detection, injected faults, retries, and servers that take one connection only."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.pool.run import StopReason

from .conftest import Driver, MiB, Servers, digest, wait_for

pytestmark = pytest.mark.nbd

SIZE = 8 * MiB


def test_chunks_zero_but_one_byte_keep_that_byte(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """A chunk that is all zero except one byte is copied as data; zero chunks clear old data."""
    source = servers.nbdkit("data", "data=@1048577 1 @6291455 0xff @4194304 0", f"size={SIZE}")
    target = tmp_path / "dirty.img"
    target.write_bytes(b"\xaa" * SIZE)  # old content everywhere: nothing is known zero
    done = driver.run(source, str(target), {"chunkSize": "1MiB"})
    assert (done.outcome, done.error) == ("COMPLETED", None)
    data = target.read_bytes()
    assert data[1048577] == 1
    assert data[6291455] == 0xFF
    assert data.count(0) == SIZE - 2
    assert done.progress["bytesZeroed"] >= SIZE - 2 * 65536


def test_read_errors_are_retried_and_counted(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """Reads fail while the inject file exists; chunks are retried with backoff and the copy
    completes once reads work again, with the retries in progress."""
    inject = tmp_path / "inject"
    inject.touch()
    source = servers.nbdkit(
        "sparse-random", str(SIZE), "seed=5", "percent=50", "runlength=1048576",
        "error-pread-rate=100%", f"error-pread-file={inject}", filters=("error",),
    )  # fmt: skip
    target = tmp_path / "disk.img"
    pool, run = driver.start(source, str(target), {"retryDelay": 0.05, "maxRetries": 10})
    wait_for(lambda: (run.progress_fields().get("retries") or 0) >= 1)
    inject.unlink()
    done = driver.wait(pool, run)
    assert (done.outcome, done.error) == ("COMPLETED", None)
    assert done.progress["retries"] >= 1
    assert digest(str(target), SIZE) == digest(source, SIZE)


def test_exhausted_retries_fail_with_offset_and_reason(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """When every read fails, the job FAILS (no hang, no deadlock with many failing chunks)
    naming the offset and the error."""
    source = servers.nbdkit("pattern", str(SIZE), "error-pread-rate=100%", filters=("error",))
    done = driver.run(source, str(tmp_path / "disk.img"), {"retryDelay": 0.01, "maxRetries": 2, "chunkSize": 65536})
    assert done.outcome == "FAILED"
    assert done.error is not None
    assert "offset" in done.error
    assert "after 2 retries" in done.error
    assert "Input/output error" in done.error


def test_write_errors_fail_the_job(servers: Servers, driver: Driver) -> None:
    """A target that refuses every write fails the job with the write's error."""
    source = servers.nbdkit("pattern", str(SIZE))
    target = servers.nbdkit("memory", str(SIZE), "error-pwrite-rate=100%", "error=ENOSPC", filters=("error",))
    done = driver.run(source, target, {"retryDelay": 0.01, "maxRetries": 1})
    assert done.outcome == "FAILED"
    assert "write at offset" in (done.error or "")


def test_server_taking_one_connection_still_copies(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """nbdkit limit=1 rejects every connection but the first: the copy goes on with one."""
    source = servers.nbdkit("sparse-random", str(SIZE), "seed=8", "percent=70", "limit=1", filters=("limit",))
    target = tmp_path / "disk.img"
    done = driver.run(source, str(target), {"chunkSize": "256KiB"})
    assert (done.outcome, done.error) == ("COMPLETED", None)
    assert digest(str(target), SIZE) == digest(source, SIZE)


def test_qemu_nbd_without_shared_connections(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """qemu-nbd without -e never answers a second client: extra connections time out and the
    copy completes on the one it has."""
    image = tmp_path / "src.raw"
    image.write_bytes(bytes(range(256)) * (SIZE // 256))
    source = servers.qemu_nbd(image, "-r", "-t", "-f", "raw")
    target = tmp_path / "disk.img"
    done = driver.run(source, str(target), {"chunkSize": "512KiB"})
    assert (done.outcome, done.error) == ("COMPLETED", None)
    assert target.read_bytes() == image.read_bytes()


def test_parallel_false_and_stop_drain(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """A stop during a slow one-connection copy settles promptly as STOPPED, with in-flight
    reads drained (nbdkit stays up and answers afterwards)."""
    source = servers.nbdkit("pattern", str(SIZE), "rdelay=200ms", filters=("delay",))
    pool, run = driver.start(source, str(tmp_path / "disk.img"), {"parallel": False, "chunkSize": 65536})
    wait_for(lambda: (run.progress_fields().get("extentsDone") or 0) >= 1)
    run.request_stop(StopReason.USER)
    done = driver.wait(pool, run, timeout=20)
    assert done.outcome == "STOPPED"
    assert 0 < done.progress["extentsDone"] < done.progress["extentsTotal"]
    assert digest(source, SIZE)  # the server still serves
