"""The chunks of one pass: waiting, leased to a unit, delayed for a retry, or done.

Thread-safe: units on pool threads take and return chunks while the coordinator reads progress
and checkpoints. Nothing here blocks: a chunk waiting out its retry delay is simply not handed
out until its time has come.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from app.engines.base import JobFailed
from app.engines.disk.extents import Chunk, ChunkKind, Range, normalise


@dataclass(slots=True)
class Counters:
    bytes_total: int = 0
    bytes_copied: int = 0
    bytes_zeroed: int = 0
    bytes_skipped: int = 0
    extents_total: int = 0
    extents_done: int = 0
    retries: int = 0

    def fields(self) -> dict[str, int | float]:
        return {
            "bytesTotal": self.bytes_total,
            "bytesCopied": self.bytes_copied,
            "bytesZeroed": self.bytes_zeroed,
            "bytesSkipped": self.bytes_skipped,
            "extentsTotal": self.extents_total,
            "extentsDone": self.extents_done,
            "retries": self.retries,
        }

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Counters:
        keys = list(cls().fields())
        return cls(*(int(data.get(key, 0)) for key in keys))

    @property
    def done_bytes(self) -> int:
        return self.bytes_copied + self.bytes_zeroed + self.bytes_skipped


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one chunk in a unit."""

    chunk: Chunk
    copied: int = 0
    zeroed: int = 0
    #: Why it failed, or None when every write of it completed.
    error: str | None = None


@dataclass
class WorkQueue:
    max_retries: int
    retry_delay: float
    clock: Callable[[], float] = time.monotonic
    counters: Counters = field(default_factory=Counters)
    done: list[Range] = field(default_factory=list)
    _ready: deque[Chunk] = field(default_factory=deque)
    _delayed: list[tuple[float, Chunk]] = field(default_factory=list)
    _attempts: dict[Chunk, int] = field(default_factory=dict)
    _leased: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, chunks: list[Chunk]) -> None:
        with self._lock:
            self._ready.extend(chunks)
            self.counters.extents_total += len(chunks)
            self.counters.bytes_total += sum(chunk.length for chunk in chunks)

    def skip(self, ranges: list[Range]) -> None:
        """Count ``ranges`` as done without work: the target already holds what they need."""
        with self._lock:
            self.done.extend(ranges)
            skipped = sum(length for _, length in ranges)
            self.counters.bytes_total += skipped
            self.counters.bytes_skipped += skipped

    def take(self, max_bytes: int, max_chunks: int, *, at_least_one: bool = True, grain: int = 0) -> list[Chunk]:
        """Up to a batch of chunks that may run now: at least one if any is ready, unless
        ``at_least_one`` is false (then only what fits in ``max_bytes``). With ``grain``, a
        first data chunk larger than ``max_bytes`` is split: its first whole grains up to
        ``max_bytes`` (at least one) are taken, the rest waits at the front of the queue."""
        with self._lock:
            self._release_due()
            batch: list[Chunk] = []
            size = 0
            while self._ready and len(batch) < max_chunks:
                chunk = self._ready[0]
                if size + chunk.length > max_bytes and (batch or not at_least_one):
                    break
                if size + chunk.length > max_bytes and grain and chunk.kind is ChunkKind.DATA:
                    self._split_front(max(grain, max_bytes // grain * grain))
                batch.append(self._ready.popleft())
                size += batch[-1].length
            self._leased += len(batch)
            return batch

    def _split_front(self, length: int) -> None:
        """Cut the first ready chunk after ``length`` bytes (if longer): one extent more."""
        chunk = self._ready[0]
        if length >= chunk.length:
            return
        head = replace(chunk, length=length)
        tail = replace(chunk, offset=chunk.offset + length, length=chunk.length - length)
        self._ready.popleft()
        self._ready.extendleft((tail, head))
        attempts = self._attempts.pop(chunk, None)
        if attempts is not None:
            self._attempts[head] = self._attempts[tail] = attempts
        self.counters.extents_total += 1

    def _release_due(self) -> None:
        now = self.clock()
        due = [chunk for at, chunk in self._delayed if at <= now]
        self._delayed = [(at, chunk) for at, chunk in self._delayed if at > now]
        self._ready.extendleft(reversed(due))

    def complete(self, outcome: Outcome) -> None:
        """Count one chunk whose writes all completed, the moment they did."""
        with self._lock:
            self._leased -= 1
            self._record(outcome)

    def settle(self, failed: list[Outcome], unstarted: list[Chunk]) -> None:
        """Take back a unit's failed and unstarted chunks; JobFailed if one has no retry left."""
        exhausted: JobFailed | None = None
        with self._lock:
            self._leased -= len(failed) + len(unstarted)
            self._ready.extendleft(reversed(unstarted))
            for outcome in failed:
                try:
                    self._retry(outcome.chunk, outcome.error or "unknown error")
                except JobFailed as exc:
                    exhausted = exhausted or exc
        if exhausted is not None:
            raise exhausted

    def _record(self, outcome: Outcome) -> None:
        self._attempts.pop(outcome.chunk, None)
        self.done.append((outcome.chunk.offset, outcome.chunk.length))
        self.counters.bytes_copied += outcome.copied
        self.counters.bytes_zeroed += outcome.zeroed
        self.counters.extents_done += 1

    def _retry(self, chunk: Chunk, error: str) -> None:
        attempt = self._attempts.get(chunk, 0) + 1
        if attempt > self.max_retries:
            raise JobFailed(
                f"{chunk.kind} chunk at offset {chunk.offset} (length {chunk.length}) failed "
                f"after {self.max_retries} retries: {error}"
            )
        self._attempts[chunk] = attempt
        self.counters.retries += 1
        self._delayed.append((self.clock() + self.retry_delay * 2 ** (attempt - 1), chunk))

    def is_empty(self) -> bool:
        """Nothing waiting, delayed or leased: the pass is over."""
        with self._lock:
            return not self._ready and not self._delayed and self._leased == 0

    def snapshot(self) -> tuple[Counters, list[Range]]:
        with self._lock:
            self.done = normalise(self.done)
            return replace(self.counters), list(self.done)
