"""Each worker's own connections ("lanes"), opened on demand, never shared by two threads.

A unit checks a lane out for its whole duration and returns it after; lanes are kept open
between units. When a server refuses one more connection while others work, the run goes on
with the lanes it has: ``limit`` then caps how many units may run at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import nbd
import structlog

from app.engines.disk.buffers import POOL, ChunkBuffer
from app.engines.disk.endpoints import ConnectError
from app.engines.disk.sinks import Sink, close_handle

log = structlog.get_logger(__name__)

#: Seconds to wait for in-flight replies before closing a connection anyway.
DRAIN_TIMEOUT = 30.0


@dataclass(slots=True)
class Lane:
    source: nbd.NBD
    sink: Sink
    #: Read buffers reused for every chunk: how many bounds the reads in flight.
    buffers: list[ChunkBuffer]

    def close(self) -> None:
        """Wait for replies still due (nbdkit may abort on a disconnect with replies pending);
        the buffers go back to the pool unless a request that may still fill one is in flight."""
        handles = [self.source] if self.sink.handle is None else [self.source, self.sink.handle]
        deadline = time.monotonic() + DRAIN_TIMEOUT
        settled = True
        for handle in handles:
            try:
                while not handle.aio_is_dead() and handle.aio_in_flight() > 0 and time.monotonic() < deadline:
                    handle.poll(1000)
                settled = settled and (handle.aio_is_dead() or handle.aio_in_flight() == 0)
            except nbd.Error:
                settled = False
        close_handle(self.source)
        self.sink.close()
        if settled:
            POOL.give(self.buffers)


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
        except ConnectError as exc:
            with self._lock:
                self._opening -= 1
                if self._open == 0:
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
        with self._lock:
            self._closed = True
            lanes, self._idle = self._idle, []
        for lane in lanes:
            lane.close()
