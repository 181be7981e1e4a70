"""Chunk buffers outlive runs (libnbd 1.14 never lets go of a buffer a request used), so runs
borrow them from one pool and give them back: memory follows the lanes open, not the runs done."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engines.disk.buffers import PIECE, POOL, BufferPool, ChunkBuffer

from .conftest import Driver, MiB, Servers, digest

pytestmark = pytest.mark.nbd


def test_common_slices_reuse_one_wrapper_odd_ones_do_not() -> None:
    """Request-sized, request-aligned slices (nearly every request) and the whole buffer always
    come back as the same nbd.Buffer, so libnbd's kept reference is the same object each time."""
    buffer = ChunkBuffer(4 * PIECE)
    assert buffer.piece(PIECE, PIECE) is buffer.piece(PIECE, PIECE)
    assert buffer.piece(0, 4 * PIECE) is buffer.piece(0, 4 * PIECE)
    assert buffer.piece(100, PIECE) is not buffer.piece(100, PIECE)
    buffer.data[PIECE + 5] = 7
    assert bytes(buffer.piece(PIECE, PIECE).to_buffer())[5] == 7  # a view, not a copy
    assert not buffer.is_zero(PIECE, PIECE)
    assert buffer.is_zero(0, PIECE)


def test_pool_lends_back_what_was_given() -> None:
    """A buffer given back is the one lent next; only the shortfall is allocated."""
    pool = BufferPool()
    first = pool.take(MiB, 3)
    pool.give(first[:2])
    again = pool.take(MiB, 3)
    assert {id(b) for b in again[:2]} == {id(b) for b in first[:2]}
    assert again[2] not in first
    assert pool.take(2 * MiB, 1)[0].size == 2 * MiB


def test_runs_reuse_the_buffers_of_runs_before(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """Two copies one after the other: the second lends the first's buffers again, so the pool
    holds as much after the second as after the first (before, each run left 64 MiB behind).
    One lane each: how many lanes a parallel run opens depends on how its units interleave."""
    source = servers.nbdkit("sparse-random", str(32 * MiB), "seed=9", "percent=50", "runlength=1048576")
    before = POOL.idle_bytes()
    first = driver.run(source, str(tmp_path / "a.img"), {"parallel": False})
    after_first = POOL.idle_bytes()
    second = driver.run(source, str(tmp_path / "b.img"), {"parallel": False})
    assert (first.outcome, second.outcome) == ("COMPLETED", "COMPLETED")
    assert after_first >= before  # the lanes gave their buffers back
    assert POOL.idle_bytes() == after_first
    assert digest(str(tmp_path / "b.img"), 32 * MiB) == digest(source, 32 * MiB)
