"""The frontier of a files run with its database half: restore, spill, refill, checkpoint writing.

Both runs of the files engine (the copy and the verification) hold one :class:`DurableFrontier`
and share :class:`FrontierRun`'s way of handing out units. The in-memory part is
:class:`app.engines.files.frontier.Frontier`; the rows are :class:`app.engines.files.store.Store`'s.

Locks: the run's own lock guards the in-memory state (methods documented "under the run's lock"
are called with it held); ``db_lock`` serialises database writes, taken *before* the run's lock,
so that a spill or a refill never interleaves with a checkpoint's write. No method holds the
run's lock across a database write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from app.engines.base import JobContext, Unit, WorkerSlot
from app.engines.files.frontier import Frontier, Journal
from app.engines.files.store import ACTIVE, META, PENDING, SPILL, Store

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class RefillUnit:
    """Take spilled regions back from the database (the frontier does it; this carries it to a worker)."""

    refill: Callable[[], None]
    name: str = "refill"

    def run(self, slot: WorkerSlot) -> None:
        self.refill()


@dataclass(slots=True)
class Restored:
    """What :meth:`DurableFrontier.restore` found of the last checkpoint."""

    #: The ``meta`` row ``state`` the run wrote with its last checkpoint.
    state: dict[str, Any]
    #: Regions that were listed but whose files were not all done: list them again, as relists.
    relist: set[str] = field(default_factory=set)


class DurableFrontier:
    """Pending regions in memory and in ``work_items``; the journal of finished work.

    ``journalled`` (the copy) records each queued region as a ``pending`` row at the next
    checkpoint, so that a restart restores the frontier; without it (the verification, which
    always starts afresh) only spilled regions reach the database.
    """

    def __init__(self, store: Store, lock: threading.Lock, *, lifo: bool, bound: int, refill: int,
                 journalled: bool = True) -> None:  # fmt: skip
        self.store = store
        self.lock = lock
        self.db_lock = threading.Lock()
        self.journal = Journal()
        self._memory = Frontier(lifo, bound)
        self._refill_size = refill
        self._journalled = journalled
        self.refilling = False
        #: Set by :meth:`complete`: the run is over and its rows are gone; nothing is written.
        self.completed = False

    # -- opening -------------------------------------------------------------------------------

    def start_fresh(self) -> None:
        """Forget the job's rows (of this store) and queue the root region."""
        self.store.clear()
        self.push("")

    def restore(self) -> Restored | None:
        """Queue the regions of the last checkpoint; None (nothing queued) when there is none."""
        state = self.store.load(META).get("state")
        if not isinstance(state, dict):
            return None
        restored = Restored(state, set(self.store.load(ACTIVE)))
        for relpath in sorted(restored.relist):
            self._memory.push(relpath)
        for relpath in sorted(self.store.load(PENDING)):
            self._memory.push(relpath)
        self._memory.spilled = self.store.count(SPILL)
        self.spill()
        return restored

    # -- the queue, under the run's lock -------------------------------------------------------

    @property
    def lifo(self) -> bool:
        return self._memory.lifo

    @property
    def in_memory(self) -> int:
        return self._memory.in_memory

    def __len__(self) -> int:
        return len(self._memory)

    def push(self, relpath: str, fresh: bool = False) -> bool:
        """Queue a region (journalled as pending); False when it is already queued in memory."""
        if not self._memory.push(relpath, fresh):
            return False
        if self._journalled:
            self.journal.put(PENDING, relpath)
        return True

    def pop(self) -> tuple[str, bool] | None:
        """The next region and whether ferry created its target directory in this run."""
        relpath = self._memory.pop()
        if relpath is None:
            return None
        fresh = relpath in self._memory.fresh
        self._memory.fresh.discard(relpath)
        return relpath, fresh

    def listed(self, relpath: str) -> None:
        """A region's listing is over (its children queued): it is no longer pending."""
        if self._journalled:
            self.journal.delete(PENDING, relpath)

    def refill_unit(self) -> RefillUnit | None:
        """A unit that takes spilled regions back, when memory ran dry and none is under way."""
        if self._memory.in_memory or not self._memory.spilled or self.refilling:
            return None
        self.refilling = True
        return RefillUnit(self._refill)

    # -- database writes, without the run's lock ------------------------------------------------

    def spill(self) -> None:
        """Move the regions past the memory bound to ``spill`` rows."""
        if self._memory.in_memory <= self._memory.bound:
            return
        with self.db_lock:
            with self.lock:
                excess = self._memory.take_excess()
                if self._journalled:
                    for relpath in excess:
                        self.journal.delete(PENDING, relpath)
            if excess:
                self.store.spill(excess)

    def _refill(self) -> None:
        try:
            with self.db_lock:
                relpaths = self.store.refill(self._refill_size)
                with self.lock:
                    self._memory.restore(relpaths)
                    if not relpaths:
                        self._memory.spilled = 0
        except Exception as exc:
            log.warning("refill failed", action="refill_failed", error=str(exc) or type(exc).__name__)
        finally:
            with self.lock:
                self.refilling = False

    def write(self, state_of: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Write what finished since the last call, with the ``meta`` state ``state_of()`` gives
        (called under the run's lock), in one transaction; on failure keep it for the next call.
        Once the run is complete nothing is written."""
        with self.db_lock:
            with self.lock:
                state = state_of()
                if self.completed:
                    return state
                ops = self.journal.drain()
            ops[(META, "state")] = state
            try:
                self.store.apply(ops)
            except Exception:
                log.exception("checkpoint failed", action="checkpoint_failed", migration_id=self.store.job_id)
                with self.lock:
                    for key, value in ops.items():
                        self.journal.restore(key, value)
        return state

    def complete(self) -> None:
        """The run is complete: forget its rows of this store, and write none again."""
        with self.db_lock:
            with self.lock:
                self.completed = True
            self.store.clear()


class FrontierRun:
    """What both files runs share: one lock, the units in flight, and refills of the frontier.

    A subclass sets ``_ctx``, ``_lock``, ``_frontier`` and ``_inflight`` and says in :meth:`_pick` which of its
    own units comes next; refills come when it has none.
    """

    _ctx: JobContext
    _lock: threading.Lock
    _frontier: DurableFrontier
    _inflight: int

    def next_unit(self) -> Unit | None:
        with self._lock:
            if self._ctx.stopping.is_set():
                return None
            unit = self._pick()
            if unit is None:
                unit = self._frontier.refill_unit()
            if unit is not None:
                self._inflight += 1
            return unit

    def _pick(self) -> Unit | None:
        """The run's next unit of its own (under its lock), or None."""
        raise NotImplementedError
