"""A copy unit keeps its lane's pipeline fed for a time budget, then drains and ends; how much it
takes follows the speed measured on the link."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engines.bandwidth import BandwidthLimiter
from app.engines.base import JobContext, JobSpec, Purpose, WorkerSlot
from app.engines.disk import DiskEngine, runs
from app.engines.disk.copier import BatchResult

from .conftest import MiB, Servers, digest

pytestmark = pytest.mark.nbd

SIZE = 128 * MiB
SLOT = WorkerSlot(0, "test-worker")


def _open(source: str, target: Path, chunk_size: str = "1MiB") -> runs.CopyRun:
    engine = DiskEngine()
    options = engine.validate(source, str(target), {"chunkSize": chunk_size}, (target.parent,))
    spec = JobSpec("units", "disk", source, str(target), options)
    ctx = JobContext(spec, Purpose.COPY, None, False, None, BandwidthLimiter(), (target.parent,))  # type: ignore[arg-type]
    run = engine.open(ctx)
    assert isinstance(run, runs.CopyRun)
    return run


def test_one_unit_refills_until_the_work_runs_out(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With time to spare, the first unit probes with one chunk (nothing is measured yet), then
    takes batch after batch at the speed it measures: it copies the whole disk (128 chunks)
    without draining in between."""
    monkeypatch.setattr(runs, "UNIT_SECONDS", 60.0)
    source = servers.nbdkit("pattern", str(SIZE))
    target = tmp_path / "disk.img"
    run = _open(source, target)
    try:
        unit = run.next_unit()
        assert isinstance(unit, runs.CopyUnit)
        assert len(unit.chunks) == 1
        unit.run(SLOT)
        run.unit_finished(unit, None)
        assert len(unit.completed) == SIZE // MiB
        assert run.is_done()
        run.finish()
    finally:
        run.close()
    assert digest(str(target), SIZE) == digest(source, SIZE)


def test_unit_past_its_budget_ends_after_its_batch(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no time budget left, a unit copies its first batch only (one chunk: the first unit
    probes) and hands the pool back its thread, so a smaller grant or another migration gets it
    between units."""
    monkeypatch.setattr(runs, "UNIT_SECONDS", 0.0)
    source = servers.nbdkit("pattern", str(SIZE))
    run = _open(source, tmp_path / "disk.img")
    try:
        unit = run.next_unit()
        assert isinstance(unit, runs.CopyUnit)
        unit.run(SLOT)
        run.unit_finished(unit, None)
        assert len(unit.completed) == 1
        assert not run.is_done()
    finally:
        run.close()


@pytest.mark.parametrize(("rate", "chunks"), [(8_000_000, 3), (2_000_000, 1), (1e9, runs.BATCH_CHUNKS)])
def test_a_unit_takes_about_a_second_at_the_measured_speed(
    servers: Servers, tmp_path: Path, rate: float, chunks: int
) -> None:
    """Once the link is measured, a unit's first batch is half a second of work at that speed
    (1 MiB chunks: 3 at 8 MB/s, never less than one), and a full batch on a fast link."""
    source = servers.nbdkit("pattern", str(SIZE))
    run = _open(source, tmp_path / "disk.img")
    try:
        run.pace.observe(int(rate), 1.0)
        unit = run.next_unit()
        assert isinstance(unit, runs.CopyUnit)
        assert len(unit.chunks) == chunks
        unit.result = BatchResult([], unit.chunks)  # never run: its chunks go back untouched
        run.unit_finished(unit, None)
        assert run.queue.counters.retries == 0
    finally:
        run.close()


def test_on_a_very_slow_link_a_unit_takes_part_of_a_chunk(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 1 MB/s a 4 MiB chunk is 4 s of work: the unit takes its first 1 MiB (one read
    request) and leaves the rest at the front of the queue as an extent of its own; copied
    so, 1 MiB a unit, the disk is exact and every extent is done."""
    size = 16 * MiB
    source = servers.nbdkit("pattern", str(size))
    target = tmp_path / "disk.img"
    run = _open(source, target, "4MiB")
    try:
        total = run.queue.counters.extents_total
        run.pace.observe(1_000_000, 1.0)
        monkeypatch.setattr(run.pace, "observe", lambda nbytes, seconds: None)  # it stays that slow
        unit = run.next_unit()
        assert isinstance(unit, runs.CopyUnit)
        assert [(c.offset, c.length) for c in unit.chunks] == [(0, MiB)]
        assert run.queue.counters.extents_total == total + 1
        units = 0
        while unit is not None:
            assert sum(c.length for c in unit.chunks) == MiB
            unit.run(SLOT)
            run.unit_finished(unit, None)
            units += 1
            unit = run.next_unit()
        assert run.is_done()
        counters = run.queue.counters
        assert units == counters.extents_total == size // MiB
        assert (counters.extents_done, counters.bytes_copied) == (counters.extents_total, size)
        run.finish()
    finally:
        run.close()
    assert digest(str(target), size) == digest(source, size)
