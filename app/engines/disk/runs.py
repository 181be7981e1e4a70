"""The pool's view of a disk job: units of chunks to copy, then ranges to compare.

A copy unit checks out its worker's own lane, pipelines a batch of chunks on it and gives the
lane back; its outcomes (done, failed, unstarted) are settled in ``unit_finished`` on the same
thread. Everything the coordinator reads (``progress``, ``checkpoint``) is behind locks.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from app.engines.base import JobContext, JobFailed, Progress, WorkerSlot
from app.engines.disk import opening
from app.engines.disk.connections import Lanes
from app.engines.disk.copier import READ_REQUEST, BatchResult
from app.engines.disk.extents import Chunk, ChunkKind, Range
from app.engines.disk.verify import Checker, compare, findings_of
from app.engines.disk.work import Outcome, WorkQueue
from app.engines.pace import LinkPace, live_rate
from app.policy.pacing import BUDGET_SECONDS, UNIT_SECONDS, unit_bytes

#: A copy unit's first batch: at most this many bytes (unless one chunk is larger) or chunks
#: (about one pipeline's worth: later chunks are taken as buffers free up).
BATCH_BYTES = 32 * 1024 * 1024
BATCH_CHUNKS = 8
#: Most bytes one unit takes, however fast its link (the time limit ends it before, anyway).
LARGEST_UNIT = 4 * 1024 * 1024 * 1024
CHECKPOINT_VERSION = 1


@dataclass(eq=False)
class CopyUnit:
    """Chunks copied on one lane for about UNIT_SECONDS: a first batch, then refills.

    Draining the pipeline at every batch left the connection idle while the last replies came
    in, so the unit keeps taking chunks as buffers free up, but only while its time lasts and
    only as many bytes as half that time is worth at the speed measured on the link (the
    slower of the unit's own so far and the link's): on a slow source a smaller grant or a stop
    still takes effect within a second or so.
    """

    owner: CopyRun
    chunks: list[Chunk]
    result: BatchResult | None = None
    completed: set[Chunk] = field(default_factory=set)
    name: str = "chunk"
    #: Bytes of all chunks taken so far, and of the data chunks read so far.
    taken: int = 0
    read: int = 0
    started: float = 0.0

    def __post_init__(self) -> None:
        self.taken = sum(chunk.length for chunk in self.chunks)

    def _done(self, outcome: Outcome) -> None:
        self.completed.add(outcome.chunk)
        if outcome.chunk.kind is ChunkKind.DATA:
            self.read += outcome.chunk.length
        self.owner.queue.complete(outcome)

    def _refill(self, count: int) -> list[Chunk]:
        now = time.monotonic()
        if now >= self.started + UNIT_SECONDS:
            return []
        budget = self.owner.budget(live_rate(self.read, now - self.started))
        more = self.owner.queue.take(budget - self.taken, count, at_least_one=False)
        self.taken += sum(chunk.length for chunk in more)
        self.chunks.extend(more)
        return more

    def run(self, slot: WorkerSlot) -> None:
        lanes, ctx = self.owner.lanes, self.owner.ctx
        lane = lanes.checkout()
        if lane is None:  # the servers take no more connections: give the work back
            self.result = BatchResult([], self.chunks)
            return
        self.started = time.monotonic()
        try:
            self.result = lane.copy(list(self.chunks), ctx.stopping, self.owner.throttle, self._done, self._refill)
        except BaseException:
            lanes.discard(lane)
            raise
        self.owner.pace.observe(self.read, time.monotonic() - self.started)
        if self.result.lost is None:
            lanes.checkin(lane)
        else:
            lanes.discard(lane)


@dataclass(eq=False)
class CheckUnit:
    owner: CopyRun | VerifyRun
    ranges: list[Range]
    checked: list[Range] = field(default_factory=list)
    mismatched: list[Range] = field(default_factory=list)
    name: str = "compare"

    def run(self, slot: WorkerSlot) -> None:
        lane = self.owner.lanes.checkout()
        if lane is None:
            return
        try:
            until = time.monotonic() + UNIT_SECONDS
            self.checked, self.mismatched = lane.call(compare, self.ranges, until)
        except BaseException:
            self.owner.lanes.discard(lane)
            raise
        self.owner.lanes.checkin(lane)

    def settle(self, checker: Checker, error: BaseException | None) -> None:
        done = set(self.checked)
        checker.settle(self.checked, self.mismatched, [r for r in self.ranges if r not in done])
        if error is not None:
            raise JobFailed(f"comparing source and target: {error}")


class _Units:
    """Counts units in flight so no more run at once than the servers take connections."""

    def __init__(self, lanes: Lanes) -> None:
        self.lanes = lanes
        self._lock = threading.Lock()
        self.count = 0

    def reserve(self) -> bool:
        with self._lock:
            limit = self.lanes.limit if self.lanes.limit is not None else math.inf
            if self.count >= limit:
                return False
            self.count += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.count -= 1


class CopyRun:
    def __init__(
        self, ctx: JobContext, lanes: Lanes, queue: WorkQueue, checker: Checker | None, chunk_size: int
    ) -> None:
        self.ctx = ctx
        self.lanes = lanes
        self.queue = queue
        self.checker = checker
        self.chunk_size = chunk_size
        self.pace = LinkPace()
        self._units = _Units(lanes)

    def budget(self, rate: float | None = None) -> int:
        """Bytes a unit may take at the slower of ``rate`` (a unit's own so far) and the link's
        measured speed: a burst seen by one unit does not size it past what the link keeps up.
        Unmeasured, one chunk; measured slow, down to one read request (a chunk is split)."""
        known = [r for r in (rate, self.pace.rate) if r is not None]
        if not known:
            return self.chunk_size
        smallest = min(READ_REQUEST, self.chunk_size)
        return unit_bytes(min(known), smallest=smallest, largest=LARGEST_UNIT, seconds=BUDGET_SECONDS)

    def throttle(self, nbytes: int) -> None:
        self.ctx.bandwidth.acquire(nbytes, self.ctx.stopping)

    def next_unit(self) -> CopyUnit | CheckUnit | None:
        if self.ctx.stopping.is_set() or not self._units.reserve():
            return None
        chunks = self.queue.take(min(BATCH_BYTES, self.budget()), BATCH_CHUNKS, grain=READ_REQUEST)
        if chunks:
            return CopyUnit(self, chunks)
        if self.checker is not None and self.queue.is_empty():
            ranges = self.checker.take()
            if ranges:
                return CheckUnit(self, ranges)
        self._units.release()
        return None

    def unit_finished(self, unit: Any, error: BaseException | None) -> None:
        self._units.release()
        if isinstance(unit, CheckUnit):
            assert self.checker is not None
            unit.settle(self.checker, error)
            if self.checker.mismatches:
                offset, length = self.checker.mismatches[0]
                raise JobFailed(f"verification failed: content differs at offset={offset} length={length}")
            return
        result = unit.result
        if result is None:  # the unit raised: every chunk not completed counts as failed
            message = f"{type(error).__name__}: {error}" if error else "no result"
            left = [chunk for chunk in unit.chunks if chunk not in unit.completed]
            result = BatchResult([Outcome(chunk, error=message) for chunk in left], [])
        self.queue.settle(result.failed, result.unstarted)

    def is_done(self) -> bool:
        checked = self.checker is None or self.checker.is_empty()
        return self.queue.is_empty() and checked and self._units.count == 0

    def finish(self) -> None:
        """Flush every target connection (one is enough when the target allows multi-conn)."""
        try:
            for lane in self.lanes.idle():
                lane.call(opening.flush)
                if lane.multi_conn:
                    break
        except Exception as exc:
            raise JobFailed(f"target: flush failed: {exc}") from exc

    def progress(self) -> Progress:
        counters, _ = self.queue.snapshot()
        return Progress(counters.fields(), counters.done_bytes, counters.bytes_total, counters.bytes_copied)

    def checkpoint(self) -> dict[str, Any]:
        counters, done = self.queue.snapshot()
        return {"version": CHECKPOINT_VERSION, "done": [list(r) for r in done], "counters": counters.fields()}

    def close(self) -> None:
        self.lanes.close()


class VerifyRun:
    """Purpose.VERIFY: compare the disks and record each differing range as a discrepancy."""

    def __init__(self, ctx: JobContext, lanes: Lanes, checker: Checker) -> None:
        self.ctx = ctx
        self.lanes = lanes
        self.checker = checker
        self._units = _Units(lanes)

    def next_unit(self) -> CheckUnit | None:
        if self.ctx.stopping.is_set() or not self._units.reserve():
            return None
        ranges = self.checker.take()
        if ranges:
            return CheckUnit(self, ranges)
        self._units.release()
        return None

    def unit_finished(self, unit: Any, error: BaseException | None) -> None:
        self._units.release()
        if unit.mismatched:
            self.ctx.findings(findings_of(unit.mismatched))
        unit.settle(self.checker, error)

    def is_done(self) -> bool:
        return self.checker.is_empty() and self._units.count == 0

    def finish(self) -> None:
        pass

    def progress(self) -> Progress:
        fields = self.checker.fields()
        return Progress(fields, int(fields["bytesChecked"]), self.checker.bytes_total)

    def checkpoint(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.lanes.close()
