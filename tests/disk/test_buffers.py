"""libnbd 1.14 never lets go of a buffer a request used: a chunk buffer hands out one wrapper per
common slice, so requests do not leak a wrapper each."""

from __future__ import annotations

import pytest

from app.engines.disk.buffers import PIECE, ChunkBuffer

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
