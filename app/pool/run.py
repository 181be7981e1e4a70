"""One job running in the pool: its phase, its threads, and the units it hands out.

A run goes OPENING -> COPYING -> FINISHING -> DONE, with ``open`` and ``finish`` executed as
units of their own so that no engine I/O ever happens on the coordinator or a web thread. When
``open`` finds a source or target unreachable (:class:`Unreachable`) the run goes WAITING: it
hands out no unit, and claims no thread, until its next try is due (the engine's backoff, until
its timeout), then OPENING again; meanwhile :attr:`RunHandle.notice` says what it waits for. A stop
(user or shutdown) or a failure stops the handing out of units; the run is *settled* once
nothing is in flight, and the coordinator then records the outcome.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from app.db.leases import LeaseLost
from app.engines.base import (
    Engine,
    JobContext,
    JobFailed,
    JobRun,
    Progress,
    Unit,
    UnitInterrupted,
    Unreachable,
    WorkerSlot,
)
from app.policy.allocation import Claim, Grant, Priority
from app.pool.rates import RateWindow
from app.pool.reopen import Reopen

log = structlog.get_logger(__name__)


class Phase(StrEnum):
    OPENING = "OPENING"
    #: ``open`` found an endpoint unreachable: no unit until ``retry_at``, then OPENING again.
    WAITING = "WAITING"
    COPYING = "COPYING"
    FINISHING = "FINISHING"
    DONE = "DONE"


class StopReason(StrEnum):
    USER = "user"
    SHUTDOWN = "shutdown"
    FAILURE = "failure"
    LOST = "lost"  # the node lost the job's lease: another node runs it now


class Outcome(StrEnum):
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"  # by a user
    INTERRUPTED = "INTERRUPTED"  # by shutdown: another node, or this one restarted, takes it over
    LOST = "LOST"  # the lease went to another node: nothing of this run may be written


class UnitOutcome(StrEnum):
    """How one unit ended (the ``outcome`` label of ``ferry_units_total``)."""

    OK = "ok"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # cut short by a stop: not a failure, redone by the next run


@dataclass(frozen=True, slots=True)
class _Open:
    handle: RunHandle
    name: str = "open"

    def run(self, slot: WorkerSlot) -> None:
        self.handle.engine_run = self.handle.engine.open(self.handle.ctx)


@dataclass(frozen=True, slots=True)
class _Finish:
    handle: RunHandle
    name: str = "finish"

    def run(self, slot: WorkerSlot) -> None:
        assert self.handle.engine_run is not None
        self.handle.engine_run.finish()


class RunHandle:
    """The pool's view of one running job. Thread-safe; engine calls happen outside its lock."""

    def __init__(
        self,
        claim: Claim,
        kind: str,
        engine: Engine,
        ctx: JobContext,
        initial_progress: dict[str, Any],
        on_settled: Callable[[RunHandle], None] = lambda run: None,
    ) -> None:
        self.claim = claim
        self.kind = kind
        self.engine = engine
        self.ctx = ctx
        self.engine_run: JobRun | None = None
        self.phase = Phase.OPENING
        self.stop_reason: StopReason | None = None
        self.error: str | None = None
        self.grant = Grant(0.0, "priority", 0, 0)
        #: Set by the pool (under its lock) while the grant is held to one thread until it opens.
        self.grant_capped = False
        #: Threads at work on this run (units in flight, plus reservations being filled).
        self.active = 0
        self.inflight = 0
        self.units_completed = 0
        self.units_failed = 0
        #: Until this monotonic time workers skip the run: it had no unit to give. Cleared as
        #: soon as work may have appeared (a unit finished, the engine woke the pool).
        self.starved_until = 0.0
        self._reopen = Reopen()
        self._initial_progress = initial_progress
        self._open_issued = False
        self._settled_reported = False
        self._on_settled = on_settled
        self._lock = threading.Lock()
        #: Bytes transferred (speed) and bytes of work done (ETA): they differ by holes and skips.
        self.rate = RateWindow(horizon=60.0)
        self.done_rate = RateWindow(horizon=60.0)

    @property
    def job_id(self) -> str:
        return self.claim.job_id

    # -- handing out work ----------------------------------------------------------------------

    def take_unit(self) -> Unit | None:
        with self._lock:
            if self.stop_reason is not None or self.phase is Phase.DONE:
                return None
            if self.phase is Phase.WAITING:
                if time.monotonic() < self._reopen.retry_at:
                    return None
                self.phase = Phase.OPENING
            if self.phase is Phase.OPENING:
                if self._open_issued:
                    return None
                self._open_issued = True
                self.inflight += 1
                return _Open(self)
            if self.phase is Phase.FINISHING:
                return None
            engine_run = self.engine_run
        assert engine_run is not None
        unit = engine_run.next_unit()
        with self._lock:
            if unit is not None:
                self.inflight += 1
                return unit
            if self.stop_reason is None and self.inflight == 0 and engine_run.is_done():
                self.phase = Phase.FINISHING
                self.inflight += 1
                return _Finish(self)
        return None

    def run_unit(self, unit: Unit, slot: WorkerSlot) -> UnitOutcome:
        """Execute one unit on the calling pool thread; how it ended."""
        error: BaseException | None = None
        try:
            unit.run(slot)
        except Exception as exc:  # a unit's failure is data for the engine, never a dead thread
            error = exc
        try:
            if isinstance(error, LeaseLost):
                raise error
            self._account(unit, error)
        except LeaseLost:  # another node runs the job now: this run writes nothing more
            self.request_stop(StopReason.LOST)
        except JobFailed as exc:
            self.fail(str(exc))
        except Exception as exc:
            log.exception("engine error", action="engine_error", migration_id=self.job_id)
            self.fail(f"internal error in the {self.kind} engine: {exc!r}")
        finally:
            with self._lock:
                self.inflight -= 1
                if error is None:
                    self.units_completed += 1
                elif not isinstance(error, UnitInterrupted):
                    self.units_failed += 1
                self.starved_until = 0.0
            self._report_if_settled()
        if error is None:
            return UnitOutcome.OK
        return UnitOutcome.INTERRUPTED if isinstance(error, UnitInterrupted) else UnitOutcome.FAILED

    def _account(self, unit: Unit, error: BaseException | None) -> None:
        if isinstance(unit, _Open):
            if isinstance(error, Unreachable):
                self._wait_to_reopen(error)
                return
            if error is not None:
                raise JobFailed(_describe(error))
            with self._lock:
                self.phase = Phase.COPYING
                self._reopen.opened()
            return
        if isinstance(unit, _Finish):
            if error is not None:
                raise JobFailed(_describe(error))
            with self._lock:
                self.phase = Phase.DONE
            return
        if isinstance(error, JobFailed):
            raise error
        assert self.engine_run is not None
        self.engine_run.unit_finished(unit, error)

    def _wait_to_reopen(self, error: Unreachable) -> None:
        """Go WAITING until the next try is due, or give up (JobFailed) when the time is up."""
        now = time.monotonic()
        with self._lock:
            at = self._reopen.failed(error, now, time.time())
            if at is not None:
                self.phase = Phase.WAITING
                self._open_issued = False
        if at is None:
            raise JobFailed(Reopen.give_up(error))
        log.info("waiting to open", action="open_waiting", migration_id=self.job_id, waiting_for=error.what,
                 reason=error.reason, next_try_seconds=round(at - now, 1))  # fmt: skip

    @property
    def opened(self) -> bool:
        """Whether its source and target are open (until then one thread is all it can use)."""
        with self._lock:
            return self.phase not in (Phase.OPENING, Phase.WAITING)

    def waiting_until(self) -> float | None:
        """While WAITING (and not stopped): when the next try to open is due. The pool gives the
        run no thread and no grant until then."""
        with self._lock:
            waiting = self.phase is Phase.WAITING and self.stop_reason is None
            return self._reopen.retry_at if waiting else None

    @property
    def notice(self) -> str | None:
        """What the run waits for, while its source or target cannot be reached; else None."""
        with self._lock:
            if self.phase not in (Phase.WAITING, Phase.OPENING):
                return None
            return self._reopen.notice(time.monotonic(), trying=self.phase is Phase.OPENING)

    # -- stopping ------------------------------------------------------------------------------

    def request_stop(self, reason: StopReason) -> None:
        with self._lock:
            if self.stop_reason is None or reason is StopReason.LOST:
                self.stop_reason = reason
        self.ctx.stopping.set()
        self._report_if_settled()

    def fail(self, message: str) -> None:
        with self._lock:
            if self.stop_reason in (None, StopReason.USER, StopReason.SHUTDOWN) and self.error is None:
                self.error = message
                if self.stop_reason is None:
                    self.stop_reason = StopReason.FAILURE
        self.ctx.stopping.set()
        self._report_if_settled()

    def settled(self) -> bool:
        with self._lock:
            return self.inflight == 0 and (self.phase is Phase.DONE or self.stop_reason is not None)

    def outcome(self) -> Outcome:
        with self._lock:
            if self.stop_reason is StopReason.LOST:
                return Outcome.LOST
            if self.error is not None and self.stop_reason is StopReason.FAILURE:
                return Outcome.FAILED
            if self.stop_reason is StopReason.USER:
                return Outcome.STOPPED
            if self.stop_reason is StopReason.SHUTDOWN:
                return Outcome.INTERRUPTED
            return Outcome.COMPLETED

    def _report_if_settled(self) -> None:
        if not self.settled():
            return
        with self._lock:
            if self._settled_reported:
                return
            self._settled_reported = True
        self._on_settled(self)

    # -- reading -------------------------------------------------------------------------------

    def progress(self) -> Progress | None:
        engine_run = self.engine_run
        return engine_run.progress() if engine_run is not None else None

    def checkpoint(self) -> dict[str, Any] | None:
        engine_run = self.engine_run
        return engine_run.checkpoint() if engine_run is not None else None

    def sample(self, now: float) -> None:
        progress = self.progress()
        if progress is not None:
            self.rate.add(now, progress.transferred)
            self.done_rate.add(now, progress.done_bytes)

    def progress_fields(self) -> dict[str, Any]:
        """The SPEC progress object: the engine's fields plus speed, ETA and percentage."""
        progress = self.progress()
        if progress is None:
            # Not open (yet, or waiting for a server): the progress of the checkpoint, at rest.
            fields = dict(self._initial_progress)
            if fields:
                fields.update(bytesPerSecond=0, etaSeconds=None)
            return fields
        fields = derived_progress(progress, self.rate.rate(10.0), self.done_rate.rate(10.0))
        if self.settled() and self.outcome() is not Outcome.COMPLETED:
            # Ended short of done (failed, stopped, shut down): what it records moves no more.
            fields.update(bytesPerSecond=0, etaSeconds=None)
        return fields

    def close(self) -> None:
        if self.engine_run is not None:
            try:
                self.engine_run.close()
            except Exception:
                log.exception("engine close failed", action="engine_error", migration_id=self.job_id)

    @property
    def priority(self) -> Priority:
        return self.claim.priority


def derived_progress(
    progress: Progress, bytes_per_second: float, done_per_second: float | None = None
) -> dict[str, Any]:
    """``bytesPerSecond`` is the transfer rate; the ETA divides the work left by the rate of work
    done (``done_per_second``, the transfer rate when not given), which counts skips too."""
    fields: dict[str, Any] = dict(progress.fields)
    work_rate = bytes_per_second if done_per_second is None else done_per_second
    total = progress.total_bytes
    if total is not None and total > 0:
        fields.setdefault("percentComplete", round(min(100.0, 100.0 * progress.done_bytes / total), 2))
    elif total == 0:
        fields.setdefault("percentComplete", 100.0)
    else:
        fields.setdefault("percentComplete", None)
    fields["bytesPerSecond"] = round(bytes_per_second)
    remaining = (total - progress.done_bytes) if total is not None else None
    if remaining is not None and remaining <= 0:
        fields["etaSeconds"] = 0
    elif remaining is not None and work_rate > 0:
        fields["etaSeconds"] = math.ceil(remaining / work_rate)
    else:
        fields["etaSeconds"] = None
    return fields


def _describe(error: BaseException) -> str:
    text = str(error)
    return text if text else type(error).__name__
