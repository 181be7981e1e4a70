"""Helper processes for small-file batches: results, errors, a killed helper, exact copies."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engines.files import FilesEngine
from app.engines.files.helpers import HelperLost, Helpers
from app.engines.files.tuning import Tuning
from app.pool.run import Outcome
from tests.files.conftest import Harness, assert_same_tree, temp_files, write


@pytest.fixture
def helpers() -> Iterator[Helpers]:
    found = Helpers()
    yield found
    found.close()


def test_a_call_returns_its_result_and_reuses_the_helper(helpers: Helpers) -> None:
    """A helper answers with the function's result; a second call reuses the same process."""
    first = helpers.call(os.getpid)
    assert first != os.getpid()
    assert helpers.call(os.getpid) == first


def test_an_exception_comes_back_as_itself(helpers: Helpers) -> None:
    """An OSError in the helper is raised in the caller, errno and all."""
    with pytest.raises(FileNotFoundError) as caught:
        helpers.call(os.stat, "/no/such/file")
    assert caught.value.errno == 2


def test_prestarted_helpers_take_the_first_calls() -> None:
    """Helpers started ahead come up in the background and answer the first calls; none is
    started for a call while one waits."""
    helpers = Helpers()
    try:
        helpers.prestart(2)
        deadline = time.monotonic() + 20
        while helpers.idle < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert helpers.idle == 2
        assert helpers.call(os.getpid) != os.getpid()
        assert helpers.idle == 2  # the one that answered is back, and no third was started
    finally:
        helpers.close()
    assert helpers.idle == 0


def test_a_killed_helper_is_reported_and_replaced(helpers: Helpers) -> None:
    """A helper killed mid-call raises HelperLost; the next call gets a fresh helper."""
    pid = helpers.call(os.getpid)
    with pytest.raises(HelperLost):
        helpers.call(os.kill, pid, signal.SIGKILL)
    assert helpers.call(os.getpid) not in (pid, os.getpid())


def test_the_engine_copies_through_helpers_exactly(harness: Harness, src: Path, dst: Path) -> None:
    """With helper processes (the default), a tree of many small files in batches lands exactly,
    with no temporary name reused across processes and none left behind."""
    for i in range(300):
        write(src / f"d{i % 7}" / f"f{i}.txt", f"{i}" * (i % 50), mtime=1_600_000_000 + i, mode=0o640)
    harness.engine = FilesEngine(Tuning(batch_files=5, list_step=50))
    assert harness.engine.helpers is not None
    try:
        result = harness.run(harness.job(src, dst))
    finally:
        harness.engine.helpers.close()
    assert result.outcome is Outcome.COMPLETED, result.error
    assert result.progress["filesCopied"] == 300
    assert_same_tree(src, dst)
    assert temp_files(dst) == []


def test_listings_in_helpers_act_as_in_threads(harness: Harness, src: Path, dst: Path) -> None:
    """Small directories listed whole in helper processes still create directories and links,
    honour exclusions, delete (with targetMatch) what the source lacks, and count all of it."""
    write(src / "keep" / "a.txt", "a")
    write(src / "keep" / "skip.tmp", "excluded")
    os.symlink("a.txt", src / "keep" / "link")
    os.symlink("nowhere", src / "keep" / "dangling")
    (src / "empty").mkdir()
    write(dst / "keep" / "stale.txt", "only on the target")
    write(dst / "gone" / "old.txt", "a directory only on the target")
    harness.engine = FilesEngine(Tuning())
    assert harness.engine.helpers is not None
    try:
        job = harness.job(src, dst, targetMatch=True, exclusions=["*.tmp"])
        result = harness.run(job)
    finally:
        harness.engine.helpers.close()
    assert result.outcome is Outcome.COMPLETED, result.error
    assert_same_tree(src, dst, ignore=lambda rel: rel.endswith(".tmp"))
    assert not (dst / "keep" / "skip.tmp").exists()
    assert os.readlink(dst / "keep" / "dangling") == "nowhere"
    assert result.progress["filesDeleted"] == 2  # stale.txt and gone/old.txt
    assert result.progress["directoriesDeleted"] == 1  # gone/
