"""Open a disk job's endpoints and plan its pass: the I/O half of ``DiskEngine.open``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbd

from app.engines.base import InvalidField, JobContext, JobFailed, Unreachable
from app.engines.disk import endpoints
from app.engines.disk.connections import Lane, LaneRefused, Lanes
from app.engines.disk.endpoints import ALLOCATION, ConnectError, bitmap_context
from app.engines.disk.extents import Range, coalesce, normalise
from app.engines.disk.handles import Handles
from app.engines.disk.lane import LaneSpec
from app.engines.disk.options import DiskOptions, MiB

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
    #: The first lane, for planning (its helper asks the servers): see :func:`planned`.
    first: Lane
    size: int


def open_job(ctx: JobContext, options: DiskOptions, *, writable: bool) -> Opened:
    """Open the first lane; Unreachable when a server is not there (yet), JobFailed when one
    refuses for good."""
    spec = ctx.spec
    target = _target(spec.target, ctx.allowed_roots)

    def lane_spec(timeout: float) -> LaneSpec:
        return LaneSpec(
            spec.source, endpoints.source_contexts(options.dirty_bitmap), target, endpoints.is_nbd_uri(target),
            writable, options.chunk_size, _buffers(options.chunk_size), timeout,
        )  # fmt: skip

    try:
        first = Lane(lane_spec(OPEN_TIMEOUT))
    except LaneRefused as exc:
        if isinstance(exc.error, ConnectError) and exc.side is not None:
            raise _refused(exc.side, exc.error, options) from None
        if isinstance(exc.error, JobFailed):
            raise exc.error from None
        raise JobFailed(str(exc)) from None

    lanes = Lanes(lambda: Lane(lane_spec(EXTRA_TIMEOUT)), None if options.parallel else 1, spec.job_id)
    lanes.add(first)
    return Opened(lanes, first, first.size)


def _refused(side: str, exc: ConnectError, options: DiskOptions) -> Exception:
    """What a failed connect at open means: wait for the server, or fail now."""
    if not exc.transient:
        return JobFailed(f"{side}: {exc}")
    reason = re.sub(r"^nbd_\w+: ", "", exc.reason)  # libnbd's function name says nothing to an operator
    return Unreachable(f"the {side} {exc.uri}", reason, retry_delay=options.retry_delay, timeout=options.open_timeout)


def _buffers(chunk_size: int) -> int:
    return max(2, min(8, INFLIGHT_BYTES // chunk_size))


def _target(target: str, roots: tuple[Path, ...]) -> str:
    """An NBD URI as given; a path confined to the roots (the lanes open or create it)."""
    if endpoints.is_nbd_uri(target):
        return target
    try:
        return str(endpoints.resolve_path(target, roots).path)
    except InvalidField as exc:
        raise JobFailed(f"target: {exc.message}") from None


def planned(handles: Handles, options: DiskOptions) -> tuple[list[Range], list[Range]]:
    """In the first lane's helper: what this pass covers, and where the source may hold data
    within it."""
    covered = scope(options, handles.source, handles.source.get_size())
    return covered, allocated(handles.source, covered, options.coalesce_gap)


def zero_ranges(handles: Handles, ranges: list[Range]) -> list[Range]:
    """In a lane's helper: the parts of ``ranges`` where the target already reads zero."""
    return handles.sink.zero_ranges(ranges)


def flush(handles: Handles) -> None:
    """In a lane's helper: flush the target connection."""
    handles.sink.flush()


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
