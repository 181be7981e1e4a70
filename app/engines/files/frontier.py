"""Pending regions (directories still to list), bounded in memory, journalled for checkpoints.

Not thread-safe: the run owning it calls it under its own lock. Database writes happen elsewhere
(:mod:`app.engines.files.store`): this class only says what to write.

* ``PARALLEL`` takes regions first in, first out (breadth-first); ``DEPTH_FIRST`` last in, first
  out (children are pushed in reverse name order so they come out in name order).
* Past ``bound`` regions in memory, :meth:`take_excess` hands the newest ones out to be spilled to
  the database; :meth:`restore` takes a batch back when memory runs dry.
* A region already queued in memory is not queued twice.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from app.engines.files.store import DELETE


class Journal:
    """Row changes since the last checkpoint, last write wins per ``(bucket, key)``."""

    def __init__(self) -> None:
        self._ops: dict[tuple[str, str], Any] = {}

    def put(self, bucket: str, key: str, payload: Any = None) -> None:
        self._ops[(bucket, key)] = payload

    def delete(self, bucket: str, key: str) -> None:
        self._ops[(bucket, key)] = DELETE

    def restore(self, key: tuple[str, str], value: Any) -> None:
        """Put back an op whose write failed, unless a newer op on the same row was recorded."""
        self._ops.setdefault(key, value)

    def drain(self) -> dict[tuple[str, str], Any]:
        ops, self._ops = self._ops, {}
        return ops

    def __len__(self) -> int:
        return len(self._ops)


class Frontier:
    def __init__(self, lifo: bool, bound: int) -> None:
        self.lifo = lifo
        self.bound = bound
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        #: Regions whose target directory ferry created in this run (nothing to compare against).
        self.fresh: set[str] = set()
        #: Regions held in the database only.
        self.spilled = 0

    def push(self, relpath: str, fresh: bool = False) -> bool:
        """Queue a region; False when it is already queued in memory."""
        if relpath in self._queued:
            return False
        self._queued.add(relpath)
        self._queue.append(relpath)
        if fresh:
            self.fresh.add(relpath)
        return True

    def pop(self) -> str | None:
        if not self._queue:
            return None
        relpath = self._queue.pop() if self.lifo else self._queue.popleft()
        self._queued.discard(relpath)
        return relpath

    def take_excess(self) -> list[str]:
        """Remove and return the regions beyond the bound (the newest: they are needed last)."""
        excess: list[str] = []
        while len(self._queue) > self.bound:
            relpath = self._queue.popleft() if self.lifo else self._queue.pop()
            self._queued.discard(relpath)
            self.fresh.discard(relpath)
            excess.append(relpath)
        self.spilled += len(excess)
        return excess

    def restore(self, relpaths: list[str]) -> None:
        """Take regions back from the database (duplicates of queued ones are dropped)."""
        for relpath in relpaths:
            self.push(relpath)
        self.spilled = max(0, self.spilled - len(relpaths))

    @property
    def in_memory(self) -> int:
        return len(self._queue)

    def __len__(self) -> int:
        return len(self._queue) + self.spilled
