"""The small-files read-ahead is only a hint: it never blocks, fails or changes a copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.engines.bandwidth import BandwidthLimiter
from app.engines.files.listing import FileTask
from app.engines.files.policy import Kind, Meta
from app.engines.files.smallfiles import ReadAhead, copy_small_files

from .conftest import write


def task(region: str, name: str, size: int) -> FileTask:
    return FileTask(region, name, Meta(Kind.FILE, size, 0, 0o644), compare=False)


@pytest.mark.timeout(20)
def test_read_ahead_passes_over_names_that_vanished_or_became_fifos(tmp_path: Path) -> None:
    """Proves a name that is now a FIFO (opened without blocking), a vanished name and a directory
    that vanished are skipped silently, and that it asks only up to the index it is given."""
    write(tmp_path / "a" / "one", b"1" * 5000)
    os.mkfifo(tmp_path / "a" / "fifo")
    write(tmp_path / "b" / "two", b"2" * 5000)
    tasks = [
        task("a", "one", 5000),
        task("a", "fifo", 10),
        task("a", "gone", 10),
        task("missing-dir", "x", 10),
        task("b", "two", 5000),
        task("b", "empty", 0),
    ]
    ahead = ReadAhead(tmp_path, tasks)
    ahead.reach(2)
    assert ahead.next == 2
    ahead.reach(100)
    assert ahead.next == len(tasks)
    ahead.close()


def test_copies_with_read_ahead_are_exact_across_regions(tmp_path: Path) -> None:
    """Proves copying many small files of several directories, with the read-ahead running ahead
    across region boundaries, copies every file exactly."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    tasks = []
    for region in ("r1", "r2", "r3"):
        (dst / region).mkdir(parents=True)
        for i in range(25):
            data = os.urandom(i * 97)
            write(src / region / f"f{i}", data)
            tasks.append(task(region, f"f{i}", len(data)))
    outcomes = copy_small_files(src, dst, tasks, fsync=False, limiter=BandwidthLimiter(0))
    assert len(outcomes) == len(tasks)
    for t in tasks:
        assert (dst / t.relpath).read_bytes() == (src / t.relpath).read_bytes()
