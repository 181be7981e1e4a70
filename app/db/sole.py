"""SQLite serves one node: a lock on the database file keeps a second ``ferry serve`` out.

The lock is ``flock`` on the database file itself, so it goes with the process that holds it,
however that process ends (a kill -9 leaves no stale lock, unlike a PID file); SQLite's own locks
are POSIX record locks, which ``flock`` does not touch.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url


class DatabaseInUse(Exception):
    """Another live process serves this SQLite database."""


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


class SoleNodeLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, describe_holder: Callable[[], str] | None = None) -> None:
        """Take the lock or raise :class:`DatabaseInUse` naming the process that has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = describe_holder() if describe_holder is not None else "another process"
            raise DatabaseInUse(
                f"the SQLite database {self.path} is served by {holder}; SQLite serves one node: "
                "stop that one, or use PostgreSQL (FERRY_DATABASE_URL) to run several nodes"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
