"""The JobRun of a files copy: hands out listing and copy units, keeps the frontier, checkpoints.

State lives under one lock and every critical section is short; file I/O happens in units (or,
for finishing a directory, in ``unit_finished`` after the lock is released). Database writes
happen in :meth:`CopyRun.checkpoint`, in spills and in refills, serialised by ``_db_lock`` (taken
before the state lock) so a spill or refill never interleaves with a checkpoint's write.

What is persisted is finished work only: a region leaves ``pending`` when its listing is complete
(its children are queued in the same write), leaves ``active`` when its last file landed, and a
large file's range is recorded once written. A resume therefore relists at most the regions in
flight (their finished files compare equal and are not copied again) and redoes at most the
ranges in flight.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from app.engines.base import JobContext, JobFailed, Progress, Unit
from app.engines.files.copy import finish_dir
from app.engines.files.counters import Counters
from app.engines.files.frontier import Frontier, Journal
from app.engines.files.helpers import Helpers
from app.engines.files.largefiles import LargeFiles
from app.engines.files.listing import FileTask, Listing, Roots, StepResult, reason
from app.engines.files.options import Durability, FilesOptions, ScanType
from app.engines.files.policy import Meta, is_large
from app.engines.files.regions import normalise_region, parent_region
from app.engines.files.smallfiles import Budget, Outcome
from app.engines.files.store import ACTIVE, META, PARTIAL, PENDING, SPILL, Store
from app.engines.files.tuning import Tuning
from app.engines.files.units import BatchUnit, Deferred, Env, ListUnit, RangeUnit, RefillUnit

log = structlog.get_logger(__name__)
After = list[Callable[[], None]]


@dataclass(eq=False)
class Region:
    relpath: str
    listing: Listing
    relist: bool
    meta: Meta | None = None
    outstanding: int = 0
    listed: bool = False


class CopyRun:
    def __init__(
        self,
        ctx: JobContext,
        options: FilesOptions,
        source: Path,
        target: Path,
        tuning: Tuning,
        helpers: Helpers | None = None,
    ) -> None:
        self._ctx = ctx
        self._tuning = tuning
        self._roots = Roots(source, target, options, options.excluder)
        fsync = options.durability is Durability.FILE
        self._env = Env(source, target, fsync, ctx.bandwidth, ctx.stopping, helpers)
        self._budget = Budget(tuning.inline_files, tuning.inline_bytes, tuning.inline_seconds, tuning.range_size)
        self._store = Store(ctx.db, ctx.spec.job_id)
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._frontier = Frontier(options.scan_type is ScanType.DEPTH_FIRST, tuning.frontier_bound)
        self._journal = Journal()
        self._counters = Counters()
        self._regions: dict[str, Region] = {}
        self._continuations: deque[Region] = deque()
        self._small: deque[FileTask] = deque()
        self._relist: set[str] = set()
        self._large = LargeFiles(
            self._env, tuning.range_size, self._counters, self._journal, self._lock, self._file_done
        )
        self._rescan_after: set[str] = set()
        self._inflight = 0
        self._refilling = False
        self._complete = False

    # -- opening -------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the target root, then restore the last checkpoint or queue the root region."""
        try:
            os.makedirs(self._roots.target, exist_ok=True)
        except OSError as exc:
            raise JobFailed(f"cannot create the target {self._roots.target}: {reason(exc)}") from exc
        fresh = self._ctx.checkpoint is None or self._ctx.incremental
        state = None if fresh else self._store.load(META).get("state")
        if not isinstance(state, dict):
            self._store.clear()
            self._frontier.push("")
            self._journal.put(PENDING, "")
            return
        restored = Counters.from_json(state.get("counters"))
        restored.failures.extend(state.get("failures") or [])
        for name in restored.__slots__:  # the same object is shared with the large-file helper
            setattr(self._counters, name, getattr(restored, name))
        self._large.partials = self._store.load(PARTIAL)
        for relpath in sorted(self._store.load(ACTIVE)):
            self._frontier.push(relpath)
            self._relist.add(relpath)
        for relpath in sorted(self._store.load(PENDING)):
            self._frontier.push(relpath)
        self._frontier.spilled = self._store.count(SPILL)
        self._spill()

    # -- handing out units ---------------------------------------------------------------------

    def next_unit(self) -> Unit | None:
        with self._lock:
            unit = self._pick()
            if unit is not None:
                self._inflight += 1
            return unit

    def _pick(self) -> Unit | None:
        if self._ctx.stopping.is_set():
            return None
        room = len(self._small) + len(self._large.queue) < self._tuning.queue_bound
        if room and self._continuations:
            return ListUnit([self._continuations.popleft().listing], self._tuning.list_step, self._env, self._budget)
        if room and (unit := self._start_region()) is not None:
            return unit
        if self._small:
            return self._batch()
        if (range_unit := self._large.next()) is not None:
            return range_unit
        if not self._frontier.in_memory and self._frontier.spilled and not self._refilling:
            self._refilling = True
            return RefillUnit(self._refill)
        return None

    def _start_region(self) -> ListUnit | None:
        if self._frontier.lifo and self._regions:
            return None  # DEPTH_FIRST: one region at a time
        # Several regions per unit while many wait, one as the frontier runs dry (so the last
        # units spread over the workers rather than queue behind one long unit).
        group = 1 if self._frontier.lifo else max(1, min(self._tuning.list_group, self._frontier.in_memory // 8))
        listings: list[Listing] = []
        while len(listings) < group and (relpath := self._frontier.pop()) is not None:
            if relpath in self._regions:
                self._rescan_after.add(relpath)
                continue
            fresh = relpath in self._frontier.fresh
            self._frontier.fresh.discard(relpath)
            relist = relpath in self._relist
            self._relist.discard(relpath)
            keep = frozenset(
                str(p["temp"]) for k, p in self._large.partials.items() if parent_region(k) == relpath and p
            )
            listing = Listing(self._roots, relpath, fresh=fresh, relist=relist, keep=keep)
            self._regions[relpath] = Region(relpath, listing, relist)
            listings.append(listing)
        return ListUnit(listings, self._tuning.list_step, self._env, self._budget) if listings else None

    def _batch(self) -> BatchUnit:
        tasks: list[FileTask] = []
        size = 0
        while self._small and len(tasks) < self._tuning.batch_files and size < self._tuning.batch_bytes:
            task = self._small.popleft()
            tasks.append(task)
            size += task.meta.size
        return BatchUnit(self._env, tasks)

    # -- taking results back -------------------------------------------------------------------

    def unit_finished(self, unit: Unit, error: BaseException | None) -> None:
        after: After = []
        with self._lock:
            self._inflight -= 1
            if isinstance(unit, ListUnit):
                self._listed(unit, error, after)
            elif isinstance(unit, BatchUnit):
                self._batched(unit, after)
            elif isinstance(unit, RangeUnit):
                self._large.finished(unit, error, after)
            elif isinstance(unit, RefillUnit):
                self._refilling = False
                if error is not None:
                    log.warning("refill failed", action="refill_failed", error=reason(error))
            queued = len(self._small) + len(self._large.queue) + len(self._continuations)
        for action in after:
            action()
        self._spill()
        if queued:
            self._ctx.wake(min(queued, 64))

    def _listed(self, unit: ListUnit, error: BaseException | None, after: After) -> None:
        results: list[StepResult | BaseException | Deferred] = list(unit.results)
        if error is not None or len(results) != len(unit.listings):
            results = [error or OSError()] * len(unit.listings)
        for listing, result in zip(unit.listings, results, strict=True):
            self._listed_one(listing, result, after)

    def _listed_one(self, listing: Listing, result: StepResult | BaseException | Deferred, after: After) -> None:
        region = self._regions[listing.region]
        if isinstance(result, Deferred):
            self._continuations.append(region)  # its own unit, with a fresh budget
            return
        if isinstance(result, BaseException):
            listing.close()
            self._counters.fail(region.relpath or "/", f"directory not listed: {reason(result)}")
            if region.meta is None:
                del self._regions[region.relpath]
                self._journal.delete(PENDING, region.relpath)
                return
        else:
            self._merge(region, result)
            if not result.done:
                self._continuations.append(region)
                return
        region.listed = True
        self._journal.delete(PENDING, region.relpath)
        if not region.relist:
            self._counters.directories_scanned += 1
        if region.outstanding == 0:
            after.append(self._finisher(region))
        else:
            self._journal.put(ACTIVE, region.relpath)

    def _merge(self, region: Region, result: StepResult) -> None:
        c = self._counters
        region.meta = result.dir_meta or region.meta
        c.files_scanned += result.files_scanned
        c.bytes_scanned += result.bytes_scanned
        c.files_skipped += result.files_skipped
        c.bytes_skipped += result.bytes_skipped
        c.files_copied += result.files_copied
        c.bytes_copied += result.bytes_copied
        c.files_deleted += result.files_deleted
        for path, why in result.failures:
            c.fail(path, why)
        children = sorted(result.children, reverse=self._frontier.lifo)
        for child, fresh in children:
            if self._frontier.push(child, fresh):
                self._journal.put(PENDING, child)
        for task in result.tasks:
            self._enqueue(region, task)

    def _enqueue(self, region: Region, task: FileTask) -> None:
        region.outstanding += 1
        if not is_large(task.meta.size, self._tuning.range_size):
            self._small.append(task)
            return
        self._large.add(task)

    def _batched(self, unit: BatchUnit, after: After) -> None:
        c = self._counters
        for task, outcome, size, why in unit.outcomes:
            if outcome is Outcome.COPIED:
                c.files_copied += 1
                c.bytes_copied += size
            elif outcome is Outcome.EQUAL:
                c.files_skipped += 1
                c.bytes_skipped += size
            else:
                c.fail(task.relpath, why)
            self._file_done(task.region, after)

    def _file_done(self, relpath: str, after: After) -> None:
        region = self._regions[relpath]
        region.outstanding -= 1
        if region.listed and region.outstanding == 0:
            after.append(self._finisher(region))

    def _finisher(self, region: Region) -> Callable[[], None]:
        def finish() -> None:
            try:
                if region.meta is not None:
                    finish_dir(self._roots.target / region.relpath, region.meta, self._env.fsync)
            except OSError as exc:
                with self._lock:
                    self._counters.fail(region.relpath or "/", f"directory not finished: {reason(exc)}")
            with self._lock:
                self._regions.pop(region.relpath, None)
                self._journal.delete(ACTIVE, region.relpath)
                if region.relpath in self._rescan_after:
                    self._rescan_after.discard(region.relpath)
                    if self._frontier.push(region.relpath):
                        self._journal.put(PENDING, region.relpath)

        return finish

    # -- spilling ------------------------------------------------------------------------------

    def _spill(self) -> None:
        if self._frontier.in_memory <= self._frontier.bound:
            return
        with self._db_lock:
            with self._lock:
                excess = self._frontier.take_excess()
                for relpath in excess:
                    self._journal.delete(PENDING, relpath)
            if excess:
                self._store.spill(excess)

    def _refill(self) -> None:
        with self._db_lock:
            relpaths = self._store.refill(self._tuning.refill)
            with self._lock:
                self._frontier.restore(relpaths)
                if not relpaths:
                    self._frontier.spilled = 0

    # -- the rest of the JobRun contract -------------------------------------------------------

    def add_pending_region(self, path: str) -> None:
        """Queue a rescan of one directory (and what is beneath it) in this running job."""
        relpath = normalise_region(path)
        with self._lock:
            if relpath in self._regions:
                self._rescan_after.add(relpath)
            elif self._frontier.push(relpath):
                self._journal.put(PENDING, relpath)
        self._spill()
        self._ctx.wake(1)

    def is_done(self) -> bool:
        with self._lock:
            return (
                self._inflight == 0
                and not self._regions
                and not len(self._frontier)
                and not self._small
                and self._large.idle()
                and not self._refilling
            )

    def progress(self) -> Progress:
        with self._lock:
            pending = len(self._frontier) + sum(1 for r in self._regions.values() if not r.listed)
            c = self._counters
            total = c.bytes_scanned if pending == 0 else None
            return Progress(c.fields(pending), c.bytes_copied + c.bytes_skipped, total, c.bytes_copied)

    def _state(self) -> dict[str, Any]:
        counters = self._counters.to_json()
        failures = counters.pop("failures")
        return {"version": 1, "counters": counters, "failures": failures, "complete": self._complete}

    def checkpoint(self) -> dict[str, Any]:
        """Write what finished since the last call to ``work_items``; return the small summary."""
        with self._db_lock:
            with self._lock:
                ops = self._journal.drain()
                state = self._state()
                complete = self._complete
            if complete:
                return state
            ops[(META, "state")] = state
            try:
                self._store.apply(ops)
            except Exception:
                log.exception("checkpoint failed", action="checkpoint_failed", migration_id=self._ctx.spec.job_id)
                with self._lock:
                    for key, value in ops.items():
                        self._journal.restore(key, value)
        return state

    def finish(self) -> None:
        """Everything landed: forget the job's work rows (a later pass starts a fresh scan)."""
        self.checkpoint()
        with self._db_lock, self._lock:
            self._complete = True
        self._store.clear()

    def close(self) -> None:
        with self._lock:
            listings = [region.listing for region in self._regions.values()]
        for listing in listings:
            listing.close()
        if not self._complete:
            self.checkpoint()
