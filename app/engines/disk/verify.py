"""Compare source and target, range by range, by digest.

Used twice: as the last phase of a copy with ``verify: true`` (a mismatch fails the job), and
as the whole of a VERIFY run, which records each mismatch as a ``CONTENT_MISMATCH`` discrepancy.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from app.engines.disk.extents import Range, normalise
from app.engines.disk.handles import Handles

#: Ranges handed to one unit at most, in bytes.
BATCH_BYTES = 64 * 1024 * 1024


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def ranges_equal(handles: Handles, offset: int, length: int) -> bool:
    """Read both sides of one range (at most one NBD request long) and compare digests."""
    source = bytes(handles.source.pread(length, offset))
    return digest(source) == digest(handles.sink.read(offset, length))


@dataclass
class Checker:
    """The ranges still to compare, and what comparing found; thread-safe."""

    piece: int
    bytes_total: int = 0
    bytes_checked: int = 0
    ranges_checked: int = 0
    mismatches: list[Range] = field(default_factory=list)
    _queue: deque[Range] = field(default_factory=deque)
    _leased: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ranges: list[Range]) -> None:
        with self._lock:
            for offset, length in normalise(ranges):
                for start in range(offset, offset + length, self.piece):
                    self._queue.append((start, min(self.piece, offset + length - start)))
                self.bytes_total += length

    def take(self) -> list[Range]:
        with self._lock:
            batch: list[Range] = []
            while self._queue and sum(n for _, n in batch) < BATCH_BYTES:
                batch.append(self._queue.popleft())
            self._leased += len(batch)
            return batch

    def settle(self, checked: list[Range], mismatched: list[Range], unchecked: list[Range]) -> None:
        with self._lock:
            self._leased -= len(checked) + len(unchecked)
            self._queue.extendleft(reversed(unchecked))
            self.bytes_checked += sum(n for _, n in checked)
            self.ranges_checked += len(checked)
            self.mismatches.extend(mismatched)

    def is_empty(self) -> bool:
        with self._lock:
            return not self._queue and self._leased == 0

    def fields(self) -> dict[str, int | float]:
        with self._lock:
            return {
                "bytesChecked": self.bytes_checked,
                "rangesChecked": self.ranges_checked,
                "contentMismatch": len(self.mismatches),
                "discrepancies": len(self.mismatches),
            }


def compare(handles: Handles, ranges: list[Range], until: float = math.inf) -> tuple[list[Range], list[Range]]:
    """In a lane's helper: compare ranges in order until done or past ``until`` (monotonic, the
    same clock in every process) with at least one compared: (checked, mismatched). The rest go
    back for another unit: a slow link must not keep a thread past a shrink of its grant, and a
    stop waits at most that long (SPEC section 4)."""
    checked: list[Range] = []
    mismatched: list[Range] = []
    for offset, length in ranges:
        if checked and time.monotonic() >= until:
            break
        if not ranges_equal(handles, offset, length):
            mismatched.append((offset, length))
        checked.append((offset, length))
    return checked, mismatched


def findings_of(ranges: list[Range]) -> list[tuple[str, str, str | None]]:
    """A unit's mismatched ranges as discrepancies of the report."""
    return [
        ("CONTENT_MISMATCH", f"offset={offset} length={length}", "source and target digests differ")
        for offset, length in ranges
    ]
