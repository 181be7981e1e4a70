"""Verification runs report each kind of discrepancy, in order, in the discrepancies table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db.models import DiscrepancyRow
from app.engines.base import Purpose, WorkerSlot
from app.engines.files.verify import VCompareUnit, spans
from app.pool.run import Outcome

from .conftest import TEST_TUNING, Harness, write


def discrepancies(harness: Harness, job_id: str) -> list[tuple[int, str, str]]:
    with harness.db.session() as session:
        rows = session.scalars(select(DiscrepancyRow).where(DiscrepancyRow.job_id == job_id))
        return sorted((row.seq, row.type, row.path) for row in rows)


def test_verify_reports_every_discrepancy_type(harness: Harness, src: Path, dst: Path) -> None:
    """After a copy, damage the target four ways; a verification with verifyContent finds each,
    numbered from 1, and its progress holds the counts. A clean tree verifies with none, and a
    second verification replaces the first one's rows."""
    for i in range(12):
        write(src / f"d{i % 3}" / f"f{i}", os.urandom(700))
    write(src / "big", os.urandom(300_000))
    job = harness.job(src, dst, verifyContent=True, exclusions=["*.skip"])
    assert harness.run(job).outcome is Outcome.COMPLETED
    clean = harness.run(job, purpose=Purpose.VERIFY)
    assert clean.outcome is Outcome.COMPLETED
    assert clean.progress["discrepancies"] == 0
    assert clean.progress["filesChecked"] == 13
    assert clean.progress["directoriesChecked"] == 4

    (dst / "d0" / "f0").unlink()
    write(dst / "d1" / "extra", "only here")
    write(dst / "d1" / "ignored.skip", "excluded: not reported")
    write(dst / "d2" / "f2", "short")
    data = bytearray((dst / "big").read_bytes())
    data[123_456] ^= 0xFF
    (dst / "big").write_bytes(bytes(data))
    result = harness.run(job, purpose=Purpose.VERIFY)
    assert result.outcome is Outcome.COMPLETED, result.error
    found = discrepancies(harness, job.job_id)
    assert [seq for seq, _, _ in found] == [1, 2, 3, 4]
    assert sorted((kind, path) for _, kind, path in found) == [
        ("CONTENT_MISMATCH", "big"),
        ("MISSING_ON_SOURCE", "d1/extra"),
        ("MISSING_ON_TARGET", "d0/f0"),
        ("SIZE_MISMATCH", "d2/f2"),
    ]
    p = result.progress
    counts = [p[name] for name in ("missingOnTarget", "missingOnSource", "sizeMismatch", "contentMismatch")]
    assert counts == [1, 1, 1, 1]
    assert p["discrepancies"] == 4


def test_verify_without_content_checks_sizes_only(harness: Harness, src: Path, dst: Path) -> None:
    """Without verifyContent (and not CHECKSUM), equal sizes pass even if contents differ."""
    write(src / "f", "aaaa")
    job = harness.job(src, dst)
    harness.run(job)
    write(dst / "f", "bbbb")
    result = harness.run(job, purpose=Purpose.VERIFY)
    assert result.progress["discrepancies"] == 0
    assert discrepancies(harness, job.job_id) == []


def test_large_file_is_compared_range_by_range_and_named_once(
    harness: Harness, src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of five ranges is compared range by range, in units of at most a batch's bytes (no
    unit holds a worker for the whole file); damaged in two ranges it is one CONTENT_MISMATCH,
    and bytesChecked counts it once."""
    size = 5 * TEST_TUNING.range_size - 100
    write(src / "huge", os.urandom(size))
    job = harness.job(src, dst, verifyContent=True)
    assert harness.run(job).outcome is Outcome.COMPLETED
    units: list[list[int]] = []
    real_run = VCompareUnit.run

    def watched(unit: VCompareUnit, slot: WorkerSlot) -> None:
        units.append([span.offset for span in unit.spans])
        real_run(unit, slot)

    monkeypatch.setattr(VCompareUnit, "run", watched)
    clean = harness.run(job, purpose=Purpose.VERIFY)
    assert (clean.progress["discrepancies"], clean.progress["bytesChecked"]) == (0, size)
    assert sorted(offset for unit in units for offset in unit) == list(range(0, size, TEST_TUNING.range_size))
    assert len(units) > 1
    assert all(len(unit) * TEST_TUNING.range_size <= TEST_TUNING.batch_bytes for unit in units)

    data = bytearray((dst / "huge").read_bytes())
    data[10] ^= 1
    data[3 * TEST_TUNING.range_size + 10] ^= 1
    (dst / "huge").write_bytes(bytes(data))
    damaged = harness.run(job, purpose=Purpose.VERIFY)
    assert damaged.progress["bytesChecked"] == size
    assert [(kind, path) for _, kind, path in discrepancies(harness, job.job_id)] == [("CONTENT_MISMATCH", "huge")]


def test_spans_cover_a_file_exactly_once() -> None:
    """Ranges tile the file with no gap or overlap; the last one reads to the end (growth shows)."""
    for size in (0, 1, 999, 1000, 1001, 4500):
        cut = spans("f", size, 1000)
        assert sum(span.size for span in cut) == size
        assert [span.offset for span in cut] == list(range(0, max(size, 1), 1000))[: len(cut)]
        assert cut[-1].length is None
        assert all(span.length == span.size == 1000 for span in cut[:-1])
        assert all(span.ranged for span in cut) == (size > 1000)
