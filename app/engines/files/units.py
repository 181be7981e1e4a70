"""The units of work a files run hands to the pool: each does I/O only and records its outcome.

The run (:mod:`app.engines.files.engine`) reads the outcome in ``unit_finished`` and updates its
state; units never touch the run's state themselves.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from app.engines.bandwidth import BandwidthLimiter
from app.engines.base import WorkerSlot
from app.engines.files.copy import copy_range, create_temp, land_large, same_content
from app.engines.files.helpers import HelperLost, Helpers
from app.engines.files.listing import FileTask, Listing, StepResult
from app.engines.files.policy import gaps
from app.engines.files.smallfiles import Allowance, Budget, Outcome, copy_inline, copy_small_files


@dataclass(frozen=True, slots=True)
class Env:
    """What units need of the run: where, how hard to flush, and the shared limits."""

    source: Path
    target: Path
    fsync: bool
    limiter: BandwidthLimiter
    stopping: threading.Event
    #: Where small-file batches run; None: on the pool thread itself.
    helpers: Helpers | None = None


class Deferred(Enum):
    """A region a unit hands back unlisted: the regions before it spent most of its budget, so
    it is listed (and its files copied) by a unit of its own."""

    DEFERRED = "deferred"


DEFERRED = Deferred.DEFERRED


@dataclass(slots=True)
class ListUnit:
    """Steps of directory listings that also copy the small files they find, within a budget
    (the rest go to batches): a small directory usually costs no other unit.

    A unit may carry several regions not yet opened, so that a tree of many small directories is
    not dominated by the cost of handing out units. With helper processes, the small ones among
    them are listed, and their files copied, whole in one helper call; their files go to batches
    instead when a bandwidth limit is set (a helper cannot see the shared limiter; a batch takes
    its bytes from it before it starts). Steps on the pool thread copy nothing inline when there
    are helpers: copying there would queue for the GIL.
    """

    listings: list[Listing]
    step_entries: int
    env: Env
    budget: Budget
    #: One per listing, in order: its step's result, why it could not be listed, or DEFERRED.
    results: list[StepResult | Exception | Deferred] = field(default_factory=list)
    name: str = "list"

    def run(self, slot: WorkerSlot) -> None:
        env = self.env
        found: list[StepResult | Exception | Deferred | None] = [None] * len(self.listings)
        fresh = [i for i, listing in enumerate(self.listings) if listing.unopened]
        if env.helpers is not None and fresh:
            budget = self.budget if env.limiter.rate <= 0 else None
            try:
                answers = env.helpers.call(
                    list_small, [self.listings[i] for i in fresh], env.source, env.target, env.fsync, budget
                )
                for i, answer in zip(fresh, answers, strict=True):
                    found[i] = answer
            except HelperLost:
                pass  # list them here instead
        allowance = Allowance(self.budget)
        for i, listing in enumerate(self.listings):
            if found[i] is None and i and env.helpers is None and not allowance.ample():
                found[i] = DEFERRED
            elif found[i] is None:
                found[i] = self._step(listing, allowance)
        self.results = [answer for answer in found if answer is not None]

    def _step(self, listing: Listing, allowance: Allowance) -> StepResult | Exception:
        env = self.env
        try:
            result = listing.step(self.step_entries)
        except OSError as exc:
            return exc
        if env.helpers is None:
            copy_inline(result, env.source, env.target, env.fsync, allowance, env.limiter, env.stopping)
        return result


def list_small(
    listings: list[Listing], source: Path, target: Path, fsync: bool, budget: Budget | None
) -> list[StepResult | Exception | Deferred | None]:
    """In a helper: list each small directory from start to end in one step and copy what fits;
    None for a directory that is not small (the caller lists it in steps), DEFERRED for those
    met once the budget is mostly spent."""
    answers: list[StepResult | Exception | Deferred | None] = []
    allowance = Allowance(budget) if budget is not None else None
    for listing in listings:
        if answers and allowance is not None and not allowance.ample():
            answers.append(DEFERRED)
            continue
        if not listing.is_small():
            answers.append(None)
            continue
        try:
            result = listing.step(sys.maxsize)
        except OSError as exc:
            answers.append(exc)
            continue
        if allowance is not None:
            copy_inline(result, source, target, fsync, allowance)
        answers.append(result)
    return answers


@dataclass(slots=True)
class BatchUnit:
    """Small files, copied (or compared, then copied) one after another, in a helper process
    when the run has helpers (see :mod:`app.engines.files.helpers`)."""

    env: Env
    tasks: list[FileTask]
    outcomes: list[tuple[FileTask, Outcome, int, str]] = field(default_factory=list)
    name: str = "copy"

    def run(self, slot: WorkerSlot) -> None:
        env = self.env
        results: list[tuple[Outcome, int, str]] | None = None
        if env.helpers is not None:
            # The helper cannot see the shared limits: take the batch's bytes here, up front.
            env.limiter.acquire(sum(task.meta.size for task in self.tasks), env.stopping)
            if env.stopping.is_set():
                return
            try:
                results = env.helpers.call(copy_small_files, env.source, env.target, self.tasks, env.fsync)
            except HelperLost:
                results = None  # copy it here instead; files it landed compare equal
        if results is None:
            results = copy_small_files(env.source, env.target, self.tasks, env.fsync, env.limiter, env.stopping)
        self.outcomes.extend((task, *result) for task, result in zip(self.tasks, results, strict=False))


class Phase(Enum):
    COMPARE = "compare"
    COPY = "copy"


@dataclass(eq=False)
class LargeFile:
    """A file copied range by range; its ranges may run on several workers at once.

    Ranges are cut as workers take them (:meth:`cut`, under the run's lock), each as long as
    the link's speed calls for at that moment; ``done`` and ``done_bytes`` change under
    ``lock`` as ranges finish.
    """

    task: FileTask
    phase: Phase
    temp: Path | None = None
    #: Finished ranges: offset -> length.
    done: dict[int, int] = field(default_factory=dict)
    done_bytes: int = 0
    #: The parts not handed out yet, in order.
    todo: list[tuple[int, int]] = field(default_factory=list)
    #: Bytes compared so far (COMPARE phase).
    compared: int = 0
    mismatch: bool = False
    failed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.todo = gaps(self.task.meta.size, self.done.items())

    @property
    def size(self) -> int:
        return self.task.meta.size

    def cut(self, most: int) -> tuple[int, int] | None:
        """The next range to hand out, at most ``most`` bytes long; None when all are out."""
        if not self.todo:
            return None
        offset, length = self.todo[0]
        take = min(length, max(1, most))
        if take == length:
            self.todo.pop(0)
        else:
            self.todo[0] = (offset + take, length - take)
        return offset, take

    def copy_all(self) -> None:
        """Compared and found different: copy it whole."""
        self.phase, self.mismatch = Phase.COPY, False
        self.done, self.done_bytes = {}, 0
        self.todo = gaps(self.size, ())

    def payload(self) -> dict[str, object]:
        """The ``partial`` row: enough to continue mid-file after a restart."""
        meta = self.task.meta
        return {
            "temp": self.temp.name if self.temp else None,
            "size": meta.size,
            "mtime": meta.mtime_ns,
            "done": sorted([offset, length] for offset, length in self.done.items()),
        }


@dataclass(slots=True)
class RangeUnit:
    env: Env
    file: LargeFile
    offset: int
    length: int
    equal: bool = True
    landed: bool = False
    #: The unit failed because its file is gone from the source (not a failure of the copy).
    vanished: bool = False
    #: How long it took, bandwidth waits included: with its length, the link's speed.
    seconds: float = 0.0
    name: str = "range"

    def run(self, slot: WorkerSlot) -> None:
        started = time.monotonic()
        try:
            self._run()
        except FileNotFoundError:
            self.vanished = not os.path.lexists(self.env.source / self.file.task.relpath)
            raise
        finally:
            self.seconds = time.monotonic() - started

    def _run(self) -> None:
        lf, env = self.file, self.env
        src, dst = env.source / lf.task.relpath, env.target / lf.task.relpath
        if lf.failed or lf.mismatch:
            return
        if lf.phase is Phase.COMPARE:
            self.equal = same_content(src, dst, self.offset, self.length)
            return
        with lf.lock:
            if lf.temp is None:
                fd, lf.temp = create_temp(dst.parent, lf.task.meta.size)
                os.close(fd)
            temp = lf.temp
        copy_range(src, temp, self.offset, self.length, env.limiter, env.stopping, env.fsync)
        with lf.lock:
            lf.done[self.offset] = self.length
            lf.done_bytes += self.length
            last = lf.done_bytes >= lf.size
        if last:
            land_large(src, temp, dst, lf.task.meta, env.fsync)
            self.landed = True
