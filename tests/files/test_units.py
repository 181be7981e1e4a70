"""Listing units on their own: inline copies within a budget, several regions per unit, and
directories finished without touching those already right."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engines.base import WorkerSlot
from app.engines.files.copy import finish_dir
from app.engines.files.helpers import Helpers
from app.engines.files.listing import FileTask, Listing, Roots, StepResult
from app.engines.files.options import parse_options
from app.engines.files.policy import Kind, Meta
from app.engines.files.smallfiles import Budget, split_inline
from app.engines.files.units import Env, ListUnit
from app.pool.bandwidth import BandwidthLimiter

from .conftest import write

SLOT = WorkerSlot(0, "test")


@pytest.fixture(scope="module")
def helpers() -> Iterator[Helpers]:
    found = Helpers()
    yield found
    found.close()


def task(name: str, size: int) -> FileTask:
    return FileTask("", name, Meta(Kind.FILE, size, 0, 0o644), compare=False)


def listing(src: Path, dst: Path, region: str) -> Listing:
    options = parse_options({})
    return Listing(Roots(src, dst, options, options.excluder), region, fresh=False, relist=False, keep=frozenset())


def env(src: Path, dst: Path, helpers: Helpers | None, rate: int = 0) -> Env:
    return Env(src, dst, False, BandwidthLimiter(rate), threading.Event(), helpers)


def test_split_inline_keeps_order_and_budget() -> None:
    """Files are taken in order while they fit in files and bytes; a large file never is."""
    tasks = [task("a", 10), task("big", 1000), task("b", 50), task("c", 50), task("d", 1), task("e", 1)]
    inline, rest = split_inline(tasks, Budget(files=3, bytes=100, range_size=500))
    assert [t.name for t in inline] == ["a", "b", "d"]
    assert [t.name for t in rest] == ["big", "c", "e"]


@pytest.mark.parametrize("with_helpers", [False, True])
def test_a_unit_lists_several_regions_and_copies_their_files(
    tmp_path: Path, helpers: Helpers, with_helpers: bool
) -> None:
    """One unit carries three regions: each comes back on its own (one that vanished as an error),
    and the small files of the others are copied and counted, those past the budget left as tasks."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for d in ("one", "two"):
        for i in range(4):
            write(src / d / f"f{i}", "x" * (i + 1), mtime=1_600_000_000_000_000_000 + i, mode=0o640)
    dst.mkdir()
    listings = [listing(src, dst, "one"), listing(src, dst, "gone"), listing(src, dst, "two")]
    unit = ListUnit(listings, 100, env(src, dst, helpers if with_helpers else None), Budget(3, 1 << 20, 1 << 20))
    unit.run(SLOT)
    one, gone, two = unit.results
    assert isinstance(gone, FileNotFoundError)
    for d, result in (("one", one), ("two", two)):
        assert isinstance(result, StepResult)
        assert result.done
        copied = sorted(os.listdir(dst / d))  # in directory order, not by name: any three
        assert len(copied) == result.files_copied == 3
        assert sorted(copied + [t.name for t in result.tasks]) == ["f0", "f1", "f2", "f3"]
        assert result.bytes_copied == sum(int(name[1]) + 1 for name in copied)
        for name in copied:
            assert os.stat(dst / d / name).st_mtime_ns == 1_600_000_000_000_000_000 + int(name[1])


def test_with_a_bandwidth_limit_helpers_copy_nothing_inline(tmp_path: Path, helpers: Helpers) -> None:
    """A helper cannot see the shared limiter: under a limit its listing leaves every file to batches."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "d" / "f", "data")
    dst.mkdir()
    unit = ListUnit([listing(src, dst, "d")], 100, env(src, dst, helpers, rate=1 << 30), Budget(10, 1 << 20, 1 << 20))
    unit.run(SLOT)
    (result,) = unit.results
    assert isinstance(result, StepResult)
    assert result.files_copied == 0
    assert [t.name for t in result.tasks] == ["f"]
    assert os.listdir(dst / "d") == []


def test_finish_dir_leaves_a_finished_directory_alone(tmp_path: Path) -> None:
    """Mode and mtime already right: nothing is written (the ctime stays); otherwise both are set."""
    path = tmp_path / "d"
    path.mkdir(mode=0o750)
    os.chmod(path, 0o750)
    os.utime(path, ns=(1, 1_500_000_000_000_000_000))
    right = Meta(Kind.DIR, 0, 1_500_000_000_000_000_000, 0o750)
    before = os.stat(path).st_ctime_ns
    time.sleep(0.02)  # past the timestamp granularity, so a write would show
    finish_dir(path, right, fsync=False)
    assert os.stat(path).st_ctime_ns == before
    finish_dir(path, Meta(Kind.DIR, 0, 1_400_000_000_000_000_000, 0o705), fsync=False)
    st = os.stat(path)
    assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o705, 1_400_000_000_000_000_000)
