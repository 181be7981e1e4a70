"""The JobRun of a files verification (``Purpose.VERIFY``); see :mod:`app.engines.files.verify`."""

from __future__ import annotations

import threading
from collections import Counter, deque
from pathlib import Path
from typing import Any

from app.engines.base import Finding, JobContext, Progress, Unit
from app.engines.files.durable import DurableFrontier, FrontierRun
from app.engines.files.listing import reason
from app.engines.files.options import FilesOptions
from app.engines.files.store import Store
from app.engines.files.tuning import Tuning
from app.engines.files.verify import (
    FLUSH_AT,
    TYPES,
    Checked,
    Found,
    Span,
    VCompareUnit,
    VerifyListing,
    VListUnit,
    spans,
)  # fmt: skip


class VerifyRun(FrontierRun):
    def __init__(self, ctx: JobContext, options: FilesOptions, source: Path, target: Path, tuning: Tuning):
        self._ctx, self._options, self._tuning = ctx, options, tuning
        self._source, self._target = source, target
        self._lock = threading.Lock()
        store = Store(ctx.db, ctx.spec.job_id, prefix="v")
        self._frontier = DurableFrontier(
            store, self._lock, lifo=False, bound=tuning.frontier_bound, refill=tuning.refill
        )
        self._listings: deque[VerifyListing] = deque()
        self._listing = 0
        self._compare: deque[Span] = deque()
        #: Large files a range of which already produced a finding.
        self._flagged: set[str] = set()
        self._inflight = 0
        self._counts: Counter[str] = Counter()
        self._buffer: list[Finding] = []

    def start(self) -> None:
        """Forget the previous verification's frontier and queue the root (the ledger opened a
        fresh report when the verification was asked for)."""
        self._frontier.start_fresh()

    # -- units ---------------------------------------------------------------------------------

    def _pick(self) -> Unit | None:
        room = len(self._compare) < self._tuning.queue_bound
        if room and self._listings:
            return VListUnit(self._listings.popleft(), self._tuning.list_step)
        if room and (popped := self._frontier.pop()) is not None:
            region = popped[0]
            self._listing += 1
            listing = VerifyListing(self._source, self._target, region, self._options)
            return VListUnit(listing, self._tuning.list_step)
        if self._compare:
            batch: list[Span] = []
            size = 0
            while self._compare and len(batch) < self._tuning.batch_files and size < self._tuning.batch_bytes:
                batch.append(self._compare.popleft())
                size += batch[-1].size
            return VCompareUnit(self._source, self._target, batch, self._ctx.stopping)
        return None

    def unit_finished(self, unit: Unit, error: BaseException | None) -> None:
        with self._lock:
            self._inflight -= 1
            if isinstance(unit, VListUnit):
                self._listed(unit, error)
            elif isinstance(unit, VCompareUnit):
                self._compared(unit)
            flush = len(self._buffer) >= FLUSH_AT
        if flush:
            self._flush()
        self._frontier.spill()
        self._ctx.wake(4)

    def _listed(self, unit: VListUnit, error: BaseException | None) -> None:
        result = unit.result
        if error is not None or result is None:
            unit.listing.close()
            self._listing -= 1
            path = unit.listing.region or "/"
            self._add(("MISSING_ON_TARGET", path, f"directory not compared: {reason(error or OSError())}"))
            return
        self._record(result)
        for relpath, size in result.compare:
            self._compare.extend(spans(relpath, size, self._tuning.range_size))
        for child in result.children:
            self._frontier.push(child)
        if result.done:
            self._listing -= 1
            self._counts["directoriesChecked"] += 1
        else:
            self._listings.append(unit.listing)

    def _compared(self, unit: VCompareUnit) -> None:
        """Record a compare unit's findings; a large file differing in several ranges once."""
        result = unit.result
        if unit.flagged:
            kept: list[Found] = []
            for found in result.found:
                path = found[1]
                if path in unit.flagged:
                    if path in self._flagged:
                        continue
                    self._flagged.add(path)
                kept.append(found)
            result.found = kept
        self._record(result)

    def _record(self, result: Checked) -> None:
        self._counts["filesChecked"] += result.files
        self._counts["bytesChecked"] += result.bytes
        for found in result.found:
            self._add(found)

    def _add(self, found: Found) -> None:
        kind, path, detail = found
        self._counts[TYPES[kind]] += 1
        self._counts["discrepancies"] += 1
        self._buffer.append((kind, path, detail))

    def _flush(self) -> None:
        with self._frontier.db_lock:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if rows:
                self._ctx.findings(rows)

    # -- the rest of the contract --------------------------------------------------------------

    def is_done(self) -> bool:
        with self._lock:
            busy = self._inflight or self._listing or len(self._frontier) or self._compare
            return not (busy or self._frontier.refilling)

    def _fields(self) -> dict[str, int | float]:
        names = ["filesChecked", "directoriesChecked", "bytesChecked", *TYPES.values(), "discrepancies"]
        fields: dict[str, int | float] = {name: self._counts[name] for name in names}
        fields["pendingRegions"] = len(self._frontier) + self._listing
        return fields

    def progress(self) -> Progress:
        with self._lock:
            scanning = len(self._frontier) + self._listing
            done = self._counts["bytesChecked"]
            pending = sum(span.size for span in self._compare)
            return Progress(self._fields(), done, None if scanning else done + pending)

    def checkpoint(self) -> dict[str, Any]:
        self._flush()
        with self._lock:
            return {"version": 1, "counts": self._fields()}

    def finish(self) -> None:
        self._flush()
        self._frontier.complete()

    def close(self) -> None:
        with self._lock:
            listings = list(self._listings)
        for listing in listings:
            listing.close()
        self._flush()
