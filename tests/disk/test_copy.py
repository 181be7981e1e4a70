"""Full copies through the real pool between real NBD servers, to NBD and file targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Driver, MiB, Servers, digest

pytestmark = pytest.mark.nbd

SIZE = 32 * MiB


def test_full_copy_to_new_file_is_identical_and_sparse(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """A sparse source lands byte-identical in a new file; holes stay holes, progress adds up."""
    source = servers.nbdkit("sparse-random", str(SIZE), "seed=7", "percent=30", "runlength=1048576")
    target = tmp_path / "disk.img"
    done = driver.run(source, str(target), {"chunkSize": "1MiB"})
    assert (done.outcome, done.error) == ("COMPLETED", None)
    assert digest(str(target), SIZE) == digest(source, SIZE)
    progress = done.progress
    assert progress["bytesTotal"] == SIZE
    assert progress["bytesCopied"] + progress["bytesZeroed"] + progress["bytesSkipped"] == SIZE
    assert progress["extentsDone"] == progress["extentsTotal"] > 0
    assert progress["percentComplete"] == 100.0
    assert target.stat().st_blocks * 512 < SIZE  # sparse, not written out in full


def test_full_copy_to_nbd_target_is_identical(servers: Servers, driver: Driver) -> None:
    """Copying into an nbdkit memory export yields the same bytes as the source."""
    source = servers.nbdkit("sparse-random", str(SIZE), "seed=3", "percent=50", "runlength=2097152")
    target = servers.nbdkit("memory", str(SIZE))
    done = driver.run(source, target)
    assert (done.outcome, done.error) == ("COMPLETED", None)
    assert digest(target, SIZE) == digest(source, SIZE)
