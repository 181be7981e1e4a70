"""Sizes that bound a files run's units and memory; defaults suit local disks."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Tuning:
    #: Directory entries one listing unit handles before it yields its worker.
    list_step: int = 2000
    #: Regions not yet opened that one listing unit may take together (see ``units.ListUnit``).
    list_group: int = 8
    #: Small files one listing unit copies itself, in all its regions (the rest go to batches):
    #: at most this many, this many bytes, and none once it has run this many seconds.
    inline_files: int = 1024
    inline_bytes: int = 32 * MiB
    inline_seconds: float = 0.5
    #: A small-file batch ends at this many files or this many bytes, whichever comes first.
    batch_files: int = 64
    batch_bytes: int = 8 * MiB
    #: Files larger than this are copied (and compared) in ranges of this size, one unit each.
    range_size: int = 32 * MiB
    #: While this many file tasks wait for a copy unit, no listing is handed out (back-pressure).
    queue_bound: int = 20_000
    #: Pending regions kept in memory; the newest beyond it spill to ``work_items``.
    frontier_bound: int = 10_000
    #: Spilled regions taken back per refill.
    refill: int = 2_000
    #: Seconds between checkpoints of a copy (each syncs the target first, see ``durable``).
    checkpoint_every: float = 2.0
    #: Copy small-file batches in helper processes (see :mod:`app.engines.files.helpers`).
    helpers: bool = True
