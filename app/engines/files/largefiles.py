"""Large files in a copy run: their ranges queued, finished ranges recorded, compare then copy.

Called by :class:`app.engines.files.copyrun.CopyRun` under its lock; the I/O it asks for
(removing a failed file's temporary, touching a file found equal) comes back as callables the run
executes after releasing the lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from app.engines.files.copy import Interrupted, is_temp
from app.engines.files.counters import Counters
from app.engines.files.failures import Failures
from app.engines.files.frontier import Journal
from app.engines.files.listing import FileTask, reason
from app.engines.files.policy import gaps
from app.engines.files.regions import parent_region
from app.engines.files.smallfiles import touch
from app.engines.files.store import PARTIAL, Store
from app.engines.files.units import Env, LargeFile, Phase, RangeUnit
from app.engines.pace import LinkPace
from app.policy.pacing import unit_bytes

log = structlog.get_logger(__name__)

After = list[Callable[[], None]]
#: Told (under the run's lock) when a file is finished one way or another: (region, after).
FileDone = Callable[[str, After], None]


#: The range size of a file met before anything measured the link: a slow link still ends such
#: a range within a second or so (SPEC section 4), a fast one measures the link at its first.
UNMEASURED_RANGE = 4 * 1024 * 1024
#: The smallest range, however slow the link: each range costs a unit and two opens.
SMALLEST_RANGE = 1024 * 1024


class LargeFiles:
    """Files copied by ranges of about half a second of work at the link's measured speed
    (between ``SMALLEST_RANGE`` and ``largest``), each cut as a worker takes it, so a smaller
    grant or a stop takes effect within 2 s on a slow link however the speed changes."""

    def __init__(self, env: Env, largest: int, counters: Counters, failures: Failures, journal: Journal,
                 lock: threading.Lock, file_done: FileDone) -> None:  # fmt: skip
        self.env, self.largest = env, largest
        #: The link's speed, from the ranges copied (or compared): a batch of small files says
        #: more about the cost of a file than about the link.
        self.pace = LinkPace()
        self.counters, self.failures, self.journal = counters, failures, journal
        self.lock, self.file_done = lock, file_done
        #: Files with ranges still to hand out, in the order they were met.
        self.files: deque[LargeFile] = deque()
        #: ``partial`` rows of the last run, by relative path: taken when the file is met again.
        self.partials: dict[str, Any] = {}

    def range_size(self) -> int:
        """How much one unit of a file copies at the link's speed as measured so far."""
        if self.pace.rate is None:
            return min(self.largest, UNMEASURED_RANGE)
        return unit_bytes(self.pace.rate, smallest=min(self.largest, SMALLEST_RANGE), largest=self.largest)

    def add(self, task: FileTask) -> None:
        large = LargeFile(task, Phase.COMPARE if task.compare else Phase.COPY)
        partial = self.partials.pop(task.relpath, None)
        if large.phase is Phase.COPY and isinstance(partial, dict):
            self._resume(large, partial)
        self.files.append(large)

    def _resume(self, large: LargeFile, partial: dict[str, Any]) -> None:
        meta = large.task.meta
        same = (partial.get("size"), partial.get("mtime")) == (meta.size, meta.mtime_ns)
        temp = (self.env.target / large.task.region / str(partial.get("temp"))) if same else None
        if temp is None or not temp.is_file():
            return
        done = finished_ranges(partial, meta.size)
        todo = gaps(meta.size, done.items())
        if sum(done.values()) + sum(length for _, length in todo) != meta.size:
            return  # ranges that overlap: not a row this version wrote; copy the file afresh
        large.temp, large.done, large.done_bytes, large.todo = temp, done, sum(done.values()), todo
        if not large.todo:  # finished but not landed: copy its last range again, which lands it
            last = max(large.done)
            large.todo = [(last, large.done.pop(last))]
            large.done_bytes -= large.todo[0][1]

    def next(self) -> RangeUnit | None:
        """The next range of the first file with some still to hand out (under the lock)."""
        while self.files:
            large = self.files[0]
            cut = None if large.failed else large.cut(self.range_size())
            if cut is None or not large.todo:
                self.files.popleft()
            if cut is not None:
                return RangeUnit(self.env, large, *cut)
        return None

    def queued(self) -> int:
        return len(self.files)

    def idle(self) -> bool:
        return all(large.failed for large in self.files)

    def finished(self, unit: RangeUnit, error: BaseException | None, after: After) -> None:
        large, task = unit.file, unit.file.task
        if large.failed:
            return
        if isinstance(error, Interrupted):
            # Stopping: record the temporary even with no range finished, so that deleting the
            # stopped job finds and removes it (a resume continues in it).
            with large.lock:
                if large.temp is not None:
                    self.journal.put(PARTIAL, task.relpath, large.payload())
            return
        if error is not None:
            large.failed = True
            if unit.vanished:
                self.counters.files_vanished += 1
            else:
                self.failures.add(task.relpath, reason(error))
            self.journal.delete(PARTIAL, task.relpath)
            temp = large.temp
            if temp is not None:
                after.append(lambda: temp.unlink(missing_ok=True))
            self.file_done(task.region, after)
        elif large.phase is Phase.COMPARE:
            self.pace.observe(unit.length, unit.seconds)
            self._compared(unit, after)
        else:
            self.pace.observe(unit.length, unit.seconds)
            self.counters.bytes_copied += unit.length
            if unit.landed:
                self.counters.files_copied += 1
                self.journal.delete(PARTIAL, task.relpath)
                self.file_done(task.region, after)
            else:
                with large.lock:
                    self.journal.put(PARTIAL, task.relpath, large.payload())

    def _compared(self, unit: RangeUnit, after: After) -> None:
        large = unit.file
        large.compared += unit.length
        large.mismatch = large.mismatch or not unit.equal
        if large.compared < large.size:
            return
        if large.mismatch:
            large.copy_all()
            self.files.append(large)
            return
        self.counters.files_skipped += 1
        self.counters.bytes_skipped += large.task.meta.size
        after.append(lambda: self._touch(large.task))
        self.file_done(large.task.region, after)

    def _touch(self, task: FileTask) -> None:
        try:
            touch(Path(self.env.target) / task.relpath, task)
        except OSError as exc:
            with self.lock:
                self.failures.add(task.relpath, f"mode and times not set: {reason(exc)}")


def remove_partials(store: Store, target: Path) -> int:
    """Delete the temporaries the job's ``partial`` rows name (only names ferry gives its
    temporaries, in the file's own target directory); how many were removed."""
    removed = 0
    for relpath, partial in store.load(PARTIAL).items():
        name = str(partial.get("temp")) if isinstance(partial, dict) else ""
        if not is_temp(name):
            continue
        path = target / parent_region(relpath) / name
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("partial file not removed", action="partial_kept", path=str(path), reason=reason(exc))
    return removed


def finished_ranges(partial: dict[str, Any], size: int) -> dict[int, int]:
    """The ranges a ``partial`` row records as written: ``[offset, length]`` pairs, or (rows
    of earlier versions) offsets of ranges of ``rangeSize``; whatever does not fit the file is
    dropped (copied again)."""
    found: dict[int, int] = {}
    step = partial.get("rangeSize")
    for item in partial.get("done") or []:
        if isinstance(item, list) and len(item) == 2 and all(isinstance(n, int) for n in item):
            offset, length = item
        elif isinstance(item, int) and isinstance(step, int) and step > 0:
            offset, length = item, min(step, size - item)
        else:
            continue
        if offset >= 0 and length > 0 and offset + length <= size:
            found[offset] = length
    return found
