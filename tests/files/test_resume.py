"""Stop and resume, stale temporaries, failures that do not fail the migration, rescans."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.db.models import WorkItemRow
from app.engines.files import copyrun, record_pending_region, smallfiles, units
from app.engines.files.store import Store
from app.pool.run import Outcome, RunHandle

from .conftest import Harness, assert_same_tree, temp_files, write


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counter[Any]]:
    """Count every file landed by a batch and every range written, by path (and offset)."""
    landed: Counter[Any] = Counter()
    ranges: Counter[Any] = Counter()
    lock = threading.Lock()
    real_copy, real_range = smallfiles.copy_file_at, units.copy_range

    def copy_file_at(src_dir: int, dst_dir: int, name: str, *args: Any) -> int:
        size = real_copy(src_dir, dst_dir, name, *args)
        with lock:
            landed[name] += 1
        return size

    def copy_range(src: Path, temp: Path, offset: int, *args: Any) -> None:
        real_range(src, temp, offset, *args)
        with lock:
            ranges[(src.name, offset)] += 1

    monkeypatch.setattr(smallfiles, "copy_file_at", copy_file_at)
    monkeypatch.setattr(units, "copy_range", copy_range)
    return {"landed": landed, "ranges": ranges}


def test_stop_mid_copy_then_resume_copies_nothing_twice(
    harness: Harness, src: Path, dst: Path, copies: dict[str, Counter[Any]]
) -> None:
    """A user stop in the middle of a large file, then a resume: every small file lands once,
    every range of the large file is written once (the resume continues mid-file), the tree ends
    exact, and no temporary file is left."""
    for i in range(40):
        write(src / f"d{i % 4}" / f"small{i}", os.urandom(1500))
    write(src / "large.bin", os.urandom(64 * 1024 * 12))  # 12 ranges
    job = harness.job(src, dst)
    harness.limiter.set_rate(600_000)
    first = harness.run(job, stop_when=lambda p: len(copies["ranges"]) >= 4)
    assert first.outcome is Outcome.STOPPED
    done_before = len(copies["ranges"])
    assert 4 <= done_before < 12
    harness.limiter.set_rate(0)
    second = harness.run(job)
    assert second.outcome is Outcome.COMPLETED, second.error
    assert_same_tree(src, dst)
    assert temp_files(dst) == []
    assert set(copies["landed"].values()) == {1}
    assert len(copies["landed"]) == 40
    assert set(copies["ranges"].values()) == {1}
    assert len(copies["ranges"]) == 12
    p = second.progress
    assert p["filesCopied"] == 41
    assert p["bytesCopied"] == 40 * 1500 + 64 * 1024 * 12
    assert p["filesScanned"] == 41


def test_resume_relists_only_unfinished_regions(harness: Harness, src: Path, dst: Path) -> None:
    """After a stop, finished directories are not listed again: the resumed run's listings plus
    the first run's equal the number of directories, give or take the regions in flight."""
    for d in range(30):
        write(src / f"dir{d:02}" / "f", os.urandom(20_000))
    job = harness.job(src, dst)
    harness.limiter.set_rate(300_000)
    first = harness.run(job, stop_when=lambda p: p["filesCopied"] >= 10)
    assert first.outcome is Outcome.STOPPED
    harness.limiter.set_rate(0)
    second = harness.run(job)
    assert second.outcome is Outcome.COMPLETED
    assert second.progress["directoriesScanned"] == 31
    assert second.progress["filesCopied"] == 30
    assert_same_tree(src, dst)


def test_stale_temporaries_are_removed_when_a_region_is_rescanned(harness: Harness, src: Path, dst: Path) -> None:
    """Temporary files a crashed run left behind (ours by name) go when their directory is
    listed again; a file that merely looks similar but is not ours stays."""
    write(src / "a" / "f", "x")
    job = harness.job(src, dst)
    harness.run(job)
    write(dst / "a" / ".ferry~0123456789abcdef.part", "half a file")
    write(dst / ".ferry~0123456789abcdef.part", "half a file")
    write(src / "a" / ".ferry~not-ours.part", "a user's file")
    result = harness.run(job, incremental=True)
    assert result.outcome is Outcome.COMPLETED
    assert temp_files(dst) == []
    assert (dst / "a" / ".ferry~not-ours.part").exists()


def test_vanishing_file_is_counted_as_vanished_not_failed(
    harness: Harness, src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that disappears between its listing and its copy is counted in filesVanished, is
    no failure (the pass COMPLETES, nothing listed as failed), and is copied by the next pass
    once it is back."""
    write(src / "keep", "k")
    write(src / "sub" / "vanish", "v")
    real = smallfiles.copy_file_at

    def copy_file_at(src_dir: int, dst_dir: int, name: str, *args: Any) -> int:
        if name == "vanish" and (src / "sub" / "vanish").exists():
            os.unlink(name, dir_fd=src_dir)
        return real(src_dir, dst_dir, name, *args)

    monkeypatch.setattr(smallfiles, "copy_file_at", copy_file_at)
    job = harness.job(src, dst)
    result = harness.run(job)
    assert result.outcome is Outcome.COMPLETED
    assert (result.progress["filesFailed"], result.progress["filesVanished"]) == (0, 1)
    assert result.checkpoint is not None
    assert result.checkpoint["failures"] == []
    assert (dst / "keep").exists()
    monkeypatch.setattr(smallfiles, "copy_file_at", real)
    write(src / "sub" / "vanish", "back")
    again = harness.run(job, incremental=True)
    assert (again.progress["filesFailed"], again.progress["filesVanished"]) == (0, 0)
    assert (dst / "sub" / "vanish").read_text() == "back"


def test_directory_vanishing_before_its_listing_is_counted_not_failed(
    harness: Harness, src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory that vanishes between being found and being listed is counted in
    filesVanished; the rest of the tree is copied and the pass COMPLETES."""
    write(src / "a" / "f", "x")
    write(src / "b" / "g", "y")
    real = copyrun.Listing

    def listing(roots: Any, region: str, **kw: Any) -> Any:
        if region == "b":
            for child in (src / "b").iterdir():
                child.unlink()
            (src / "b").rmdir()
        return real(roots, region, **kw)

    monkeypatch.setattr(copyrun, "Listing", listing)
    result = harness.run(harness.job(src, dst))
    assert result.outcome is Outcome.COMPLETED
    assert (result.progress["filesFailed"], result.progress["filesVanished"]) == (0, 1)
    assert (dst / "a" / "f").read_text() == "x"


def test_a_file_failing_once_is_copied_by_the_retry_at_the_end_of_the_pass(
    harness: Harness, src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy that fails once (a transient error) is tried again when the pass reaches its end,
    by listing its directory again without its subdirectories: the pass COMPLETES with nothing
    failed, and no other file of that directory is copied twice."""
    for n in range(5):
        write(src / "d" / f"f{n}", f"{n}")
    write(src / "d" / "sub" / "deep", "deep")
    real = smallfiles.copy_file_at
    calls: Counter[str] = Counter()

    def copy_file_at(src_dir: int, dst_dir: int, name: str, *args: Any) -> int:
        calls[name] += 1
        if name == "f3" and calls[name] == 1:
            raise OSError(5, "Input/output error")
        return real(src_dir, dst_dir, name, *args)

    monkeypatch.setattr(smallfiles, "copy_file_at", copy_file_at)
    result = harness.run(harness.job(src, dst))
    assert result.outcome is Outcome.COMPLETED, result.error
    assert result.progress["filesFailed"] == 0
    assert calls == {"f0": 1, "f1": 1, "f2": 1, "f3": 2, "f4": 1, "deep": 1}
    assert_same_tree(src, dst)


def test_pending_region_added_while_running_is_listed_again(harness: Harness, src: Path, dst: Path) -> None:
    """``add_pending_region`` on a running job queues one more listing of that directory, and
    the result is still exact."""
    for d in range(8):
        write(src / f"d{d}" / "f", os.urandom(1000))
    write(src / "zbig", os.urandom(64 * 1024 * 16))
    job = harness.job(src, dst)
    harness.limiter.set_rate(1_000_000)
    added: list[bool] = []

    def add(run: RunHandle) -> None:
        if not added and (dst / "d3" / "f").exists():
            run.engine_run.add_pending_region("/d3/")  # type: ignore[union-attr]
            added.append(True)

    result = harness.run(job, during=add)
    harness.limiter.set_rate(0)
    assert added
    assert result.outcome is Outcome.COMPLETED
    assert result.progress["directoriesScanned"] == 10
    assert_same_tree(src, dst)


def test_a_pending_region_arriving_as_the_pass_ends_is_the_next_runs(
    harness: Harness, src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Race covered: a rescan asked for after the run said its pass was over, while it finishes.
    The live run refuses it (it used to take it into a frontier no unit would list again, and
    the pass ended COMPLETED without it), so the engine records it for the next run instead."""
    write(src / "d" / "f", "x")
    job = harness.job(src, dst)
    asked = threading.Event()
    real_finish = copyrun.CopyRun.finish

    def finish(self: copyrun.CopyRun) -> None:
        asked.wait(10)  # the pass is over; the rescan comes now
        real_finish(self)

    monkeypatch.setattr(copyrun.CopyRun, "finish", finish)
    answers: list[bool] = []

    def add_while_finishing(run: RunHandle) -> None:
        engine_run = run.engine_run
        if not answers and isinstance(engine_run, copyrun.CopyRun) and engine_run.is_done():
            answers.append(engine_run.add_pending_region("/d"))
            asked.set()

    result = harness.run(job, during=add_while_finishing)
    assert result.outcome is Outcome.COMPLETED
    assert answers == [False]


def test_pending_region_recorded_for_a_stopped_job(harness: Harness, src: Path, dst: Path) -> None:
    """``record_pending_region`` stores a row the next run of a stopped job picks up."""
    for d in range(6):
        write(src / f"d{d}" / "f", os.urandom(30_000))
    job = harness.job(src, dst)
    harness.limiter.set_rate(200_000)
    first = harness.run(job, stop_when=lambda p: p["filesCopied"] >= 1)
    harness.limiter.set_rate(0)
    assert first.outcome is Outcome.STOPPED
    assert record_pending_region(harness.db, job.job_id, "/d0//") == "d0"
    with harness.db.session() as session:
        keys = session.scalars(select(WorkItemRow.key).where(WorkItemRow.bucket == "pending")).all()
    assert "d0" in keys
    second = harness.run(job)
    assert second.outcome is Outcome.COMPLETED
    assert_same_tree(src, dst)
    assert Store(harness.db, job.job_id).load("pending") == {}
