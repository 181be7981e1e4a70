"""Reading files the listing found: the read-ahead is only a hint (it never blocks, fails or
changes a copy), and a file that is no longer regular is refused, never waited on."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from app.engines.bandwidth import BandwidthLimiter
from app.engines.files.copy import NotRegular, copy_range, same_content
from app.engines.files.listing import FileTask
from app.engines.files.policy import Kind, Meta
from app.engines.files.smallfiles import Outcome, ReadAhead, copy_small_files

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


@pytest.mark.timeout(20)
def test_a_file_that_became_a_fifo_fails_at_once_instead_of_holding_its_unit(tmp_path: Path) -> None:
    """Race covered: a file listed as regular is replaced by a FIFO before its copy. Opening a FIFO
    for reading waits for a writer, so the copy held its unit (and the run) forever; it now fails at
    once with a reason, for the retry to list the directory again, and the files after it are
    copied all the same."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "d" / "first", b"1" * 100)
    os.mkfifo(src / "d" / "was-a-file")
    write(src / "d" / "last", b"3" * 100)
    (dst / "d").mkdir(parents=True)
    tasks = [task("d", "first", 100), task("d", "was-a-file", 100), task("d", "last", 100)]
    outcomes = copy_small_files(src, dst, tasks, fsync=False, limiter=BandwidthLimiter(0))
    assert [o[0] for o in outcomes] == [Outcome.COPIED, Outcome.FAILED, Outcome.COPIED]
    assert "no longer a regular file" in outcomes[1][2]
    assert not (dst / "d" / "was-a-file").exists()
    assert (dst / "d" / "last").read_bytes() == b"3" * 100


@pytest.mark.timeout(20)
def test_a_compare_or_a_range_of_a_file_that_became_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """The same race for the other readers of listed files: a content comparison (checksum
    rescans, verification) and a large file's range."""
    os.mkfifo(tmp_path / "fifo")
    write(tmp_path / "file", b"x" * 10)
    with pytest.raises(NotRegular):
        same_content(tmp_path / "fifo", tmp_path / "file")
    with pytest.raises(NotRegular):
        same_content(tmp_path / "file", tmp_path / "fifo")
    with pytest.raises(NotRegular):
        copy_range(tmp_path / "fifo", tmp_path / "file", 0, 10, BandwidthLimiter(0), threading.Event(), False)
