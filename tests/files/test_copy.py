"""Copies of real trees through the real pool: exactness for both scan types."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.pool.run import Outcome

from .conftest import Harness, assert_same_tree, temp_files, write


def build_tree(src: Path) -> None:
    """Every kind of entry the engine must carry across exactly."""
    write(src / "a.txt", "hello", mtime=1_600_000_000_123_456_789, mode=0o640)
    write(src / "empty", b"", mtime=1_500_000_000_000_000_000)
    write(src / "exec.sh", "#!/bin/sh\n", mode=0o755)
    write(src / "with space" / "naïve café.txt", "ünïcödé", mode=0o600)
    write(src / "deep" / "a" / "b" / "c" / "d" / "leaf", os.urandom(3000))
    for i in range(30):
        write(src / "many" / f"f{i:03}", os.urandom(i * 100))
    (src / "emptydir" / "nested-empty").mkdir(parents=True)
    os.symlink("a.txt", src / "link")
    os.symlink("../nowhere/at/all", src / "deep" / "dangling")
    os.symlink("deep", src / "dirlink")
    write(src / "big.bin", os.urandom(300_000), mode=0o604)
    with open(src / "sparse.img", "wb") as f:
        f.truncate(4 * 1024 * 1024)
        f.seek(1024 * 1024)
        f.write(b"data in the middle" * 100)
    os.chmod(src / "emptydir", 0o750)
    for d in ("deep/a/b", "emptydir", "with space", "many", ""):
        os.utime(src / d, ns=(1_400_000_000_000_000_000, 1_400_000_000_000_000_000))


@pytest.mark.parametrize("scan_type", ["PARALLEL", "DEPTH_FIRST"])
def test_exact_copy(harness: Harness, src: Path, dst: Path, scan_type: str) -> None:
    """Content, mode, mtime (files and directories), symlinks incl. dangling ones, odd names,
    empty files and directories, and a sparse file that stays sparse: all exact, in both scan
    types, with no temporary file left and honest counters."""
    build_tree(src)
    result = harness.run(harness.job(src, dst, scanType=scan_type))
    assert result.outcome is Outcome.COMPLETED, result.error
    assert_same_tree(src, dst)
    assert temp_files(dst) == []
    sparse = dst / "sparse.img"
    assert sparse.stat().st_blocks * 512 < 1024 * 1024
    p = result.progress
    files = 1 + 1 + 1 + 1 + 1 + 30 + 3 + 1 + 1
    assert p["filesScanned"] == files
    assert p["filesCopied"] == files
    assert p["filesFailed"] == 0
    assert p["directoriesScanned"] == 10
    assert p["pendingRegions"] == 0
    assert p["bytesCopied"] == p["bytesTotal"] == p["bytesScanned"]
    assert p["percentComplete"] == 100.0
