"""Copy a batch of chunks on one lane, several reads in flight, each into a reused buffer.

Reads go out asynchronously (``aio_pread``) as long as a buffer is free. When one completes its
chunk is checked for zeroes block by block (every byte, in C): zero runs become write-zeroes or
hole punches, the rest is written. A chunk is done only when all its writes have completed.
Once ``stopping`` is set no new read starts, but everything in flight is waited for.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import nbd

from app.engines.disk.buffers import PIECE, ChunkBuffer
from app.engines.disk.extents import Chunk, ChunkKind, zero_runs
from app.engines.disk.handles import Handles
from app.engines.disk.sinks import countdown, retire
from app.engines.disk.work import Outcome

#: Granularity of zero detection inside a data chunk.
ZERO_BLOCK = 64 * 1024
#: Largest read request: a chunk (4 MiB by default) goes out as several (aligned to the
#: buffer pieces libnbd wrappers are kept for, see :mod:`app.engines.disk.buffers`). Servers answer each
#: request whole, so smaller requests let replies, and the writes after them, start sooner;
#: 1 MiB measured up to 1.5x faster than whole 4 MiB chunks into a fresh nbdkit memory export.
READ_REQUEST = PIECE
#: Seconds without any reply, with requests in flight, before the connection counts as dead.
REPLY_TIMEOUT = 60.0


#: Waits until the bandwidth limit lets this many bytes go.
Throttle = Callable[[int], None]
#: Hears of each chunk the moment its last write completed.
OnDone = Callable[[Outcome], None]
#: Up to this many more chunks for the batch, asked for whenever a buffer is free and nothing
#: is pending ([] when there are none).
Refill = Callable[[int], list[Chunk]]


class ConnectionLost(Exception):
    pass


@dataclass(eq=False, slots=True)
class _Job:
    chunk: Chunk
    buffer: ChunkBuffer | None = None
    writes_left: int = 0
    copied: int = 0
    zeroed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class BatchResult:
    #: Chunks that failed (completed ones went to ``on_done`` as they completed).
    failed: list[Outcome]
    #: Chunks never started (a stop, or a lost connection): back to the queue, no retry spent.
    unstarted: list[Chunk]
    #: Why the lane is unusable, or None.
    lost: str | None = None


class _Pipeline:
    def __init__(self, lane: Handles, chunks: list[Chunk], stopping: threading.Event,
                 throttle: Throttle, on_done: OnDone, refill: Refill, on_failed: OnDone | None) -> None:  # fmt: skip
        self.lane = lane
        self.pending = deque(chunks)
        self.refill = refill
        self.free = list(lane.buffers)
        self.stopping = stopping
        self.throttle = throttle
        self.busy: set[_Job] = set()
        self.reads: list[tuple[_Job, int]] = []
        #: Completion callbacks run so far: a wait ends as soon as this moves.
        self.completions = 0
        self.failed: list[Outcome] = []
        self.on_done = on_done
        self.on_failed = on_failed if on_failed is not None else self.failed.append

    def run(self) -> BatchResult:
        try:
            while True:
                self._start_more()
                if not self.busy:
                    break
                self._wait()
                self._handle_reads()
        except ConnectionLost as exc:
            lost = [Outcome(job.chunk, error=f"connection lost: {exc}") for job in self.busy]
            return BatchResult(self.failed + lost, list(self.pending), str(exc))
        return BatchResult(self.failed, list(self.pending))

    def _start_more(self) -> None:
        if not self.pending and self.free and not self.stopping.is_set():
            self.pending.extend(self.refill(len(self.free)))
        while self.pending and not self.stopping.is_set():
            chunk = self.pending[0]
            if chunk.kind is ChunkKind.ZERO:
                self._start_zero(_Job(self.pending.popleft()))
            elif self.free:
                self._start_read(_Job(self.pending.popleft(), self.free.pop()))
            else:
                return

    def _start_read(self, job: _Job) -> None:
        """Read the chunk in requests of at most READ_REQUEST bytes; it is read when all are."""
        assert job.buffer is not None
        self.throttle(job.chunk.length)
        self.busy.add(job)
        buffer, length = job.buffer, job.chunk.length
        pieces = range(0, length, READ_REQUEST)

        def read_done(error: int) -> None:
            self.completions += 1
            self.reads.append((job, error))

        piece_done = retire(countdown(len(pieces), read_done))
        try:
            for start in pieces:
                piece = buffer.piece(start, min(READ_REQUEST, length - start))
                self.lane.source.aio_pread(piece, job.chunk.offset + start, piece_done)
        except nbd.Error as exc:
            raise ConnectionLost(f"source: {exc.string}") from None

    def _start_zero(self, job: _Job) -> None:
        self.busy.add(job)
        chunk, sink = job.chunk, self.lane.sink
        try:
            job.writes_left = 1
            sink.zero(chunk.offset, chunk.length, self._write_done(job, chunk.length, zero=True))
        except nbd.Error as exc:
            raise ConnectionLost(f"target: {exc.string}") from None

    def _handle_reads(self) -> None:
        reads, self.reads = self.reads, []
        for job, error in reads:
            if error:
                job.errors.append(f"read at offset {job.chunk.offset}: {os.strerror(error)}")
                self._finish(job)
            else:
                self._write(job)

    def _write(self, job: _Job) -> None:
        assert job.buffer is not None
        buffer = job.buffer
        runs = zero_runs(buffer.is_zero, job.chunk.length, ZERO_BLOCK)
        job.writes_left = len(runs)
        try:
            for start, size, zero in runs:
                done = self._write_done(job, size, zero=zero)
                if zero:
                    self.lane.sink.zero(job.chunk.offset + start, size, done)
                else:
                    self.lane.sink.write(buffer, start, size, job.chunk.offset + start, done)
        except nbd.Error as exc:
            raise ConnectionLost(f"target: {exc.string}") from None

    def _write_done(self, job: _Job, size: int, *, zero: bool) -> Callable[[int], None]:
        def done(error: int) -> None:
            self.completions += 1
            if error:
                job.errors.append(f"write at offset {job.chunk.offset}: {os.strerror(error)}")
            elif zero:
                job.zeroed += size
            else:
                job.copied += size
            job.writes_left -= 1
            if job.writes_left == 0:
                self._finish(job)

        return done

    def _finish(self, job: _Job) -> None:
        self.busy.discard(job)
        if job.buffer is not None:
            self.free.append(job.buffer)
        outcome = Outcome(job.chunk, job.copied, job.zeroed, "; ".join(job.errors) or None)
        if outcome.error is None:
            self.on_done(outcome)
        else:
            self.on_failed(outcome)

    def _wait(self) -> None:
        """Poll both connections once; dispatch replies to the completion callbacks."""
        handles = [h for h in (self.lane.source, self.lane.sink.handle) if h is not None]
        waiting = [h for h in handles if h.aio_in_flight() > 0]
        if not waiting:
            self.lane.sink.after_poll()
            if self.busy and not self.reads and not any(h.aio_in_flight() for h in handles):
                raise ConnectionLost("requests pending but none in flight")
            return
        seen = self.completions
        sink = self.lane.sink
        wait_on(waiting, REPLY_TIMEOUT, lambda: self.completions != seen or sink.has_deferred())
        sink.after_poll()


def wait_on(handles: list[nbd.NBD], timeout: float, settled: Callable[[], bool]) -> None:
    """Serve the handles' sockets until ``settled()`` (a completion callback ran); ConnectionLost
    if one died or none made progress for ``timeout`` seconds."""
    step = _poll_one(handles[0]) if len(handles) == 1 else _poll_many(handles)
    quiet_since = time.monotonic()
    try:
        while True:
            if step():
                _check_alive(handles)
                if settled():
                    return
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > timeout:
                raise ConnectionLost(f"no reply for {timeout:g} s")
    except nbd.Error as exc:
        raise ConnectionLost(exc.string) from None


def _poll_one(handle: nbd.NBD) -> Callable[[], bool]:
    """One handle: libnbd's own poll does the waiting and the reading, with the GIL released."""
    return lambda: handle.poll(1000) > 0


def _poll_many(handles: list[nbd.NBD]) -> Callable[[], bool]:
    """Several handles: one poll(2) over their sockets, each told what it is ready for."""
    poller = select.poll()
    by_fd: dict[int, nbd.NBD] = {}
    for handle in handles:
        fd = handle.aio_get_fd()
        by_fd[fd] = handle
        poller.register(fd, _events(handle.aio_get_direction()))

    def step() -> bool:
        ready = poller.poll(1000)
        for fd, events in ready:
            handle = by_fd[fd]
            if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                handle.aio_notify_read()
            direction = handle.aio_get_direction()
            if events & select.POLLOUT and direction & nbd.AIO_DIRECTION_WRITE:
                handle.aio_notify_write()
                direction = handle.aio_get_direction()
            poller.modify(fd, _events(direction))  # a request still being sent, or only replies
        return bool(ready)

    return step


def _events(direction: int) -> int:
    return (select.POLLIN if direction & nbd.AIO_DIRECTION_READ else 0) | (
        select.POLLOUT if direction & nbd.AIO_DIRECTION_WRITE else 0
    )


def _check_alive(handles: list[nbd.NBD]) -> None:
    for handle in handles:
        if handle.aio_is_dead() or handle.aio_is_closed():
            raise ConnectionLost("the server closed the connection")


def copy_batch(lane: Handles, chunks: list[Chunk], stopping: threading.Event, throttle: Throttle,
               on_done: OnDone, refill: Refill = lambda _: [], *,
               on_failed: OnDone | None = None) -> BatchResult:  # fmt: skip
    """Copy ``chunks`` on ``lane``; ``on_done`` hears of each chunk as its last write completes,
    ``on_failed`` of each failed one (without it they are returned).

    Whenever buffers are free and nothing is pending, ``refill`` may add as many chunks, so the
    lane's requests keep flowing instead of draining between batches, and no lane holds chunks
    it cannot start while others run out of work at the end of the copy.
    """
    return _Pipeline(lane, chunks, stopping, throttle, on_done, refill, on_failed).run()
