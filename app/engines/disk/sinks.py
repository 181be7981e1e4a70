"""Targets as the copier sees them: write, zero, say where they already read zero, flush, read back.

Every write or zero reports through ``done(errno)`` (0 on success): asynchronously for an NBD
target (from inside its poll loop), at once for a file or device.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import nbd

from app.engines.disk.buffers import PIECE, ChunkBuffer
from app.engines.disk.endpoints import ALLOCATION, extents
from app.engines.disk.extents import Range, normalise
from app.engines.disk.writeback import Writeback

Done = Callable[[int], None]

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_FALLOC_FL_ZERO_RANGE = 0x10
#: Largest single write when zeroes must be sent as data.
_ZERO_WRITE = 4 * 1024 * 1024
# Writes to an NBD target go out in requests of at most one buffer PIECE (1 MiB). A server
# serialises work per request (nbdkit's memory plugin allocates under one lock), so 4 MiB
# writes from four connections queued up behind each other; 1 MiB requests measured up to
# 1.5x faster into a fresh memory export than 4 MiB, and faster than 256 KiB.

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class Sink(Protocol):
    #: The NBD handle the copier must poll, or None when every call completes at once.
    handle: nbd.NBD | None

    def write(self, buffer: ChunkBuffer, start: int, size: int, offset: int, done: Done) -> None:
        """Write ``size`` bytes of ``buffer`` from ``start`` at ``offset`` of the target."""
        ...

    def zero(self, offset: int, length: int, done: Done) -> None: ...
    def zero_ranges(self, ranges: list[Range]) -> list[Range]: ...
    def read(self, offset: int, length: int) -> bytes: ...
    def after_poll(self) -> None: ...
    def has_deferred(self) -> bool: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def retire(done: Done) -> Callable[[Any], int]:
    def completion(error: Any) -> int:
        done(int(error.value))
        return 1  # retire the command: nobody calls aio_command_completed on it

    return completion


def countdown(pieces: int, done: Done) -> Done:
    """A ``done`` for each of ``pieces`` requests that calls ``done`` once, after the last,
    with the first error any of them had."""
    state = {"left": pieces, "err": 0}

    def piece_done(err: int) -> None:
        state["left"] -= 1
        state["err"] = state["err"] or err
        if state["left"] == 0:
            done(state["err"])

    return piece_done


class NbdSink:
    def __init__(self, handle: nbd.NBD) -> None:
        self.handle: nbd.NBD | None = handle
        self._h = handle
        self._fast_zero = handle.can_fast_zero()
        self._can_zero = handle.can_zero()
        self._status = handle.can_meta_context(ALLOCATION)
        self._zeroes: ChunkBuffer | None = None
        self._deferred: list[Callable[[], object]] = []

    def has_deferred(self) -> bool:
        """Whether a completion callback left a request for ``after_poll`` to issue."""
        return bool(self._deferred)

    def after_poll(self) -> None:
        """Issue what completion callbacks asked for (they may not call the handle)."""
        while self._deferred:
            self._deferred.pop(0)()

    def write(self, buffer: ChunkBuffer, start: int, size: int, offset: int, done: Done) -> None:
        # Requests of at most one piece, cut at piece boundaries of the buffer so that all but
        # a run's first and last use the buffer's cached wrappers.
        end = start + size
        cuts = [start, *range((start // PIECE + 1) * PIECE, end, PIECE), end]
        piece_done = retire(countdown(len(cuts) - 1, done))
        for begin, finish in itertools.pairwise(cuts):
            self._h.aio_pwrite(buffer.piece(begin, finish - begin), offset + begin - start, piece_done)

    def zero(self, offset: int, length: int, done: Done) -> None:
        if not self._can_zero:
            self._write_zeroes(offset, length, done)
            return
        if not self._fast_zero:
            self._h.aio_zero(length, offset, retire(done))
            return

        def fast_done(err: int) -> None:
            if err in (errno.ENOTSUP, errno.EOPNOTSUPP):
                # Zeroing is slow on this export: let the server do it the slow way anyway,
                # still cheaper than sending the zeroes over the wire. Not from inside a
                # callback, which must not call into the handle: after the poll.
                self._fast_zero = False
                self._deferred.append(lambda: self._h.aio_zero(length, offset, retire(done)))
            else:
                done(err)

        self._h.aio_zero(length, offset, retire(fast_done), nbd.CMD_FLAG_FAST_ZERO)

    def _write_zeroes(self, offset: int, length: int, done: Done) -> None:
        if self._zeroes is None:
            self._zeroes = ChunkBuffer(_ZERO_WRITE)  # never written to: all zeroes for good
        pieces = range(offset, offset + length, _ZERO_WRITE)
        piece_done = retire(countdown(len(pieces), done))
        for start in pieces:
            size = min(_ZERO_WRITE, offset + length - start)
            self._h.aio_pwrite(self._zeroes.piece(0, size), start, piece_done)

    def zero_ranges(self, ranges: list[Range]) -> list[Range]:
        """The parts of ``ranges`` the export reports as reading zero (none without status)."""
        if not self._status:
            return []
        return normalise(
            (o, n) for offset, length in ranges for o, n, flags in extents(self._h, ALLOCATION, offset, length)
            if flags & nbd.STATE_ZERO
        )  # fmt: skip

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self._h.pread(length, offset))

    def flush(self) -> None:
        if self._h.can_flush():
            self._h.flush()

    def close(self) -> None:
        close_handle(self._h)


#: Largest single pwrite to a file target.
_WRITE_SLICE = 1024 * 1024


class FileSink:
    """A raw image file or block device; each sink has its own descriptor."""

    handle: nbd.NBD | None = None

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self._punch = True
        self._writeback = Writeback(self._fd)

    def write(self, buffer: ChunkBuffer, start: int, size: int, offset: int, done: Done) -> None:
        error = self._pwrite(buffer.view[start : start + size], offset)
        if not error:
            self._writeback.wrote(offset, size)
        done(error)

    def _pwrite(self, view: memoryview, offset: int) -> int:
        """Write all of ``view`` in slices: several workers writing whole 4 MiB chunks to one
        file contend on its inode lock (each write holds it), smaller slices cost more calls:
        1 MiB measured best against 256 KiB, 2 MiB and 4 MiB with 4 workers."""
        try:
            while view:
                written = os.pwrite(self._fd, view[:_WRITE_SLICE], offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            return exc.errno or errno.EIO
        return 0

    def zero(self, offset: int, length: int, done: Done) -> None:
        modes = [_FALLOC_FL_ZERO_RANGE | _FALLOC_FL_KEEP_SIZE]
        if self._punch:
            modes.insert(0, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE)
        for mode in modes:
            if _libc.fallocate(self._fd, mode, offset, length) == 0:
                done(0)
                return
            if ctypes.get_errno() not in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                done(ctypes.get_errno())
                return
            self._punch = False
        zeroes = memoryview(bytes(min(_ZERO_WRITE, length)))
        for start in range(offset, offset + length, _ZERO_WRITE):
            err = self._pwrite(zeroes[: min(_ZERO_WRITE, offset + length - start)], start)
            if err:
                done(err)
                return
        done(0)

    def zero_ranges(self, ranges: list[Range]) -> list[Range]:
        """The holes of the file within ``ranges``; a device (all data to lseek) has none."""
        holes: list[Range] = []
        try:
            for start, length in ranges:
                at, end = start, start + length
                while at < end:
                    data = self._next_data(at)
                    if data >= end:
                        holes.append((at, end - at))
                        break
                    if data > at:
                        holes.append((at, data - at))
                    at = os.lseek(self._fd, data, os.SEEK_HOLE)
        except OSError:
            return []  # no hole information: zero everything, as if none were known
        return normalise(holes)

    def _next_data(self, offset: int) -> int:
        try:
            return os.lseek(self._fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data from here to the end of the file
                return 2**63
            raise

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def after_poll(self) -> None:
        pass

    def has_deferred(self) -> bool:
        return False

    def flush(self) -> None:
        self._writeback.forget()
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def close_handle(handle: nbd.NBD) -> None:
    """Disconnect politely when the connection still works and nothing is in flight.

    libnbd 1.14's Python handle has no ``close``: the socket closes when the last reference
    to the handle goes, so callers drop theirs after this.
    """
    try:
        if handle.aio_is_ready() and handle.aio_in_flight() == 0:
            handle.shutdown()
    except nbd.Error:
        pass
