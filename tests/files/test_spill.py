"""A frontier larger than its memory bound spills to work_items and still copies everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.engines.files.store import Store
from app.pool.run import Outcome

from .conftest import Harness, assert_same_tree, write


@pytest.mark.parametrize("scan_type", ["PARALLEL", "DEPTH_FIRST"])
def test_wide_tree_spills_and_refills(
    harness: Harness, src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch, scan_type: str
) -> None:
    """With 6 regions allowed in memory, 3 levels of 6 directories spill and come back; the
    copy is exact and no work rows are left once it completes."""
    spilled: list[int] = []
    real = Store.spill

    def spill(self: Store, keys: list[str]) -> Any:
        spilled.append(len(keys))
        return real(self, keys)

    monkeypatch.setattr(Store, "spill", spill)
    for a in range(6):
        for b in range(6):
            for c in range(3):
                write(src / f"a{a}" / f"b{b}" / f"c{c}" / "f", f"{a}{b}{c}")
    job = harness.job(src, dst, scanType=scan_type)
    result = harness.run(job)
    assert result.outcome is Outcome.COMPLETED, result.error
    assert spilled, "the frontier never spilled"
    assert result.progress["directoriesScanned"] == 1 + 6 + 36 + 108
    assert_same_tree(src, dst)
    store = Store(harness.db, job.job_id)
    assert store.load("pending") == store.load("spill") == store.load("active") == {}
