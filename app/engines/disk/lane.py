"""A lane's helper process: its two connections, its buffers and its copy pipeline.

Copying a disk is many small pieces of Python work per megabyte: a completion callback for each
1 MiB read and write, a zero scan per 64 KiB block, a digest per range compared. In the server's
process every one of them waited for the GIL behind the web server's event loop and made it wait
in turn (two disk copies took a stats answer's p99 from 10 to about 40 ms). So each lane's
connections live in a process of their own, and the pool thread that runs a unit on the lane only
feeds it chunks and hears of their outcomes, over a pipe, with the GIL released while it waits.

The conversation, parent to helper (each helper serves one lane and exits when its pipe closes,
so a server killed with -9 leaves none behind):

* at start, the helper opens the lane from its :class:`LaneSpec` and answers ``("opened", size,
  multi_conn)`` or ``("refused", side, exception)``;
* ``("call", function, args)``: ``function(handles, *args)`` runs here, answered ``("result",
  True, value)`` or ``("result", False, exception)`` (planning, flush, compare);
* ``("chunks", [...])``: a copy session starts or takes more, ``("end",)`` ends it once what it
  holds is done. Each chunk is answered ``("done", outcome)`` as its last write completes, or
  ``("failed", outcome)``; the session with ``("ended", unstarted, lost)``, where ``lost`` says
  why the connections are unusable (the helper then exits);
* ``("close",)``: wait for replies still due, disconnect, exit.

The parent throttles (the bandwidth limit is the node's) and decides how many chunks are out at
once; a stop only means it sends no more.
"""

from __future__ import annotations

import os
import pickle
import stat
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from app.engines import processes
from app.engines.base import JobFailed
from app.engines.disk.buffers import ChunkBuffer
from app.engines.disk.copier import copy_batch
from app.engines.disk.endpoints import ConnectError, connect, size_problem
from app.engines.disk.extents import Chunk
from app.engines.disk.handles import Handles
from app.engines.disk.sinks import FileSink, NbdSink, Sink, close_handle
from app.engines.disk.work import Outcome

#: A stop event that never fires: in a helper, stopping is the parent sending no more chunks.
_NEVER = threading.Event()


@dataclass(frozen=True, slots=True)
class LaneSpec:
    """What a helper needs to open its lane; a target path is already confined to the roots."""

    source: str
    contexts: tuple[str, ...]
    target: str
    target_is_nbd: bool
    writable: bool
    chunk_size: int
    buffers: int
    timeout: float


def open_handles(spec: LaneSpec) -> Handles:
    """Connect the source, then the target (a path target is created sparse if it is new and
    the lane writes); ConnectError or JobFailed, with ``side`` set, when either refuses."""
    try:
        source = connect(spec.source, contexts=spec.contexts, timeout=spec.timeout)
    except ConnectError as exc:
        raise Refused("source", exc) from None
    try:
        size = source.get_size()
        sink = _open_sink(spec, size)
    except BaseException:
        close_handle(source)
        raise
    return Handles(source, sink, [ChunkBuffer(spec.chunk_size) for _ in range(spec.buffers)])


def _open_sink(spec: LaneSpec, size: int) -> Sink:
    if spec.target_is_nbd:
        try:
            handle = connect(spec.target, timeout=spec.timeout)
        except ConnectError as exc:
            raise Refused("target", exc) from None
        problem = size_problem(size, handle.get_size(), is_block=False)
        if problem is None and spec.writable and handle.is_read_only():
            problem = "the target export is read-only"
        if problem is not None:
            close_handle(handle)
            raise JobFailed(f"target: {problem}")
        return NbdSink(handle)
    if not os.path.exists(spec.target):
        if not spec.writable:
            raise JobFailed(f"target: {spec.target} does not exist")
        _create_sparse(spec.target, size)
    else:
        fd = os.open(spec.target, os.O_RDONLY | os.O_CLOEXEC)
        try:
            is_block = stat.S_ISBLK(os.fstat(fd).st_mode)
            problem = size_problem(size, os.lseek(fd, 0, os.SEEK_END), is_block=is_block)
        finally:
            os.close(fd)
        if problem:
            raise JobFailed(f"target: {problem}")
    return FileSink(Path(spec.target))


def _create_sparse(path: str, size: int) -> None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return  # another lane created it a moment ago, of the same size
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


class Refused(Exception):
    """A connect at open failed: which side, and the ConnectError."""

    def __init__(self, side: str, error: ConnectError) -> None:
        super().__init__(side, error)
        self.side = side
        self.error = error


def serve(conn: Connection, spec: LaneSpec, nice: int) -> None:
    """The helper's whole life: open the lane, answer the parent until it closes the pipe."""
    processes.lower_priority(nice)
    try:
        handles = open_handles(spec)
    except Refused as exc:
        conn.send(("refused", exc.side, exc.error))
        return
    except Exception as exc:
        conn.send(("refused", None, exc))
        return
    multi_conn = handles.sink.handle is not None and bool(handles.sink.handle.can_multi_conn())
    conn.send(("opened", handles.source.get_size(), multi_conn))
    try:
        _answer(conn, handles)
    finally:
        handles.close()


def _answer(conn: Connection, handles: Handles) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "call":
            function, args = message[1], message[2]
            try:
                answer: tuple[Any, ...] = ("result", True, function(handles, *args))
            except Exception as exc:
                answer = ("result", False, exc)
            try:
                conn.send(answer)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an exception that does not pickle
                conn.send(("result", False, RuntimeError(f"{type(answer[2]).__name__}: {answer[2]} ({exc})")))
        elif kind == "chunks":
            try:
                if not _Session(conn, handles, message[1]).run():
                    return
            except (EOFError, OSError):
                return  # the parent is gone
        elif kind == "close":
            return


class _Session:
    """One copy unit on this lane: chunks as the parent sends them, outcomes as they complete."""

    def __init__(self, conn: Connection, handles: Handles, chunks: list[Chunk]) -> None:
        self.conn = conn
        self.handles = handles
        self.inbox: deque[Chunk] = deque(chunks)
        self.ended = False

    def run(self) -> bool:
        """Copy until the parent ends the session; False when the lane is lost."""
        while True:
            result = copy_batch(
                self.handles, self._take(len(self.handles.buffers)), _NEVER, _no_throttle,
                self._send("done"), self._take, on_failed=self._send("failed"),
            )  # fmt: skip
            if result.lost is not None:
                unstarted = result.unstarted + list(self.inbox)
                for outcome in result.failed:
                    self.conn.send(("failed", outcome))
                self.conn.send(("ended", unstarted, result.lost))
                return False
            if self.ended and not self.inbox:
                self.conn.send(("ended", [], None))
                return True
            if not self.inbox:
                self._read_news(block=True)

    def _take(self, count: int) -> list[Chunk]:
        """The pipeline's refill: what the parent sent meanwhile. (The parent keeps chunks
        waiting here, ``Lane.window``, so a freed buffer finds one; the wait on the servers is
        libnbd's own poll, in C, with no pipe to watch.)"""
        self._read_news()
        return [self.inbox.popleft() for _ in range(min(count, len(self.inbox)))]

    def _read_news(self, block: bool = False) -> None:
        """Take in what the parent sent; EOFError if it is gone (the helper then exits)."""
        while block or self.conn.poll(0):
            message = self.conn.recv()
            block = False
            if message[0] == "chunks":
                self.inbox.extend(message[1])
            elif message[0] == "end":
                self.ended = True

    def _send(self, kind: str) -> Callable[[Outcome], None]:
        return lambda outcome: self.conn.send((kind, outcome))


def _no_throttle(_nbytes: int) -> None:
    pass
