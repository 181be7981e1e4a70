"""A copy unit keeps its lane's pipeline fed for a time budget, then drains and ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engines.bandwidth import BandwidthLimiter
from app.engines.base import JobContext, JobSpec, Purpose, WorkerSlot
from app.engines.disk import DiskEngine, runs

from .conftest import MiB, Servers, digest

pytestmark = pytest.mark.nbd

SIZE = 128 * MiB
SLOT = WorkerSlot(0, "test-worker")


def _open(source: str, target: Path) -> runs.CopyRun:
    engine = DiskEngine()
    options = engine.validate(source, str(target), {"chunkSize": "1MiB"}, (target.parent,))
    spec = JobSpec("units", "disk", source, str(target), options)
    ctx = JobContext(spec, Purpose.COPY, None, False, None, BandwidthLimiter(), (target.parent,))  # type: ignore[arg-type]
    run = engine.open(ctx)
    assert isinstance(run, runs.CopyRun)
    return run


def test_one_unit_refills_until_the_work_runs_out(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With time to spare, the first unit takes batch after batch: it copies the whole disk
    (128 chunks, many times its first batch) without draining in between."""
    monkeypatch.setattr(runs, "UNIT_SECONDS", 60.0)
    source = servers.nbdkit("pattern", str(SIZE))
    target = tmp_path / "disk.img"
    run = _open(source, target)
    try:
        unit = run.next_unit()
        assert isinstance(unit, runs.CopyUnit)
        assert len(unit.chunks) == runs.BATCH_CHUNKS
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
    """With no time budget left, a unit copies its first batch only and hands the pool back its
    thread, so a smaller grant or another migration gets it between units."""
    monkeypatch.setattr(runs, "UNIT_SECONDS", 0.0)
    source = servers.nbdkit("pattern", str(SIZE))
    run = _open(source, tmp_path / "disk.img")
    try:
        unit = run.next_unit()
        assert isinstance(unit, runs.CopyUnit)
        unit.run(SLOT)
        run.unit_finished(unit, None)
        assert len(unit.completed) == runs.BATCH_CHUNKS
        assert not run.is_done()
    finally:
        run.close()
