"""The frontier of a files run with its database half: restore, spill, refill, checkpoint writing.

Both runs of the files engine (the copy and the verification) hold one :class:`DurableFrontier`
and share :class:`FrontierRun`'s way of handing out units. The in-memory part is
:class:`app.engines.files.frontier.Frontier`; the rows are :class:`app.engines.files.store.Store`'s.

Locks: the run's own lock guards the in-memory state (methods documented "under the run's lock"
are called with it held); ``db_lock`` serialises database writes, taken *before* the run's lock,
so that a spill or a refill never interleaves with a checkpoint's write. No method holds the
run's lock across a database write.

Durability (the ``checkpoint`` setting, when the frontier has a ``sync``): a checkpoint drains
the journal of finished work, syncs the target filesystem, and only then writes, so whatever a
checkpoint records as done is on stable storage. The sync is slow (it writes back everything
dirty), so checkpoints are written by a unit of their own on a pool thread every ``every``
seconds, never on the coordinator's thread; the last one is written by ``close``. Each records
the wall-clock time its sync began and whether the run stopped cleanly (synced at the stop). A
run restored from an unclean stop (kill -9, power cut, a lost node) trusts no target file whose
inode changed after the last recorded sync: :attr:`Restored.untrusted_since`, kept until the run
completes, since a later clean stop does not vouch for files that an earlier power cut emptied.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from app.db.leases import LeaseLost
from app.engines.base import JobContext, Unit, WorkerSlot
from app.engines.files.frontier import Frontier, Journal
from app.engines.files.store import ACTIVE, META, PENDING, SPILL, Store

log = structlog.get_logger(__name__)

#: Slack on the horizon of trusted files: the kernel stamps a file's ctime from a coarse clock,
#: which may run a little behind the wall clock read just before a sync.
CLOCK_SLACK_NS = 1_000_000_000


@dataclass(slots=True)
class RefillUnit:
    """Take spilled regions back from the database (the frontier does it; this carries it to a worker)."""

    refill: Callable[[], None]
    name: str = "refill"

    def run(self, slot: WorkerSlot) -> None:
        self.refill()


@dataclass(slots=True)
class CheckpointUnit:
    """Sync the target and write a checkpoint, on a pool thread (see the module's docstring)."""

    write: Callable[[], None]
    name: str = "checkpoint"

    def run(self, slot: WorkerSlot) -> None:
        self.write()


@dataclass(slots=True)
class Restored:
    """What :meth:`DurableFrontier.restore` found of the last checkpoint."""

    #: The ``meta`` row ``state`` the run wrote with its last checkpoint.
    state: dict[str, Any]
    #: Regions that were listed but whose files were not all done: list them again, as relists.
    relist: set[str] = field(default_factory=set)
    #: After an unclean stop: wall-clock ns from which a target file's ctime makes it untrusted
    #: (copied again even if it looks equal); None when every target file may be trusted.
    untrusted_since: int | None = None


class DurableFrontier:
    """Pending regions in memory and in ``work_items``; the journal of finished work.

    With ``state_of`` (the copy: the run's ``meta`` state, called under its lock) each queued
    region is recorded as a ``pending`` row at the next checkpoint, so that a restart restores
    the frontier, and checkpoints are written every ``every`` seconds, after ``sync`` when there
    is one. Without it (the verification, which always starts afresh) only spilled regions reach
    the database. ``changes`` (under the run's lock) counts what the run changed in the target
    so far; a sync is skipped while it stays the same (a no-op rescan syncs nothing).
    """

    def __init__(self, store: Store, lock: threading.Lock, *, lifo: bool, bound: int, refill: int,
                 state_of: Callable[[], dict[str, Any]] | None = None, sync: Callable[[], None] | None = None,
                 changes: Callable[[], int] = lambda: 1, every: float = 2.0) -> None:  # fmt: skip
        self.store = store
        self.lock = lock
        self.db_lock = threading.Lock()
        self.journal = Journal()
        self._memory = Frontier(lifo, bound)
        self._refill_size = refill
        self._state_of = state_of
        self._journalled = state_of is not None
        self._sync = sync
        self._changes = changes
        #: ``changes()`` when the last sync began: a pass that has changed nothing since needs none.
        self._changes_synced: int | None = None
        self._every = every
        self._next_write = time.monotonic() + every
        self.refilling = False
        self.writing = False
        #: Wall-clock ns when the sync behind the last checkpoint began (or the run started afresh).
        self._synced_at = time.time_ns()
        self._untrusted_since: int | None = None
        #: Set by :meth:`complete`: the run is over and its rows are gone; nothing is written.
        self.completed = False

    # -- opening -------------------------------------------------------------------------------

    def start_fresh(self) -> None:
        """Forget the job's rows (of this store) and queue the root region."""
        self.store.clear()
        self._synced_at, self._untrusted_since = time.time_ns(), None
        self.push("")

    def restore(self) -> Restored | None:
        """Queue the regions of the last checkpoint; None (nothing queued) when there is none."""
        state = self.store.load(META).get("state")
        if not isinstance(state, dict):
            return None
        restored = Restored(state, set(self.store.load(ACTIVE)), self._untrusted(state.get("durable")))
        self._untrusted_since = restored.untrusted_since
        for relpath in sorted(restored.relist):
            self._memory.push(relpath)
        for relpath in sorted(self.store.load(PENDING)):
            self._memory.push(relpath)
        self._memory.spilled = self.store.count(SPILL)
        self.spill()
        return restored

    def baseline(self) -> None:
        """What the run has changed so far needs no sync (called once it is open: nothing of a
        fresh pass is written yet, and a restored run copies again what it cannot trust)."""
        self._changes_synced = self._changes()

    def _untrusted(self, durable: Any) -> int | None:
        durable = durable if isinstance(durable, dict) else {}
        self._synced_at = int(durable.get("syncedAt") or 0)
        carried = durable.get("untrustedSince")
        untrusted = carried if isinstance(carried, int) else None
        if self._sync is not None and not durable.get("clean"):
            horizon = self._synced_at - CLOCK_SLACK_NS
            untrusted = horizon if untrusted is None else min(untrusted, horizon)
        return untrusted

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

    def checkpoint_unit(self) -> CheckpointUnit | None:
        """A unit that writes a checkpoint, when one is due and none is under way."""
        if self._state_of is None or self.writing or self.completed or time.monotonic() < self._next_write:
            return None
        self.writing = True
        return CheckpointUnit(self._periodic)

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
        except LeaseLost:
            raise  # another node runs the job now: the run stops
        except Exception as exc:
            log.warning("refill failed", action="refill_failed", error=str(exc) or type(exc).__name__)
        finally:
            with self.lock:
                self.refilling = False

    def _periodic(self) -> None:
        try:
            self.write()
        finally:
            with self.lock:
                self.writing = False
                self._next_write = time.monotonic() + self._every

    def write(self, clean: bool = False) -> None:
        """Write what finished since the last call with the run's ``meta`` state, in one
        transaction, after syncing the target when the frontier has a sync and anything finished
        (always, when ``clean``: the run is stopping and all it landed must be trusted). On failure
        keep it for the next call. Once the run is complete nothing is written."""
        if self._state_of is None:
            return
        with self.db_lock:
            with self.lock:
                state = self._state_of()
                if self.completed:
                    return
                ops = self.journal.drain()
                changes = self._changes()
            synced = self._synced_at
            try:
                if self._sync is not None and (ops or clean) and changes != self._changes_synced:
                    synced = time.time_ns()
                    self._sync()
                    self._changes_synced = changes
                state["durable"] = {"syncedAt": synced, "clean": clean, "untrustedSince": self._untrusted_since}
                ops[(META, "state")] = state
                self.store.apply(ops)
            except LeaseLost:
                raise  # another node runs the job now: the run stops, writing nothing more
            except Exception:
                log.exception("checkpoint failed", action="checkpoint_failed", migration_id=self.store.job_id)
                with self.lock:
                    for key, value in ops.items():
                        self.journal.restore(key, value)
                return
            self._synced_at = synced

    def complete(self) -> None:
        """The run is complete: forget its rows of this store, and write none again."""
        with self.db_lock:
            with self.lock:
                self.completed = True
            self.store.clear()


class FrontierRun:
    """What both files runs share: one lock, the units in flight, checkpoints and refills.

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
            unit: Unit | None = self._frontier.checkpoint_unit()
            if unit is None:
                unit = self._pick()
            if unit is None:
                unit = self._frontier.refill_unit()
            if unit is not None:
                self._inflight += 1
            return unit

    def _pick(self) -> Unit | None:
        """The run's next unit of its own (under its lock), or None."""
        raise NotImplementedError
