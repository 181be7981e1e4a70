"""The pure extent policy: coalescing, splitting, planning and zero runs, with hypothesis."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from app.engines.disk.extents import (
    ChunkKind,
    coalesce,
    intersect,
    normalise,
    plan,
    split,
    subtract,
    total,
    zero_runs,
)

ranges = st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 700)), max_size=30)


def covered(rs: list[tuple[int, int]]) -> set[int]:
    return {b for o, n in rs for b in range(o, o + n)}


def is_normal(rs: list[tuple[int, int]]) -> bool:
    return all(n > 0 for _, n in rs) and all(a[0] + a[1] < b[0] for a, b in itertools.pairwise(rs))


@given(ranges, st.integers(0, 300))
def test_coalesce_keeps_every_byte_and_bridges_only_small_gaps(rs: list[tuple[int, int]], gap: int) -> None:
    """Coalescing covers the input, leaves gaps wider than ``gap`` only, and adds only gap bytes."""
    merged = coalesce(rs, gap)
    assert covered(rs) <= covered(merged)
    assert all(b[0] - (a[0] + a[1]) > gap for a, b in itertools.pairwise(merged))
    for offset, length in merged:  # each merged range starts and ends on input bytes
        assert offset in covered(rs)
        assert offset + length - 1 in covered(rs)


@given(ranges, ranges)
def test_set_operations_match_python_sets(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    """intersect/subtract/normalise agree with set arithmetic and return normalised lists."""
    for result, expected in (
        (normalise(a), covered(a)),
        (intersect(a, b), covered(a) & covered(b)),
        (subtract(a, b), covered(a) - covered(b)),
    ):
        assert covered(result) == expected
        assert is_normal(result)


@given(ranges, st.integers(1, 900))
def test_split_respects_chunk_bounds_without_overlap(rs: list[tuple[int, int]], size: int) -> None:
    """Chunks are at most chunk_size, never overlap, and cover exactly the input."""
    chunks = split(rs, size, ChunkKind.DATA)
    assert all(0 < c.length <= size for c in chunks)
    assert all(a.end <= b.offset for a, b in itertools.pairwise(chunks))
    assert covered([(c.offset, c.length) for c in chunks]) == covered(rs)


@given(ranges, ranges, st.integers(0, 300))
def test_plan_covers_scope_once(scope: list[tuple[int, int]], alloc: list[tuple[int, int]], gap: int) -> None:
    """Every scope byte is either copied or zeroed, never both; allocated scope bytes are copied."""
    p = plan(scope, alloc, gap=gap)
    data, zero = covered(p.data), covered(p.zero)
    assert not data & zero
    assert covered(scope) == (data | zero) & covered(scope)
    assert zero <= covered(scope)
    assert covered(scope) & covered(alloc) <= data
    assert p.total_bytes == total(p.data) + total(p.zero)


@given(st.binary(max_size=600), st.integers(1, 64))
def test_zero_runs_find_every_nonzero_byte(data: bytes, block: int) -> None:
    """Runs tile the buffer; a run marked zero holds only zeroes, so one stray byte is data."""
    runs = zero_runs(lambda o, n: not any(data[o : o + n]), len(data), block)
    assert sum(n for _, n, _ in runs) == len(data)
    assert all(a[0] + a[1] == b[0] and a[2] != b[2] for a, b in itertools.pairwise(runs))
    for start, size, zero in runs:
        if zero:
            assert not any(data[start : start + size])
