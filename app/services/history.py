"""The last hour of throughput and pool use, in fixed memory, for dashboards that reload.

One sampler thread (``ferry-history``) takes a :class:`Sample` every :data:`SAMPLE_EVERY` seconds
from a function it is given (the stats service's view of the pool) into a ring that holds the
last :data:`HORIZON` seconds. Nothing goes to the database: each node keeps its own last hour,
and a restart begins a new one. Reading copies the ring under a lock held for microseconds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

#: Seconds between samples.
SAMPLE_EVERY = 5.0
#: Seconds of history kept.
HORIZON = 3600.0
#: Migrations recorded per sample (the fastest): bounds a sample's size whatever runs.
MIGRATIONS_KEPT = 32


@dataclass(frozen=True, slots=True)
class Sample:
    #: Seconds since the epoch.
    at: float
    #: Bytes transferred per second by all running migrations together (SPEC 5).
    bytes_per_second: int
    pool_size: int
    #: Threads granted to running migrations, and at work.
    allocated: int
    active: int
    running_migrations: int
    waiting_migrations: int
    #: ``(migrationId, bytesPerSecond)`` of running migrations, fastest first.
    migrations: tuple[tuple[str, int], ...] = ()


class History:
    def __init__(
        self, take: Callable[[float], Sample], every: float | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.every = SAMPLE_EVERY if every is None else every
        self._take = take
        self._clock = clock
        self._ring: deque[Sample] = deque(maxlen=max(1, round(HORIZON / self.every)))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def capacity(self) -> int:
        return self._ring.maxlen or 0

    def sample_now(self) -> None:
        sample = self._take(self._clock())
        with self._lock:
            self._ring.append(sample)

    def samples(self, since: float | None = None) -> list[Sample]:
        """The samples kept, oldest first; only those taken after ``since`` (epoch seconds) if given."""
        with self._lock:
            kept = list(self._ring)
        return kept if since is None else [sample for sample in kept if sample.at > since]

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ferry-history", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while True:
            try:
                self.sample_now()
            except Exception:  # a failed sample (database away) is a gap, never a dead sampler
                log.exception("history sample failed", action="history_error")
            if self._stop.wait(self.every):
                return
