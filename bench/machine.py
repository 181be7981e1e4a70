"""What the benchmarks do to the machine between runs, and how they summarise runs.

A migration reads a cold source, and this VM's disk is ext4 mounted with ``discard``: deleting a
large target slows the writes that follow until the discards are done. Each benchmark therefore
settles the disk before a tool starts (and, where the source is a real file, drops the page
cache), so that no tool pays for the one before it.

This VM also gives the memory its processes free back to the host ("free page reporting"), and
the host backs a page again only when it is next touched, at about 4 s per GiB (measured: 18 GiB
touched once took 68 s). A copy allocates gigabytes (page cache for a file target, an nbdkit
memory export's pages): whether that memory was reported in between decided, at random, whether
a run took 3 s or 9 s, for either tool. :func:`held_memory` keeps freed memory in the guest while
a benchmark runs, where the kernel allows it, and restores the setting after.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Settling: the disk counts as quiet after this many seconds without a write or a discard,
#: waited for at most the second.
QUIET_SECONDS, SETTLE_LIMIT = 1.0, 30.0


def drop_caches() -> None:
    """``sync; echo 3 > /proc/sys/vm/drop_caches`` (needs root)."""
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _sectors_moved() -> int:
    """Sectors written and discarded on every disk (a deleted file is discarded after the fact)."""
    total = 0
    for line in Path("/proc/diskstats").read_text().splitlines():
        fields = line.split()
        if len(fields) > 9 and not fields[2].startswith(("loop", "ram", "zram")):
            total += int(fields[9]) + (int(fields[16]) if len(fields) > 16 else 0)
    return total


def settle() -> None:
    """``sync``, then wait (bounded) until no disk has written or discarded for ``QUIET_SECONDS``."""
    subprocess.run(["sync"], check=True)
    deadline = time.monotonic() + SETTLE_LIMIT
    last, quiet_since = _sectors_moved(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET_SECONDS:
        time.sleep(0.1)
        now = _sectors_moved()
        if now != last:
            last, quiet_since = now, time.monotonic()


#: The guest's free page reporting, and what it is set to while a benchmark runs: report a
#: free page only after it has been free this long (ms), and however much is waiting (MiB).
PAGE_REPORTING = Path("/sys/module/page_reporting/parameters")
HELD = {"min_free_ms": "60000", "max_waiting_mib": "1048576"}


@contextmanager
def held_memory() -> Iterator[None]:
    """While the block runs, this VM's kernel gives no freed memory back to the host (see the
    module's docstring); nothing changes where that setting is absent or not writable."""
    saved: dict[str, str] = {}
    try:
        for name, value in HELD.items():
            path = PAGE_REPORTING / name
            if path.exists() and os.access(path, os.W_OK):
                saved[name] = path.read_text().strip()
                path.write_text(value)
    except OSError as exc:
        print(f"(free page reporting left as it was: {exc})", flush=True)
    if saved:
        print(f"free page reporting held off while this runs (was {saved})", flush=True)
    try:
        yield
    finally:
        for name, value in saved.items():
            (PAGE_REPORTING / name).write_text(value)


def spread(values: list[float]) -> str:
    """``median (min-max)``."""
    return f"{statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})"
