"""The JobRun of a files copy: hands out listing and copy units, keeps the frontier, checkpoints.

State lives under one lock and every critical section is short; file I/O happens in units (or,
for finishing a directory, in ``unit_finished`` after the lock is released). Database writes
happen in :meth:`CopyRun.checkpoint`, in spills and in refills, all through the run's
:class:`app.engines.files.durable.DurableFrontier`.

What is persisted is finished work only: a region leaves ``pending`` when its listing is complete
(its children are queued in the same write), leaves ``active`` when its last file landed, and a
large file's range is recorded once written. A resume therefore relists at most the regions in
flight (their finished files compare equal and are not copied again) and redoes at most the
ranges in flight.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from app.db.leases import LeaseLost
from app.engines.base import JobContext, JobFailed, Progress, Unit
from app.engines.files.copy import finish_dir
from app.engines.files.counters import Counters
from app.engines.files.durable import DurableFrontier, FrontierRun
from app.engines.files.failures import Failures, Retry, What
from app.engines.files.helpers import Helpers
from app.engines.files.largefiles import LargeFiles
from app.engines.files.listing import FileTask, Listing, Roots, StepResult, reason
from app.engines.files.options import Durability, FilesOptions, ScanType
from app.engines.files.policy import Meta, is_large
from app.engines.files.regions import normalise_region, parent_region
from app.engines.files.smallfiles import Budget, Outcome
from app.engines.files.store import ACTIVE, FAILED, PARTIAL, Store
from app.engines.files.syncfs import syncfs
from app.engines.files.tuning import Tuning
from app.engines.files.units import BatchUnit, Deferred, Env, ListUnit, RangeUnit

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


class CopyRun(FrontierRun):
    def __init__(
        self,
        ctx: JobContext,
        options: FilesOptions,
        source: Path,
        target: Path,
        tuning: Tuning,
        helpers: Helpers | None = None,
        sync: Callable[[Path], None] = syncfs,
    ) -> None:
        self._ctx = ctx
        self._tuning = tuning
        self._roots = Roots(source, target, options, options.excluder)
        fsync = options.durability is Durability.FILE
        self._env = Env(source, target, fsync, ctx.bandwidth, ctx.stopping, helpers)
        self._budget = Budget(tuning.inline_files, tuning.inline_bytes, tuning.inline_seconds, tuning.range_size)
        self._lock = threading.Lock()
        self._frontier = DurableFrontier(
            Store(ctx.db, ctx.spec.job_id), self._lock,
            lifo=options.scan_type is ScanType.DEPTH_FIRST, bound=tuning.frontier_bound, refill=tuning.refill,
            state_of=self._state, changes=self._changes, every=tuning.checkpoint_every,
            sync=(lambda: sync(target)) if options.durability is Durability.CHECKPOINT else None,
        )  # fmt: skip
        self._journal = self._frontier.journal
        self._counters = Counters()
        self._failures = Failures(self._journal)
        #: Whether this run has tried its failures again at the end of its pass (it does once).
        self._retried = False
        self._regions: dict[str, Region] = {}
        self._continuations: deque[Region] = deque()
        self._small: deque[FileTask] = deque()
        self._relist: set[str] = set()
        self._large = LargeFiles(
            self._env, tuning.range_size, self._counters, self._failures, self._journal, self._lock, self._file_done
        )
        self._rescan_after: set[str] = set()
        self._inflight = 0
        #: Set once :meth:`is_done` said True: the pass is over and the pool finishes the run, so
        #: a rescan asked for from then on is the next run's.
        self._ended = False
        #: Target directories this run created.
        self._made = 0

    # -- opening -------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the target root, then restore the last checkpoint or queue the root region."""
        try:
            os.makedirs(self._roots.target, exist_ok=True)
        except OSError as exc:
            raise JobFailed(f"cannot create the target {self._roots.target}: {reason(exc)}") from exc
        fresh = self._ctx.checkpoint is None or self._ctx.incremental
        restored = None if fresh else self._frontier.restore()
        if restored is None:
            self._frontier.start_fresh()
            self._frontier.baseline()
            return
        state = restored.state
        counters = Counters.from_json(state.get("counters"))
        for name in counters.__slots__:  # the same object is shared with the large-file helper
            setattr(self._counters, name, getattr(counters, name))
        self._large.partials = self._frontier.store.load(PARTIAL)
        self._failures.restore(self._frontier.store.load(FAILED))
        self._relist = restored.relist
        self._roots = dataclasses.replace(self._roots, untrusted_since=restored.untrusted_since)
        self._frontier.baseline()

    # -- handing out units ---------------------------------------------------------------------

    def _pick(self) -> Unit | None:
        if not self._retried and self._failures and self._pass_over():
            self._retried = True
            for retry in self._failures.try_again():
                self._queue_retry(retry)
        room = len(self._small) + self._large.queued() < self._tuning.queue_bound
        if room and self._continuations:
            return ListUnit([self._continuations.popleft().listing], self._tuning.list_step, self._env, self._paced())
        if room and (unit := self._start_region()) is not None:
            return unit
        if self._small:
            return self._batch()
        return self._large.next()

    def _queue_retry(self, retry: Retry) -> None:
        """Queue a region to try failed entries again (under the lock; nothing is in flight)."""
        if not retry.relist:
            self._relist.discard(retry.region)
            self._frontier.push(retry.region)
        elif self._frontier.push(retry.region):
            self._relist.add(retry.region)
            self._journal.put(ACTIVE, retry.region)  # restored as a relist, too

    def _start_region(self) -> ListUnit | None:
        if self._frontier.lifo and self._regions:
            return None  # DEPTH_FIRST: one region at a time
        # Several regions per unit while many wait, one as the frontier runs dry (so the last
        # units spread over the workers rather than queue behind one long unit).
        group = 1 if self._frontier.lifo else max(1, min(self._tuning.list_group, self._frontier.in_memory // 8))
        listings: list[Listing] = []
        while len(listings) < group and (popped := self._frontier.pop()) is not None:
            relpath, fresh = popped
            if relpath in self._regions:
                self._rescan_after.add(relpath)
                continue
            relist = relpath in self._relist
            self._relist.discard(relpath)
            keep = frozenset(
                str(p["temp"]) for k, p in self._large.partials.items() if parent_region(k) == relpath and p
            )
            listing = Listing(self._roots, relpath, fresh=fresh, relist=relist, keep=keep)
            self._regions[relpath] = Region(relpath, listing, relist)
            listings.append(listing)
        return ListUnit(listings, self._tuning.list_step, self._env, self._paced()) if listings else None

    def _paced(self) -> Budget:
        """What a listing unit may copy inline: never a file its own range unit should copy."""
        return dataclasses.replace(self._budget, range_size=self._large.range_size())

    def _batch(self) -> BatchUnit:
        tasks: list[FileTask] = []
        size = 0
        # About half a second of work at the link's speed (a file is never more: see _enqueue).
        most = min(self._tuning.batch_bytes, self._large.range_size())
        while self._small and len(tasks) < self._tuning.batch_files and size < most:
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
            queued = len(self._small) + self._large.queued() + len(self._continuations)
            last = self._inflight == 0 and self._ctx.stopping.is_set()
        for action in after:
            action()
        self._frontier.spill()
        if last:
            # Stopping, and this was the last unit in flight: write the last checkpoint now, on
            # this pool thread, before the run settles (once settled it may be deleted at once).
            self._frontier.write(clean=True)
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
            self._failures.add(region.relpath, f"directory not listed: {reason(result)}", What.DIRECTORY)
            if region.meta is None:
                del self._regions[region.relpath]
                self._frontier.listed(region.relpath)
                return
        else:
            self._merge(region, result)
            if not result.done:
                self._continuations.append(region)
                return
        region.listed = True
        self._frontier.listed(region.relpath)
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
        c.directories_deleted += result.directories_deleted
        c.files_vanished += result.vanished
        for path, why, what in result.failures:
            self._failures.add(path, why, what)
        children = sorted(result.children, reverse=self._frontier.lifo)
        for child, fresh in children:
            self._made += fresh
            self._frontier.push(child, fresh)
        for task in result.tasks:
            self._enqueue(region, task)

    def _enqueue(self, region: Region, task: FileTask) -> None:
        region.outstanding += 1
        if not is_large(task.meta.size, self._large.range_size()):
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
            elif outcome is Outcome.VANISHED:
                c.files_vanished += 1
            else:
                self._failures.add(task.relpath, why)
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
                    self._failures.add(region.relpath, f"directory not finished: {reason(exc)}", What.UNFINISHED)
            with self._lock:
                self._failures.region_done(region.relpath)
                self._regions.pop(region.relpath, None)
                self._journal.delete(ACTIVE, region.relpath)
                if region.relpath in self._rescan_after:
                    self._rescan_after.discard(region.relpath)
                    self._frontier.push(region.relpath)

        return finish

    # -- the rest of the JobRun contract -------------------------------------------------------

    def add_pending_region(self, path: str) -> bool:
        """Queue a rescan of one directory (and what is beneath it) in this running job; False
        when the pass has already ended (the region is the next run's to list)."""
        relpath = normalise_region(path)
        with self._lock:
            if self._ended:
                return False
            if relpath in self._regions:
                self._rescan_after.add(relpath)
            else:
                self._frontier.push(relpath)
        self._frontier.spill()
        self._ctx.wake(1)
        return True

    def is_done(self) -> bool:
        """Whether the pass is over (failures tried again): once True, the pool finishes the run."""
        with self._lock:
            self._ended = self._ended or (self._pass_over() and (self._retried or not self._failures))
            return self._ended

    def _pass_over(self) -> bool:
        """Nothing is left to list or copy, and nothing is in flight (under the lock)."""
        return (
            self._inflight == 0
            and not self._regions
            and not len(self._frontier)
            and not self._small
            and self._large.idle()
            and not self._frontier.refilling
        )

    def progress(self) -> Progress:
        with self._lock:
            pending = len(self._frontier) + sum(1 for r in self._regions.values() if not r.listed)
            c = self._counters
            total = c.bytes_scanned if pending == 0 else None
            fields = c.fields(pending, len(self._failures))
            return Progress(fields, c.bytes_copied + c.bytes_skipped, total, c.bytes_copied)

    def _changes(self) -> int:
        """A count that grows with every change this run made to the target (under the lock)."""
        c = self._counters
        return c.files_copied + c.bytes_copied + c.files_deleted + c.directories_deleted + self._made

    def _state(self) -> dict[str, Any]:
        counters = self._counters.to_json()
        failures = self._failures.recent()
        return {"version": 1, "counters": counters, "failures": failures, "complete": self._frontier.completed}

    def checkpoint(self) -> dict[str, Any]:
        """The small summary; the frontier writes checkpoints itself, off the coordinator's thread."""
        with self._lock:
            return self._state()

    def finish(self) -> None:
        """The pass is over. Everything landed: sync it, then forget the job's work rows (a later
        pass starts a fresh scan). Entries failed even when tried again: the pass FAILED, and its
        checkpoint (with the failures) stays for a resume to try them again."""
        self._frontier.write(clean=True)
        with self._lock:
            failed = len(self._failures)
        if failed:
            entries = "1 entry" if failed == 1 else f"{failed} entries"
            raise JobFailed(
                f"{entries} could not be copied, even when tried again: "
                f"GET /migrations/{self._ctx.spec.job_id}/failures lists them; resume tries them again"
            )
        self._frontier.complete()

    def close(self) -> None:
        with self._lock:
            listings = [region.listing for region in self._regions.values()]
        for listing in listings:
            listing.close()
        # The coordinator closes a run before it lets the job go, so this last write still holds
        # the lease; a run that lost it (another node runs the job) writes nothing.
        with contextlib.suppress(LeaseLost):
            self._frontier.write(clean=True)
