"""Open a disk job's endpoints and plan its pass: the I/O half of ``DiskEngine.open``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbd

from app.engines.base import InvalidField, JobContext, JobFailed, Unreachable
from app.engines.disk import endpoints
from app.engines.disk.buffers import POOL, ChunkBuffer
from app.engines.disk.connections import Lane, Lanes
from app.engines.disk.endpoints import ALLOCATION, ConnectError, bitmap_context, connect
from app.engines.disk.extents import Range, coalesce, normalise
from app.engines.disk.options import DiskOptions, MiB
from app.engines.disk.sinks import FileSink, NbdSink, Sink, close_handle

#: Seconds to wait for the first connection of a run.
OPEN_TIMEOUT = 10.0
#: Seconds to wait for each further connection; a full server (qemu-nbd without -e) never answers.
EXTRA_TIMEOUT = 3.0
#: Bytes of reads one lane keeps in flight at most (four 4 MiB chunks). More is not faster:
#: with four lanes on two cores, 64 MiB per lane measured 5-10 % slower than 16 MiB into a
#: file, a fresh memory export and behind a 1 ms read delay (more server threads contending).
INFLIGHT_BYTES = 16 * MiB


@dataclass(slots=True)
class Opened:
    lanes: Lanes
    #: The source connection of the first lane, for planning (on the opening thread only).
    source: nbd.NBD
    #: The target of the first lane, for planning likewise.
    sink: Sink
    size: int


def open_job(ctx: JobContext, options: DiskOptions, *, writable: bool) -> Opened:
    """Connect the first lane; Unreachable when a server is not there (yet), JobFailed when one
    refuses for good."""
    spec = ctx.spec
    contexts = endpoints.source_contexts(options.dirty_bitmap)
    try:
        source = connect(spec.source, contexts=contexts, timeout=OPEN_TIMEOUT)
    except ConnectError as exc:
        raise _refused("source", exc, options) from None
    try:
        size = source.get_size()
        make_sink = _sink_factory(spec.target, size, ctx.allowed_roots, writable=writable)
        try:
            sink = make_sink(OPEN_TIMEOUT)
        except ConnectError as exc:
            raise _refused("target", exc, options) from None
        first = Lane(source, sink, _buffers(options.chunk_size))
    except BaseException:
        close_handle(source)
        raise

    def open_lane() -> Lane:
        handle = connect(spec.source, timeout=EXTRA_TIMEOUT)
        try:
            return Lane(handle, make_sink(EXTRA_TIMEOUT), _buffers(options.chunk_size))
        except BaseException:
            close_handle(handle)
            raise

    lanes = Lanes(open_lane, None if options.parallel else 1, spec.job_id)
    lanes.add(first)
    return Opened(lanes, source, first.sink, size)


def _refused(side: str, exc: ConnectError, options: DiskOptions) -> Exception:
    """What a failed connect at open means: wait for the server, or fail now."""
    if not exc.transient:
        return JobFailed(f"{side}: {exc}")
    reason = re.sub(r"^nbd_\w+: ", "", exc.reason)  # libnbd's function name says nothing to an operator
    return Unreachable(f"the {side} {exc.uri}", reason, retry_delay=options.retry_delay, timeout=options.open_timeout)


def _buffers(chunk_size: int) -> list[ChunkBuffer]:
    return POOL.take(chunk_size, max(2, min(8, INFLIGHT_BYTES // chunk_size)))


def _sink_factory(target: str, size: int, roots: tuple[Path, ...], *, writable: bool) -> Callable[[float], Sink]:
    if endpoints.is_nbd_uri(target):
        return lambda timeout: _nbd_sink(target, size, timeout, writable=writable)
    try:
        found = endpoints.resolve_path(target, roots)
    except InvalidField as exc:
        raise JobFailed(f"target: {exc.message}") from None
    if not found.exists:
        if not writable:
            raise JobFailed(f"target: {found.path} does not exist")
        _create_sparse(found.path, size)
    else:
        problem = endpoints.size_problem(size, endpoints.path_size(found), is_block=found.is_block)
        if problem:
            raise JobFailed(f"target: {problem}")
    return lambda timeout: FileSink(found.path)


def _create_sparse(path: Path, size: int) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def _nbd_sink(uri: str, size: int, timeout: float, *, writable: bool) -> NbdSink:
    handle = connect(uri, timeout=timeout)
    problem = endpoints.size_problem(size, handle.get_size(), is_block=False)
    if problem is None and writable and handle.is_read_only():
        problem = "the target export is read-only"
    if problem is not None:
        close_handle(handle)
        raise JobFailed(f"target: {problem}")
    return NbdSink(handle)


def scope(options: DiskOptions, source: nbd.NBD, size: int) -> list[Range]:
    """What this pass covers: the whole disk, the changed extents, or the dirty bitmap."""
    if options.changed_extents is not None:
        ranges = normalise(options.changed_extents)
        if ranges and sum(ranges[-1]) > size:
            raise JobFailed(f"options.changedExtents: {sum(ranges[-1])} is past the end of the disk ({size})")
        return ranges
    if options.dirty_bitmap is not None:
        if not source.can_meta_context(bitmap_context(options.dirty_bitmap)):
            raise JobFailed(f"options.dirtyBitmap: the source exports no bitmap {options.dirty_bitmap!r}")
        return endpoints.dirty(source, options.dirty_bitmap, size)
    return [(0, size)] if size else []


def allocated(source: nbd.NBD, ranges: list[Range], gap: int) -> list[Range]:
    """Where the source may hold data, asked only over (coalesced) ``ranges``."""
    if not source.can_meta_context(ALLOCATION):
        return ranges
    found: list[Range] = []
    for offset, length in coalesce(ranges, gap):
        found.extend(
            (o, n) for o, n, flags in endpoints.extents(source, ALLOCATION, offset, length)
            if not flags & nbd.STATE_ZERO
        )  # fmt: skip
    return found
