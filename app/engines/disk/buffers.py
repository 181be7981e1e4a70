"""Chunk buffers: allocated once per lane, and never handed to libnbd twice in a new wrapper
when an old one will do.

libnbd 1.14's Python binding keeps a reference to the object behind every buffer an
asynchronous request used (one per ``aio_pread`` or ``aio_pwrite``, never released). So a buffer
once used can never be freed, and a fresh ``nbd.Buffer`` over a fresh memoryview for each
request leaks that view (about 200 bytes a request: 400 MB over a terabyte of 1 MiB requests).

Hence each buffer hands out the same ``nbd.Buffer`` for the same slice (:meth:`ChunkBuffer.piece`)
for the request-sized, request-aligned slices that nearly every request uses; odd slices (the
tail of an extent, a data run between zero runs) get a fresh wrapper, and leak it. What is kept
is freed for good when the lane's helper process exits (:mod:`app.engines.disk.lane`): memory
follows the lanes open, not the runs done.
"""

from __future__ import annotations

import nbd

#: Slices of this size, at offsets that are multiples of it, are wrapped once and reused.
PIECE = 1024 * 1024


class ChunkBuffer:
    """One chunk's worth of memory, with cached libnbd wrappers over its common slices."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data = bytearray(size)
        self.view = memoryview(self.data)
        self._whole = nbd.Buffer.from_buffer(self.data)
        self._pieces: dict[tuple[int, int], nbd.Buffer] = {}

    def piece(self, start: int, size: int) -> nbd.Buffer:
        """An ``nbd.Buffer`` over ``[start, start + size)`` for one asynchronous request."""
        if start == 0 and size == self.size:
            return self._whole
        if size == PIECE and start % PIECE == 0:
            key = (start, size)
            found = self._pieces.get(key)
            if found is None:
                found = self._pieces[key] = nbd.Buffer.from_buffer(self.view[start : start + size])
            return found
        return nbd.Buffer.from_buffer(self.view[start : start + size])

    def is_zero(self, start: int, size: int) -> bool:
        """Whether every byte of the slice is zero (checked in C, every byte)."""
        return bool(self._whole.is_zero(start, size))
