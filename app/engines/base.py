"""The contract between the pool and a copy engine.

The pool knows nothing of files or disks. It asks a running job for *units* of work (a directory
listing, a batch of small files, a disk chunk), runs each on one of its own named threads, and
reports back. Everything an engine needs from the service arrives in a :class:`JobContext`.

Lifecycle of one run (the pool drives it; see :mod:`app.pool.run`)::

    engine.validate(...)            at creation, on the web thread: cheap checks, raise InvalidField
    run = engine.open(ctx)          on a pool thread: connect, restore ctx.checkpoint; raise
                                    Unreachable to be tried again later, holding no thread
    run.next_unit() -> Unit|None    repeatedly, never blocking for long
    unit.run(slot)                  on a pool thread; raise to report failure
    run.unit_finished(unit, error)  on the same thread, right after
    run.is_done()                   True when nothing is left and nothing is in flight
    run.finish()                    on a pool thread, once, after is_done(): flush, fsync, verify
    run.checkpoint()                any time, from the coordinator thread: the resumable state
    run.close()                     always, last
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from app.db.session import Database
    from app.engines.bandwidth import BandwidthLimiter


class Purpose(StrEnum):
    COPY = "copy"
    VERIFY = "verify"


class InvalidField(ValueError):
    """A migration definition an engine refuses; the API answers 422 naming ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JobFailed(Exception):
    """Raised by a unit (or ``open``/``finish``) when the whole job cannot go on.

    Any other exception from a unit is the engine's to handle in ``unit_finished`` (count, retry).
    """


class UnitInterrupted(Exception):
    """A unit gave up part way because its run is stopping (a stop, a shutdown, a lost lease):
    not a failure; what it did not finish is done again by the next run."""


class Unreachable(Exception):
    """Raised by ``open`` when an endpoint cannot be reached at the connection level (refused,
    no socket, no answer), as opposed to a definite refusal (no such export, wrong size).

    The pool tries to open the run again after ``retry_delay`` seconds, doubling, for up to
    ``timeout`` seconds; meanwhile the job stays RUNNING and holds no thread (SPEC section 3).
    """

    def __init__(self, what: str, reason: str, *, retry_delay: float, timeout: float) -> None:
        super().__init__(f"{what}: {reason}")
        #: What is waited for, for the operator: ``the source nbd+unix:///?socket=...``.
        self.what = what
        self.reason = reason
        self.retry_delay = retry_delay
        self.timeout = timeout


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """The pool thread running a unit: engines key per-worker resources (connections) on it."""

    index: int
    name: str


@dataclass(slots=True)
class Progress:
    """What an engine reports; the pool adds rate, ETA and percentage from it."""

    #: The kind's own SPEC fields (filesScanned, bytesZeroed, ...), without the derived three.
    fields: dict[str, int | float]
    #: Bytes of work finished (copied, zeroed or found equal): the basis of percentage and ETA.
    done_bytes: int
    #: Bytes of work in all, or None while unknown (a scan still discovering): then no ETA.
    total_bytes: int | None
    #: Bytes read from the source and written, the basis of ``bytesPerSecond`` (SPEC 5): never
    #: holes skipped, zeroes written without data, or files found equal. None: every done byte was.
    transferred_bytes: int | None = None

    @property
    def transferred(self) -> int:
        return self.done_bytes if self.transferred_bytes is None else self.transferred_bytes


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    kind: str
    source: str
    target: str
    options: Mapping[str, Any]


#: One discrepancy a verification found: ``(type, path or range, detail)``.
Finding = tuple[str, str, str | None]


@dataclass
class JobContext:
    spec: JobSpec
    purpose: Purpose
    #: The engine's state from the last checkpoint of this job, or None to start afresh.
    checkpoint: dict[str, Any] | None
    #: True for a pass started on a COMPLETED job (copy only what changed).
    incremental: bool
    #: The engine's own rows (``work_items``); every transaction is fenced by the run's lease.
    db: Database
    bandwidth: BandwidthLimiter
    allowed_roots: tuple[Path, ...]
    #: Tell the pool that new units may be available (wakes up to ``n`` idle workers).
    wake: Callable[[int], None] = lambda n: None
    #: Set when the run is asked to stop (user stop or shutdown): finish the current unit, start none.
    stopping: threading.Event = field(default_factory=threading.Event)
    #: Where a verification reports what differs (appended, numbered in order, to its report).
    findings: Callable[[Sequence[Finding]], None] = lambda found: None


class Unit(Protocol):
    #: A short name for metrics and logs: ``list``, ``copy``, ``chunk``, ...
    @property
    def name(self) -> str: ...

    def run(self, slot: WorkerSlot) -> None: ...


class JobRun(Protocol):
    def next_unit(self) -> Unit | None: ...

    def unit_finished(self, unit: Unit, error: BaseException | None) -> None: ...

    def is_done(self) -> bool: ...

    def finish(self) -> None: ...

    def progress(self) -> Progress: ...

    def checkpoint(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Engine(Protocol):
    kind: str

    def validate(
        self, source: str, target: str, options: Mapping[str, Any], allowed_roots: tuple[Path, ...]
    ) -> dict[str, Any]:
        """Check a definition at creation; return the normalised options or raise InvalidField."""
        ...

    def open(self, ctx: JobContext) -> JobRun: ...

    def empty_progress(self) -> dict[str, int | float]:
        """The kind's SPEC progress fields, all zero: what a job not yet run shows."""
        ...


@runtime_checkable
class RescansRegions(Protocol):
    """Optional, for engines whose source is a tree: rescan one directory on request.

    ``path`` is relative to the migration's source, normalised, without ``..``. ``run`` is the
    job's live run when it is running (queue the region now), else None (record it so the next
    run scans it).
    """

    def add_pending_region(self, db: Database, job_id: str, path: str, run: JobRun | None) -> None: ...


@runtime_checkable
class ListsFailures(Protocol):
    """Optional, for engines that go on past an entry they cannot copy (a tree's files): the
    entries of the job's latest pass not copied, in path order, each with ``path``, ``reason``,
    ``attempts`` and ``time``."""

    def failures(self, db: Database, job_id: str, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """How many entries there are, and ``limit`` of them from ``offset``."""
        ...


@runtime_checkable
class LeavesPartials(Protocol):
    """Optional, for engines that keep a half-copied file under a temporary name in the target
    between runs (so a resume continues mid-file): remove them when the job is deleted."""

    def discard_partials(self, db: Database, job_id: str, target: str) -> int:
        """Remove the job's partial files from ``target``; how many were removed."""
        ...
