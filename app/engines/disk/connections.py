"""Each worker's own lane, opened on demand, never shared by two threads.

A lane is a helper process that holds one source and one target connection (see
:mod:`app.engines.disk.lane`); here is how the pool's threads use it. A unit checks a lane out for
its whole duration and returns it after; lanes are kept open between units. When a server
refuses one more connection while others work, the run goes on with the lanes it has: ``limit``
then caps how many units may run at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import structlog

from app.engines import processes
from app.engines.disk import lane as helper
from app.engines.disk.copier import BatchResult, OnDone, Refill, Throttle
from app.engines.disk.endpoints import ConnectError
from app.engines.disk.extents import Chunk, ChunkKind
from app.engines.disk.handles import DRAIN_TIMEOUT
from app.engines.disk.lane import LaneSpec
from app.engines.disk.work import Outcome

log = structlog.get_logger(__name__)

#: Chunks to read sent to a lane beyond its buffers (see ``Lane.window``).
PREFETCH = 2
#: Zero chunks a lane has out at once at most (they need no buffer, only a request each).
ZEROES_OUT = 8


class LaneRefused(Exception):
    """A lane's helper could not open it: ``side`` ("source", "target" or None) and why."""

    def __init__(self, side: str | None, error: BaseException) -> None:
        super().__init__(f"{side}: {error}" if side else str(error))
        self.side = side
        self.error = error


class HelperGone(Exception):
    """The lane's helper process died (killed, out of memory)."""


class Lane:
    """A lane's helper process, as the thread that checked it out drives it."""

    def __init__(self, spec: LaneSpec) -> None:
        #: Chunks to read that may be out at once: one per buffer, and PREFETCH more waiting in
        #: the helper, so a buffer that frees up starts its next read at once, not after the
        #: outcome went here and the next chunk came back.
        self.window = spec.buffers + PREFETCH
        self._closing = False
        self.conn: Connection
        context = processes.context()
        self.conn, child_end = context.Pipe(duplex=True)
        self._process = context.Process(
            target=helper.serve, args=(child_end, spec, processes.helper_nice()), name="ferry-disk-lane", daemon=True
        )
        self._process.start()
        child_end.close()
        try:
            if not self.conn.poll(spec.timeout * 2 + 5):
                raise LaneRefused(None, ConnectError(spec.source, "the lane's helper did not answer", transient=True))
            reply = self.conn.recv()
        except BaseException:
            self._stop(0)
            raise
        if reply[0] == "refused":
            self._stop(5)
            raise LaneRefused(reply[1], reply[2])
        _, self.size, self.multi_conn = reply

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(handles, *args)`` in the helper: its value, or its exception raised here."""
        self._send(("call", function, args))
        _, ok, value = self._recv()
        if ok:
            return value
        raise value

    def copy(self, chunks: list[Chunk], stopping: threading.Event, throttle: Throttle, on_done: OnDone,
             refill: Refill) -> BatchResult:  # fmt: skip
        """Copy ``chunks`` (and what ``refill`` adds while buffers are free) on this lane, as
        :func:`app.engines.disk.copier.copy_batch` does, throttled here. A stop sends no more
        chunks and waits for those out."""
        todo = deque(chunks)
        out: set[Chunk] = set()
        failed: list[Outcome] = []
        started = False
        while True:
            batch = self._next(todo, out, stopping, throttle, refill)
            if batch:
                self._send(("chunks", batch))
                started = True
            if not out:
                break
            kind, *rest = self._recv()
            if kind == "ended":  # the connections were lost: what the helper did not start comes back
                unstarted, lost = rest
                out.difference_update(unstarted)
                todo.extendleft(reversed(unstarted))
                return BatchResult(
                    failed + [Outcome(c, error=f"connection lost: {lost}") for c in out], list(todo), lost
                )
            outcome: Outcome = rest[0]
            out.discard(outcome.chunk)
            if kind == "done":
                on_done(outcome)
            else:
                failed.append(outcome)
        if started:
            self._send(("end",))
            kind, unstarted, lost = self._recv()
            todo.extendleft(reversed(unstarted))
            if lost is not None:
                return BatchResult(failed, list(todo), lost)
        return BatchResult(failed, list(todo))

    def _next(self, todo: deque[Chunk], out: set[Chunk], stopping: threading.Event, throttle: Throttle,
              refill: Refill) -> list[Chunk]:  # fmt: skip
        """The chunks to send now: as many as free buffers (and zero requests) allow."""
        batch: list[Chunk] = []
        while not stopping.is_set():
            reads = sum(1 for c in out if c.kind is ChunkKind.DATA)
            zeroes = len(out) - reads
            if not todo and reads < self.window and not batch:
                todo.extend(refill(self.window - reads))
            if not todo:
                break
            chunk = todo[0]
            if (reads >= self.window) if chunk.kind is ChunkKind.DATA else (zeroes >= ZEROES_OUT):
                break
            todo.popleft()
            if chunk.kind is ChunkKind.DATA:
                throttle(chunk.length)
            out.add(chunk)
            batch.append(chunk)
        return batch

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self.conn.send(message)
        except OSError as exc:
            raise HelperGone(f"the lane's helper process is gone: {exc!r}") from None

    def _recv(self) -> Any:
        try:
            return self.conn.recv()
        except (EOFError, OSError) as exc:
            raise HelperGone(f"the lane's helper process died: {exc!r}") from None

    def ask_to_close(self) -> None:
        """Tell the helper to wait for replies still due and disconnect (``close`` reaps it)."""
        if not self._closing:
            self._closing = True
            with contextlib.suppress(OSError):
                self.conn.send(("close",))

    def close(self) -> None:
        self.ask_to_close()
        self._stop(DRAIN_TIMEOUT + 5)

    def _stop(self, timeout: float) -> None:
        self.conn.close()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


class Lanes:
    def __init__(self, open_lane: Callable[[], Lane], limit: int | None, job_id: str) -> None:
        self._open_lane = open_lane
        self._lock = threading.Lock()
        self._idle: list[Lane] = []
        self._open = 0
        self._opening = 0
        self._closed = False
        self._job_id = job_id
        #: Most lanes at once; None while the servers have not refused one.
        self.limit = limit

    def add(self, lane: Lane) -> None:
        with self._lock:
            self._open += 1
            self._idle.append(lane)

    def checkout(self) -> Lane | None:
        """An idle lane or a new one; None when the servers take no more connections."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self.limit is not None and self._open + self._opening >= self.limit:
                return None
            self._opening += 1
        try:
            lane = self._open_lane()
        except LaneRefused as exc:
            with self._lock:
                self._opening -= 1
                if self._open == 0 or not isinstance(exc.error, ConnectError):
                    raise
                self.limit = self._open
            log.info("connection refused", action="disk_connections_capped", migration_id=self._job_id,
                     connections=self.limit, reason=str(exc))  # fmt: skip
            return None
        with self._lock:
            self._opening -= 1
            self._open += 1
        return lane

    def checkin(self, lane: Lane) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(lane)
                return
        lane.close()

    def discard(self, lane: Lane) -> None:
        with self._lock:
            self._open -= 1
        lane.close()

    def idle(self) -> list[Lane]:
        with self._lock:
            return list(self._idle)

    def close(self) -> None:
        """Close every idle lane, their helpers draining at once rather than one after another."""
        with self._lock:
            self._closed = True
            lanes, self._idle = self._idle, []
        for lane in lanes:
            lane.ask_to_close()
        for lane in lanes:
            lane.close()
