"""Helper processes that copy batches of small files.

Copying a small file is a burst of short system calls (open, copy_file_range, fchmod, utime,
close, rename). Each releases Python's GIL and must win it back, so pool threads copying small
files in one process spend most of their time queueing for the GIL: four threads measured four
times slower than four processes on this workload. A batch therefore runs in a helper process,
while the pool thread that leased the unit waits for the answer with the GIL released: the pool
still decides how many batches run at once.

Helpers start on demand (so there are never more than batches in flight) from a fork server,
are reused, and each exits when its pipe closes: a server killed with -9 leaves none behind.
Starting the fork server is slow (it imports the engine, about 0.7 s once), so ``ferry serve``
starts a few helpers in the background (:meth:`Helpers.prestart`) and its first migration does not
wait. Helpers run at a lower CPU priority than the server (:mod:`app.engines.processes`).
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import structlog

from app.engines import processes
from app.engines.files.copy import reseed_temp_names

log = structlog.get_logger(__name__)


class HelperLost(Exception):
    """A helper process died mid-batch (killed, out of memory)."""


def _serve(conn: Connection, nice: int) -> None:
    """The helper's loop: call what the parent sends, answer with the result or the exception."""
    processes.lower_priority(nice)
    reseed_temp_names()
    while True:
        try:
            function, args = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone or done with us
        try:
            answer: tuple[bool, Any] = (True, function(*args))
        except Exception as exc:
            answer = (False, exc)
        conn.send(answer)


class _Helper:
    def __init__(self, context: Any) -> None:
        self.conn, child_end = multiprocessing.Pipe(duplex=True)
        self.process = context.Process(
            target=_serve, args=(child_end, processes.helper_nice()), name="ferry-files-helper", daemon=True
        )
        self.process.start()
        child_end.close()

    def stop(self) -> None:
        self.conn.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


class Helpers:
    """A reusable set of helper processes; thread-safe."""

    def __init__(self) -> None:
        self._context = processes.context()
        self._idle: list[_Helper] = []
        self._lock = threading.Lock()
        self._closed = False

    def prestart(self, count: int) -> None:
        """Start ``count`` helpers in a background thread; calls take them as they come."""
        threading.Thread(target=self._prestart, args=(count,), name="ferry-helpers-start", daemon=True).start()

    def _prestart(self, count: int) -> None:
        for _ in range(count):
            try:
                helper = _Helper(self._context)
            except Exception:
                log.warning("copy helper not started", action="helper_start_failed", exc_info=True)
                return
            with self._lock:
                closed = self._closed
                if not closed:
                    self._idle.append(helper)
            if closed:
                helper.stop()
                return

    @property
    def idle(self) -> int:
        """Helpers started and waiting for a call."""
        with self._lock:
            return len(self._idle)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` in a helper; its exception, if any, is raised here."""
        with self._lock:
            helper = self._idle.pop() if self._idle else None
        if helper is None:
            helper = _Helper(self._context)
        try:
            helper.conn.send((function, args))
            ok, value = helper.conn.recv()
        except (EOFError, OSError) as exc:
            helper.stop()
            raise HelperLost(f"a copy helper process died: {exc!r}") from None
        with self._lock:
            self._idle.append(helper)
        if ok:
            return value
        raise value

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for helper in idle:
            helper.stop()
