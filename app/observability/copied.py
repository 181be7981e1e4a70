"""Bytes and files copied, per kind, as Prometheus counters fed from progress as units finish.

The pool reports each finished unit; here the run's progress is read right then and only its
growth is counted, so the counters only ever rise and a scrape costs nothing. A run is first seen
at its ``open`` unit: the progress it starts with (a resumed run's earlier work) is its baseline,
not new work. Verification runs copy nothing and are not counted.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter

from app.engines.base import Purpose, Unit
from app.pool.run import RunHandle, UnitOutcome


class CopiedCounters:
    def __init__(self, registry: CollectorRegistry, purpose_of: Callable[[str], Purpose | None]) -> None:
        self.bytes = Counter("ferry_copied_bytes", "bytes copied to targets", ["kind"], registry=registry)
        self.files = Counter("ferry_copied_files", "files copied to targets", ["kind"], registry=registry)
        self._purpose_of = purpose_of
        self._lock = threading.Lock()
        #: The last (bytes, files) counted per run; an entry goes when the coordinator drops the run.
        self._last: weakref.WeakKeyDictionary[RunHandle, tuple[float, float]] = weakref.WeakKeyDictionary()

    def declare(self, kinds: Iterable[str]) -> None:
        """Export each kind at 0 from the start, so rates and dashboards have a series to read."""
        for kind in kinds:
            self.bytes.labels(kind)
            self.files.labels(kind)

    def observe_unit(self, run: RunHandle, unit: Unit, seconds: float, outcome: UnitOutcome) -> None:
        if self._purpose_of(run.job_id) is not Purpose.COPY:
            return
        progress = run.progress()
        if progress is None:
            return
        copied = float(progress.fields.get("bytesCopied") or 0)
        files = float(progress.fields.get("filesCopied") or 0)
        with self._lock:
            last = self._last.get(run)
            if last is None:
                self._last[run] = (copied, files)
                return
            # Units finish concurrently: a reading older than one already counted adds nothing.
            self._last[run] = (max(copied, last[0]), max(files, last[1]))
        if copied > last[0]:
            self.bytes.labels(run.kind).inc(copied - last[0])
        if files > last[1]:
            self.files.labels(run.kind).inc(files - last[1])
