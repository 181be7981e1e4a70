"""The global scan pool: named worker threads leased to running jobs by grant.

Rules this class enforces (SPEC sections 4 and 8):

* grants are the cluster's: the leader computes them for every node (:mod:`app.db.ledger`) and
  the coordinator hands this node's to :meth:`ScanPool.set_grants`;
* a worker starts a unit for a run only while the run's active count is below its grant, the
  pool's active count is below ``global.scan.limit``, and the node still holds its leases
  (``may_start``: a node that could not renew them in time starts nothing);
* a smaller grant therefore takes effect as units finish; nothing is interrupted;
* the number of threads follows ``min(limit, sum of grants)``: surplus threads exit when idle;
* a run waiting to open again (its server unreachable) claims nothing and gets no thread until
  its next try is due; a timer then gives it its grant back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from app.engines.base import Unit, WorkerSlot
from app.policy.allocation import (
    Claim,
    Grant,
    PoolPolicy,
    allocate,
    percentage_of,
    requested_threads,
    serving_order,
)
from app.policy.properties import DEFAULT_CONFIG
from app.pool.run import RunHandle, StopReason, UnitOutcome

log = structlog.get_logger(__name__)

#: Seconds an idle worker sleeps before it looks for work again unasked.
IDLE_WAIT = 0.5


@dataclass(frozen=True, slots=True)
class RunStats:
    job_id: str
    kind: str
    priority: str
    percentage: float
    source: str
    requested: int
    granted: int
    active: int
    units_completed: int
    units_failed: int


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    limit: int
    threads: int
    active: int
    runs: list[RunStats] = field(default_factory=list)

    @property
    def allocated(self) -> int:
        return sum(run.granted for run in self.runs)


UnitObserver = Callable[[RunHandle, Unit, float, UnitOutcome], None]


class ScanPool:
    def __init__(
        self,
        policy: PoolPolicy = DEFAULT_CONFIG.pool,
        on_unit: UnitObserver | None = None,
        may_start: Callable[[], bool] = lambda: True,
        *,
        cluster_grants: bool = False,
    ) -> None:
        """``cluster_grants``: grants come from :meth:`set_grants` (a node of the cluster); else
        the pool allocates its runs' grants itself (a pool on its own, as engine tests drive it)."""
        self._cond = threading.Condition()
        self._cluster_grants = cluster_grants
        self._policy = policy
        self._may_start = may_start
        self._granted: dict[str, int] = {}
        self._runs: dict[str, RunHandle] = {}
        self._order: list[RunHandle] = []
        self._active = 0
        self._threads: dict[int, threading.Thread] = {}
        self._closed = False
        self._on_unit = on_unit
        self.peak_active = 0

    # -- membership and policy -----------------------------------------------------------------

    def add(self, run: RunHandle) -> None:
        with self._cond:
            self._runs[run.job_id] = run
            self._rebalance()

    def remove(self, job_id: str) -> RunHandle | None:
        with self._cond:
            run = self._runs.pop(job_id, None)
            self._granted.pop(job_id, None)
            self._rebalance()
            return run

    def set_grants(self, grants: Mapping[str, int]) -> None:
        """The threads the cluster's leader granted to this node's runs (absent: none)."""
        with self._cond:
            if dict(grants) != self._granted:
                self._granted = dict(grants)
                self._rebalance()

    def get(self, job_id: str) -> RunHandle | None:
        with self._cond:
            return self._runs.get(job_id)

    def runs(self) -> list[RunHandle]:
        with self._cond:
            return list(self._order)

    def set_policy(self, policy: PoolPolicy) -> None:
        with self._cond:
            if policy != self._policy:
                self._policy = policy
                self._rebalance()

    def update_claim(self, job_id: str, claim: Claim) -> None:
        """A running job's priority or override changed."""
        with self._cond:
            run = self._runs.get(job_id)
            if run is not None and run.claim != claim:
                run.claim = claim
                self._rebalance()

    def stop(self, job_id: str, reason: StopReason) -> None:
        """Stop handing out units of a run; its threads go to the others as its units end."""
        run = self.get(job_id)
        if run is None:
            return
        run.request_stop(reason)
        with self._cond:
            self._rebalance()

    def _rebalance(self) -> None:
        # A stopping run starts no more units, so it is granted nothing; the pool-wide limit on
        # threads at work still counts its units in flight. Nor is a run waiting to open.
        now = time.monotonic()
        if not self._cluster_grants:
            claims = (run.claim for run in self._runs.values() if run.stop_reason is None and not _waiting(run, now))
            self._granted = {job: grant.granted for job, grant in allocate(claims, self._policy).items()}
        for run in self._runs.values():
            percentage, source = percentage_of(run.claim, self._policy)
            requested = requested_threads(percentage, self._policy)
            # Never more than the policy in force here allows: a shrink applies before the
            # leader's next grants reach this node.
            idle = run.stop_reason is not None or _waiting(run, now)
            granted = 0 if idle else min(self._granted.get(run.job_id, 0), requested)
            # Not open yet (first open, or trying again after its server was unreachable): the
            # open is its one unit, so it is granted one thread until it is open.
            run.grant_capped = not run.opened
            if run.grant_capped:
                granted = min(granted, 1)
            run.grant = Grant(percentage, source, requested, granted)
        ordered = serving_order(run.claim for run in self._runs.values())
        self._order = [self._runs[claim.job_id] for claim in ordered]
        self._spawn_threads()
        self._cond.notify_all()

    def _wanted_threads(self) -> int:
        return min(self._policy.limit, sum(run.grant.granted for run in self._runs.values()))

    def _spawn_threads(self) -> None:
        if self._closed:
            return
        while len(self._threads) < self._wanted_threads():
            index = next(i for i in range(len(self._threads) + 1) if i not in self._threads)
            slot = WorkerSlot(index, f"ferry-pool-{index}")
            thread = threading.Thread(target=self._work, args=(slot,), name=slot.name, daemon=True)
            self._threads[index] = thread
            thread.start()

    def wake(self, n: int = 1) -> None:
        with self._cond:
            for run in self._runs.values():
                run.starved_until = 0.0
            self._cond.notify(n)

    # -- the workers ---------------------------------------------------------------------------

    def _reserve(self) -> RunHandle | None:
        """Under the lock: pick the first run in serving order that may take one more thread."""
        if self._active >= self._policy.limit or not self._may_start():
            return None
        now = time.monotonic()
        for run in self._order:
            if run.active < run.grant.granted and run.starved_until <= now and not _waiting(run, now):
                run.active += 1
                self._active += 1
                self.peak_active = max(self.peak_active, self._active)
                return run
        return None

    def _release(self, run: RunHandle) -> None:
        run.active -= 1
        self._active -= 1

    def _work(self, slot: WorkerSlot) -> None:
        while True:
            with self._cond:
                run = self._reserve()
                while run is None:
                    if self._closed or len(self._threads) > self._wanted_threads():
                        del self._threads[slot.index]
                        return
                    self._cond.wait(IDLE_WAIT)
                    run = self._reserve()
            unit = None
            try:
                unit = run.take_unit()
                if unit is not None:
                    started = time.perf_counter()
                    outcome = run.run_unit(unit, slot)
                    if self._on_unit is not None:
                        self._on_unit(run, unit, time.perf_counter() - started, outcome)
            except Exception as exc:  # an engine bug (next_unit raised): fail the job, keep the thread
                log.exception("pool worker error", action="worker_error", migration_id=run.job_id)
                run.fail(f"internal error in the {run.kind} engine: {exc!r}")
            finally:
                with self._cond:
                    self._release(run)
                    due = run.waiting_until() if unit is not None else None
                    if due is not None:  # its open failed: its threads go to others meanwhile
                        self._rebalance()
                        self._wake_at(due)
                    elif run.grant_capped and run.opened:  # it opened: its whole grant now
                        self._rebalance()
                    elif unit is None:
                        run.starved_until = time.monotonic() + IDLE_WAIT
                    else:
                        # The unit may have made more work, of its run or (by freeing a
                        # thread) of another run: let one more worker look.
                        for other in self._runs.values():
                            other.starved_until = 0.0
                        self._cond.notify()

    def _wake_at(self, due: float) -> None:
        """Give runs waiting to open their grants back once ``due`` (monotonic) has come."""
        timer = threading.Timer(max(0.0, due - time.monotonic()), self._due)
        timer.name, timer.daemon = "ferry-pool-alarm", True
        timer.start()

    def _due(self) -> None:
        with self._cond:
            self._rebalance()

    # -- reading and closing -------------------------------------------------------------------

    def snapshot(self) -> PoolSnapshot:
        with self._cond:
            runs = [
                RunStats(
                    job_id=run.job_id,
                    kind=run.kind,
                    priority=run.priority.name,
                    percentage=run.grant.percentage,
                    source=run.grant.source,
                    requested=run.grant.requested,
                    granted=run.grant.granted,
                    active=run.active,
                    units_completed=run.units_completed,
                    units_failed=run.units_failed,
                )
                for run in self._order
            ]
            return PoolSnapshot(self._policy.limit, len(self._threads), self._active, runs)

    @property
    def policy(self) -> PoolPolicy:
        return self._policy

    def inflight(self) -> int:
        with self._cond:
            return sum(run.inflight for run in self._runs.values())

    def close(self, timeout: float) -> bool:
        """Let every thread exit; True when all did within ``timeout``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads.values())
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)


def _waiting(run: RunHandle, now: float) -> bool:
    due = run.waiting_until()
    return due is not None and due > now
