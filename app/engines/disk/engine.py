"""``DiskEngine``: copy a virtual disk over NBD (SPEC section 3, disk migrations)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.engines.base import InvalidField, JobContext, JobFailed, JobRun, Purpose
from app.engines.disk import endpoints, opening
from app.engines.disk.endpoints import ConnectError, connect
from app.engines.disk.extents import ChunkKind, normalise, plan, split, subtract
from app.engines.disk.options import DiskOptions, parse_options
from app.engines.disk.runs import CopyRun, VerifyRun
from app.engines.disk.sinks import close_handle
from app.engines.disk.verify import Checker
from app.engines.disk.work import Counters, WorkQueue

#: Seconds ``validate`` may spend on each server: it runs on a web request.
PROBE_TIMEOUT = 1.5
#: Zero chunks carry no data, so they may be much larger than data chunks.
ZERO_CHUNK = 256 * 1024 * 1024


class DiskEngine:
    kind = "disk"

    def validate(
        self, source: str, target: str, options: Mapping[str, Any], allowed_roots: tuple[Path, ...]
    ) -> dict[str, Any]:
        parsed = parse_options(options)
        if not endpoints.is_nbd_uri(source):
            raise InvalidField(
                "source", "expected an NBD URI (nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH)"
            )
        endpoints.check_nbd_uri("source", source)
        size = _probe_source(source, parsed)
        if endpoints.is_nbd_uri(target):
            endpoints.check_nbd_uri("target", target)
            _probe_nbd_target(target, size)
        else:
            found = endpoints.resolve_path(target, allowed_roots)
            if found.exists:
                problem = endpoints.size_problem(size, endpoints.path_size(found), is_block=found.is_block)
                if problem:
                    raise InvalidField("target", problem)
        return parsed.as_dict()

    def open(self, ctx: JobContext) -> JobRun:
        try:
            options = parse_options(ctx.spec.options)
        except InvalidField as exc:
            raise JobFailed(str(exc)) from None
        verifying = ctx.purpose is Purpose.VERIFY
        opened = opening.open_job(ctx, options, writable=not verifying)
        try:
            return _verify_run(ctx, options, opened) if verifying else _copy_run(ctx, options, opened)
        except BaseException:
            opened.lanes.close()
            raise

    def empty_progress(self) -> dict[str, int | float]:
        return Counters().fields()


def _copy_run(ctx: JobContext, options: DiskOptions, opened: opening.Opened) -> CopyRun:
    scope, allocated = opened.first.call(opening.planned, options)
    full = plan(scope, allocated, gap=options.coalesce_gap)
    queue = WorkQueue(options.max_retries, options.retry_delay)
    done = _restore(ctx.checkpoint, queue)
    data, zero = subtract(full.data, done), subtract(full.zero, done)
    # Holes need zeroing only where the target does not already read zero (a new sparse file,
    # a fresh export): asked once here, not per chunk on the lanes' connections mid-copy.
    already = opened.first.call(opening.zero_ranges, zero)
    queue.skip(already)
    zero = subtract(zero, already)
    chunks = split(data, options.chunk_size, ChunkKind.DATA) + split(zero, ZERO_CHUNK, ChunkKind.ZERO)
    queue.add(sorted(chunks, key=lambda chunk: chunk.offset))
    checker = None
    if options.verify:
        checker = Checker(options.chunk_size)
        checker.add(normalise(full.data + full.zero))
    return CopyRun(ctx, opened.lanes, queue, checker, options.chunk_size)


def _restore(checkpoint: dict[str, Any] | None, queue: WorkQueue) -> list[tuple[int, int]]:
    """Take back the done ranges and counters of an earlier run of this pass."""
    if not checkpoint or checkpoint.get("version") != 1:
        return []
    done = normalise((int(o), int(n)) for o, n in checkpoint.get("done", []))
    counters = Counters.from_fields(checkpoint.get("counters", {}))
    counters.bytes_total = counters.done_bytes
    counters.extents_total = counters.extents_done
    queue.counters = counters
    queue.done = list(done)
    return done


def _verify_run(ctx: JobContext, options: DiskOptions, opened: opening.Opened) -> VerifyRun:
    checker = Checker(options.chunk_size)
    checker.add([(0, opened.size)] if opened.size else [])
    return VerifyRun(ctx, opened.lanes, checker)


def _probe_source(uri: str, options: DiskOptions) -> int:
    contexts = endpoints.source_contexts(options.dirty_bitmap)
    try:
        handle = connect(uri, contexts=contexts, timeout=PROBE_TIMEOUT)
    except ConnectError as exc:
        raise InvalidField("source", str(exc)) from None
    try:
        size: int = handle.get_size()
        if options.dirty_bitmap is not None and not handle.can_meta_context(contexts[1]):
            raise InvalidField("options.dirtyBitmap", f"the source exports no bitmap {options.dirty_bitmap!r}")
    finally:
        close_handle(handle)
    extents = normalise(list(options.changed_extents or []))
    if extents and sum(extents[-1]) > size:
        raise InvalidField("options.changedExtents", f"{sum(extents[-1])} is past the end of the disk ({size})")
    return size


def _probe_nbd_target(uri: str, size: int) -> None:
    try:
        handle = connect(uri, timeout=PROBE_TIMEOUT)
    except ConnectError as exc:
        raise InvalidField("target", str(exc)) from None
    try:
        problem = endpoints.size_problem(size, handle.get_size(), is_block=False)
        if problem is None and handle.is_read_only():
            problem = "the target export is read-only"
    finally:
        close_handle(handle)
    if problem:
        raise InvalidField("target", problem)
