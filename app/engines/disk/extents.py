"""Pure extent policy: which byte ranges to copy or zero, coalesced and cut into chunks.

A *range* is ``(offset, length)`` with ``length > 0``. "Normalised" lists are sorted, disjoint
and never adjacent. No function here does I/O; the disk engine only carries out these plans.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

Range = tuple[int, int]


class ChunkKind(StrEnum):
    #: Read from the source and write to the target (zero runs inside still become zeroes).
    DATA = "data"
    #: Known zero on the source: zero the target where it is not already zero.
    ZERO = "zero"


@dataclass(frozen=True, slots=True)
class Chunk:
    offset: int
    length: int
    kind: ChunkKind

    @property
    def end(self) -> int:
        return self.offset + self.length


def normalise(ranges: Iterable[Range]) -> list[Range]:
    """Sort, drop empty ranges, and merge overlapping or touching ones."""
    return coalesce(ranges, 0)


def coalesce(ranges: Iterable[Range], gap: int) -> list[Range]:
    """Merge ranges whose distance is at most ``gap`` bytes (the gap is then covered too)."""
    merged: list[Range] = []
    for offset, length in sorted(r for r in ranges if r[1] > 0):
        if merged and offset - sum(merged[-1]) <= gap:
            last_offset, last_length = merged[-1]
            end = max(last_offset + last_length, offset + length)
            merged[-1] = (last_offset, end - last_offset)
        else:
            merged.append((offset, length))
    return merged


def intersect(a: Iterable[Range], b: Iterable[Range]) -> list[Range]:
    """The bytes in both ``a`` and ``b``, normalised."""
    left, right = normalise(a), normalise(b)
    out: list[Range] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(sum(left[i]), sum(right[j]))
        if start < end:
            out.append((start, end - start))
        if sum(left[i]) < sum(right[j]):
            i += 1
        else:
            j += 1
    return normalise(out)


def subtract(a: Iterable[Range], b: Iterable[Range]) -> list[Range]:
    """The bytes of ``a`` not in ``b``, normalised."""
    out: list[Range] = []
    cuts = normalise(b)
    j = 0
    for offset, length in normalise(a):
        start, end = offset, offset + length
        while j < len(cuts) and sum(cuts[j]) <= start:
            j += 1
        k = j
        while k < len(cuts) and cuts[k][0] < end:
            if cuts[k][0] > start:
                out.append((start, cuts[k][0] - start))
            start = max(start, sum(cuts[k]))
            k += 1
        if start < end:
            out.append((start, end - start))
    return out


def total(ranges: Iterable[Range]) -> int:
    return sum(length for _, length in ranges)


def split(ranges: Iterable[Range], chunk_size: int, kind: ChunkKind) -> list[Chunk]:
    """Cut each range into chunks of at most ``chunk_size`` bytes, in offset order."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    chunks: list[Chunk] = []
    for offset, length in normalise(ranges):
        for start in range(offset, offset + length, chunk_size):
            chunks.append(Chunk(start, min(chunk_size, offset + length - start), kind))
    return chunks


@dataclass(frozen=True, slots=True)
class Plan:
    """What one pass covers: data ranges to copy and zero ranges to clear."""

    data: list[Range]
    zero: list[Range]

    @property
    def total_bytes(self) -> int:
        return total(self.data) + total(self.zero)


def plan(scope: Iterable[Range], allocated: Iterable[Range], *, gap: int) -> Plan:
    """Plan a pass over ``scope`` (the whole disk, or what changed).

    Allocated bytes in scope are copied, merged across gaps of at most ``gap`` bytes (a merged
    gap is read and, being zero, written as zeroes; in an incremental pass it may be unchanged
    data, rewritten with what it already holds); the rest of the scope is zeroed.
    """
    scope = normalise(scope)
    data = coalesce(intersect(scope, allocated), gap)
    return Plan(data, subtract(scope, data))


def zero_runs(is_zero: Callable[[int, int], bool], length: int, block: int) -> list[tuple[int, int, bool]]:
    """Split ``[0, length)`` into alternating ``(start, size, zero)`` runs, ``block`` at a time.

    ``is_zero(start, size)`` must check every byte; a block with one non-zero byte is data.
    """
    runs: list[tuple[int, int, bool]] = []
    for start in range(0, length, block):
        size = min(block, length - start)
        zero = is_zero(start, size)
        if runs and runs[-1][2] == zero:
            first, run_size, _ = runs[-1]
            runs[-1] = (first, run_size + size, zero)
        else:
            runs.append((start, size, zero))
    return runs
