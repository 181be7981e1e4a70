"""Service-wide counters since start: what finished runs did plus what live runs are doing."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from app.pool.run import UnitOutcome

#: Progress fields summed into ``totals`` of ``/stats/scannerPoolStats``.
SUMMED = ("retries", "bytesCopied", "filesCopied", "filesScanned", "directoriesScanned")


def _numbers(progress: Mapping[str, Any]) -> dict[str, float]:
    return {key: float(progress.get(key) or 0) for key in SUMMED}


class Totals:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished = dict.fromkeys(SUMMED, 0.0)
        self._baselines: dict[str, dict[str, float]] = {}
        self.units_completed = 0
        self.units_failed = 0

    def run_started(self, job_id: str, progress: Mapping[str, Any]) -> None:
        """Progress a resumed run starts with is not new work: remember it as the baseline."""
        with self._lock:
            self._baselines[job_id] = _numbers(progress)

    def run_ended(self, job_id: str, progress: Mapping[str, Any]) -> None:
        with self._lock:
            baseline = self._baselines.pop(job_id, None) or dict.fromkeys(SUMMED, 0.0)
            for key, value in _numbers(progress).items():
                self._finished[key] += max(0.0, value - baseline[key])

    def unit_done(self, outcome: UnitOutcome) -> None:
        with self._lock:
            if outcome is UnitOutcome.OK:
                self.units_completed += 1
            elif outcome is UnitOutcome.FAILED:
                self.units_failed += 1

    def current(self, live: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, int]:
        with self._lock:
            sums = dict(self._finished)
            for job_id, progress in live:
                baseline = self._baselines.get(job_id, dict.fromkeys(SUMMED, 0.0))
                for key, value in _numbers(progress).items():
                    sums[key] += max(0.0, value - baseline[key])
            result = {key: int(value) for key, value in sums.items()}
            result["unitsCompleted"] = self.units_completed
            result["unitsFailed"] = self.units_failed
            return result
