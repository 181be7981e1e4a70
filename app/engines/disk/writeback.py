"""Write a file target the way a copy of many gigabytes should: flushed as it goes, not cached.

Every write is handed to the disk at once (``sync_file_range(WRITE)``); once a lane has written
more than ``window`` bytes since, the write's writeback is waited for and its pages are dropped
from the page cache (``POSIX_FADV_DONTNEED`` drops only clean pages, hence the wait). So a copy
neither piles gigabytes of dirty pages up for the final fsync to write at once (the fsync stays
short) nor evicts the cache other work on the host depends on, and the disk works the whole
time, in step with the copy. Where ``sync_file_range`` is refused, writes are only advised
away, which starts their writeback too.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from collections import deque

_SYNC_FILE_RANGE_WAIT_BEFORE = 1
_SYNC_FILE_RANGE_WRITE = 2
_SYNC_FILE_RANGE_WAIT_AFTER = 4
_START = _SYNC_FILE_RANGE_WRITE
_FINISH = _SYNC_FILE_RANGE_WAIT_BEFORE | _SYNC_FILE_RANGE_WRITE | _SYNC_FILE_RANGE_WAIT_AFTER

#: Bytes a lane's writes run ahead of the disk before it waits (per file descriptor); 16 MiB
#: measured faster than 2 or 8 MiB and no slower than 32 or 64 MiB (bench/disk_bench.py).
WINDOW = 16 * 1024 * 1024

# ctypes releases the GIL around foreign calls, so a lane waiting on the disk blocks no other.
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    _sync_file_range.restype = ctypes.c_int


class Writeback:
    """Follows one descriptor's writes; ``wrote`` after each, ``forget`` before an fsync."""

    def __init__(self, fd: int, window: int = WINDOW) -> None:
        self._fd = fd
        self._window = window
        self._behind: deque[tuple[int, int]] = deque()
        self._behind_bytes = 0
        self._usable = _sync_file_range is not None

    def wrote(self, offset: int, length: int) -> None:
        """``length`` bytes at ``offset`` were just written: start their writeback, retire old ones."""
        if not self._sync(offset, length, _START):
            self._evict(offset, length)
            return
        self._behind.append((offset, length))
        self._behind_bytes += length
        while self._behind_bytes > self._window:
            self._retire()

    @property
    def pending_bytes(self) -> int:
        """Bytes written but not yet waited for and dropped from the cache."""
        return self._behind_bytes

    def forget(self) -> None:
        """Retire every slice still followed (the caller is about to fsync anyway)."""
        while self._behind:
            self._retire()

    def _retire(self) -> None:
        offset, length = self._behind.popleft()
        self._behind_bytes -= length
        self._sync(offset, length, _FINISH)
        self._evict(offset, length)

    def _evict(self, offset: int, length: int) -> None:
        # Only advice: a descriptor that takes none (a pipe) is written all the same.
        with contextlib.suppress(OSError):
            os.posix_fadvise(self._fd, offset, length, os.POSIX_FADV_DONTNEED)

    def _sync(self, offset: int, length: int, flags: int) -> bool:
        """sync_file_range; False when this system or file cannot (then never tried again).

        Errors of the writeback itself are not lost: the final fsync reports them.
        """
        if not self._usable or _sync_file_range is None:
            return False
        if _sync_file_range(self._fd, offset, length, flags) == 0:
            return True
        if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP):
            self._usable = False
        return False
