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
from app.engines.files.smallfiles import Allowance, Budget
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
    """One unit carries three regions: each comes back on its own (one that vanished as an
    error); the first region's files are all copied and counted, the budget's one file left goes
    to the last region, whose other files come back as tasks."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for d in ("one", "two"):
        for i in range(4):
            write(src / d / f"f{i}", "x" * (i + 1), mtime=1_600_000_000_000_000_000 + i, mode=0o640)
    dst.mkdir()
    listings = [listing(src, dst, "one"), listing(src, dst, "gone"), listing(src, dst, "two")]
    budget = Budget(files=5, bytes=1 << 20, seconds=60, range_size=1 << 20)
    unit = ListUnit(listings, 100, env(src, dst, helpers if with_helpers else None), budget)
    unit.run(SLOT)
    one, gone, two = unit.results
    assert isinstance(gone, FileNotFoundError)
    assert isinstance(one, StepResult)
    assert isinstance(two, StepResult)
    assert one.done
    assert two.done
    assert (one.files_copied, one.bytes_copied, one.tasks) == (4, 1 + 2 + 3 + 4, [])
    assert sorted(os.listdir(dst / "one")) == ["f0", "f1", "f2", "f3"]
    for i in range(4):
        assert os.stat(dst / "one" / f"f{i}").st_mtime_ns == 1_600_000_000_000_000_000 + i
    (copied,) = os.listdir(dst / "two")  # the first in directory order, whichever that is
    assert (two.files_copied, two.bytes_copied) == (1, int(copied[1]) + 1)
    assert sorted(t.name for t in two.tasks) == sorted({"f0", "f1", "f2", "f3"} - {copied})


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
