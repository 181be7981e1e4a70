"""``syncfs(2)``: write a whole filesystem's dirty data and metadata to stable storage at once.

The default durability (``checkpoint``) calls it once before a checkpoint records files as done,
instead of an ``fsync`` per file: one journal commit for thousands of files. Python's ``os`` has
no wrapper, so it is called through the C library.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syncfs.argtypes = [ctypes.c_int]
_libc.syncfs.restype = ctypes.c_int


def syncfs(directory: Path) -> None:
    """Flush the filesystem that holds ``directory``; raise OSError when the kernel reports an error
    (a write that failed since the last call, as ``fsync`` would)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(directory))
    finally:
        os.close(fd)
