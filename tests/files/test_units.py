"""Listing units on their own: inline copies within a budget, several regions per unit, and
directories finished without touching those already right."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engines.bandwidth import BandwidthLimiter
from app.engines.base import WorkerSlot
from app.engines.files.copy import finish_dir
from app.engines.files.helpers import Helpers
from app.engines.files.largefiles import finished_ranges
from app.engines.files.listing import FileTask, Listing, Roots, StepResult
from app.engines.files.options import parse_options
from app.engines.files.policy import Kind, Meta
from app.engines.files.smallfiles import Allowance, Budget
from app.engines.files.units import DEFERRED, Env, ListUnit

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


def test_an_allowance_takes_what_fits_in_order_and_spends_it() -> None:
    """Files are taken in order while they fit in the files and bytes left; a large file never is;
    what one split takes, the next cannot."""
    allowance = Allowance(Budget(files=4, bytes=100, seconds=60, range_size=500))
    tasks = [task("a", 10), task("big", 1000), task("b", 50), task("c", 50), task("d", 1)]
    inline, rest = allowance.split(tasks)
    assert [t.name for t in inline] == ["a", "b", "d"]
    assert [t.name for t in rest] == ["big", "c"]
    inline, rest = allowance.split([task("e", 40), task("f", 39)])
    assert [t.name for t in inline] == ["f"]  # 39 bytes and one file were left
    assert [t.name for t in rest] == ["e"]


@pytest.mark.parametrize("with_helpers", [False, True])
def test_a_unit_lists_several_regions_and_shares_one_budget(
    tmp_path: Path, helpers: Helpers, with_helpers: bool
) -> None:
    """One unit carries four regions, each answered on its own: the first's files are copied,
    one that is not in the source is done and counted as vanished, the third copies what is
    left of the budget and leaves the rest as tasks, and the fourth, met with the budget spent,
    is handed back unlisted."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for d, count in (("one", 2), ("two", 8), ("three", 1)):
        for i in range(count):
            write(src / d / f"f{i}", "x", mtime=1_600_000_000_000_000_000 + i, mode=0o640)
    dst.mkdir()
    names = ("one", "gone", "two", "three")
    budget = Budget(files=7, bytes=1 << 20, seconds=60, range_size=1 << 20)
    unit = ListUnit(
        [listing(src, dst, n) for n in names], 100, env(src, dst, helpers if with_helpers else None), budget
    )
    unit.run(SLOT)
    one, gone, two, three = unit.results
    assert isinstance(gone, StepResult)
    assert (gone.done, gone.vanished, gone.failures) == (True, 1, [])
    assert three is DEFERRED
    assert isinstance(one, StepResult)
    assert isinstance(two, StepResult)
    assert one.done
    assert two.done
    assert (one.files_copied, one.bytes_copied, one.tasks) == (2, 2, [])
    for i in range(2):
        st = os.stat(dst / "one" / f"f{i}")
        assert (st.st_mtime_ns, st.st_mode & 0o777) == (1_600_000_000_000_000_000 + i, 0o640)
    copied = os.listdir(dst / "two")
    assert len(copied) == two.files_copied == two.bytes_copied == 5
    assert sorted(copied + [t.name for t in two.tasks]) == [f"f{i}" for i in range(8)]
    assert not (dst / "three").exists()


def test_past_its_deadline_a_unit_copies_nothing_more(tmp_path: Path) -> None:
    """The budget's seconds bound a unit however fast the files are: none is copied after them."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "d" / "f", "data")
    dst.mkdir()
    budget = Budget(files=10, bytes=1 << 20, seconds=0, range_size=1 << 20)
    unit = ListUnit([listing(src, dst, "d")], 100, env(src, dst, None), budget)
    unit.run(SLOT)
    (result,) = unit.results
    assert isinstance(result, StepResult)
    assert result.files_copied == 0
    assert [t.name for t in result.tasks] == ["f"]
    assert os.listdir(dst / "d") == []


def test_with_a_bandwidth_limit_helpers_copy_nothing_inline(tmp_path: Path, helpers: Helpers) -> None:
    """A helper cannot see the shared limiter: under a limit its listing leaves every file to batches."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "d" / "f", "data")
    dst.mkdir()
    budget = Budget(files=10, bytes=1 << 20, seconds=60, range_size=1 << 20)
    unit = ListUnit([listing(src, dst, "d")], 100, env(src, dst, helpers, rate=1 << 30), budget)
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


def test_a_step_takes_its_entries_in_inode_order(tmp_path: Path) -> None:
    """Files come back as tasks in inode order, not in the directory's own order (hash order on
    ext4), so that a cold source is read nearly in disk order; each step of a large directory
    is ordered within itself and the steps together cover every file once."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for n in range(40):
        write(src / "d" / f"{(n * 7919) % 1000:03}-{n}", b"x")
    inodes = {entry.name: entry.inode() for entry in os.scandir(src / "d")}
    assert list(inodes) != sorted(inodes, key=inodes.__getitem__), "the directory is already in inode order"
    one = listing(src, dst, "d")
    steps = [one.step(15) for _ in range(3)]
    names = [[t.name for t in step.tasks] for step in steps]
    for step in names:
        assert step == sorted(step, key=inodes.__getitem__)
    assert sorted(n for step in names for n in step) == sorted(inodes)
    assert [step.done for step in steps] == [False, False, True]


def test_partial_rows_of_both_formats_are_read() -> None:
    """A partial row lists its written ranges as [offset, length] pairs; rows written before
    ranges were cut by time list offsets of ranges of rangeSize. Both are read; what does not
    fit the file is dropped (copied again)."""
    size = 150_000
    assert finished_ranges({"done": [[0, 1000], [5000, 20_000], [149_000, 5000]]}, size) == {0: 1000, 5000: 20_000}
    assert finished_ranges({"done": [0, 65_536, 131_072], "rangeSize": 65_536}, size) == {
        0: 65_536, 65_536: 65_536, 131_072: 18_928}  # fmt: skip
    assert finished_ranges({"done": [0, "x", [1]]}, size) == {}
