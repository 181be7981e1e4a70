"""The entries a files pass could not copy: one record per path, journalled, tried again.

Not thread-safe: the copy run calls it under its own lock, and its records reach the ``failed``
rows of ``work_items`` with the run's checkpoints (through the journal), so a restart, a resume
or another node knows them.

Each record names the region whose listing tries the entry again (:class:`Retry`): a file's own
directory, listed again as a *relist* (its other files compare equal and are not copied again, its
subdirectories are not queued again), or a directory that could not be created or listed, listed
whole. An entry that does not fail again during that listing is copied: its record goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from app.engines.files.frontier import Journal
from app.engines.files.regions import parent_region
from app.engines.files.store import FAILED

#: Records carried in the checkpoint's summary (the migration object shows them); the whole
#: list is at ``GET /migrations/{id}/failures``.
RECENT = 20


class What(Enum):
    """What failed, which says how it is tried again."""

    #: A file, link or special file of a directory: its directory is listed again as a relist.
    ENTRY = "entry"
    #: A directory that could not be created or listed: its subtree is still to do, listed whole.
    DIRECTORY = "directory"
    #: A directory copied whose mode or times could not be set: listed again as a relist.
    UNFINISHED = "unfinished"
    #: A target entry ``targetMatch`` could not remove: its directory is listed whole.
    DELETION = "deletion"


@dataclass(frozen=True, slots=True)
class Retry:
    """List ``region`` again: as a relist (its files compared again) or whole (never listed)."""

    region: str
    relist: bool


def shown(relpath: str) -> str:
    """An entry's path as the API shows it: from the source's root, ``/`` for the root itself."""
    return "/" + relpath


class Failures:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._records: dict[str, dict[str, Any]] = {}
        #: Paths being tried again, by the region whose listing tries them.
        self._trying: dict[str, set[str]] = {}
        #: Tries of this run: 0 in the pass, one more at each :meth:`try_again`. An entry failing
        #: twice in one try (a directory its parent's relist and its own listing both create)
        #: counts one attempt.
        self._try = 0

    def __len__(self) -> int:
        return len(self._records)

    def restore(self, rows: Mapping[str, Any]) -> None:
        """Take the records of the last checkpoint (``failed`` rows)."""
        for relpath, record in rows.items():
            if isinstance(record, dict):
                self._records[relpath] = {**record, "try": -1}  # a try of an earlier run

    # -- recording ------------------------------------------------------------------------------

    def add(self, relpath: str, why: str, what: What = What.ENTRY) -> None:
        """``relpath`` could not be copied (or, for DELETION, removed from the target)."""
        if what is What.ENTRY:
            retry = Retry(parent_region(relpath), relist=True)
        elif what is What.DIRECTORY:
            retry = Retry(relpath, relist=False)
        elif what is What.UNFINISHED:
            retry = Retry(relpath, relist=True)
        else:  # a relist does not match the target: list the directory whole
            retry = Retry(parent_region(relpath), relist=False)
        self._record(relpath, why, retry)

    def _record(self, relpath: str, why: str, retry: Retry) -> None:
        previous = self._records.get(relpath)
        if previous is not None:
            self._trying.get(str(previous.get("region")), set()).discard(relpath)
        attempts = int(previous.get("attempts") or 0) if previous is not None else 0
        if previous is None or previous.get("try") != self._try:
            attempts += 1
        record = {
            "reason": why,
            "attempts": attempts,
            "try": self._try,
            "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "region": retry.region,
            "relist": retry.relist,
        }
        self._records[relpath] = record
        self._journal.put(FAILED, relpath, record)

    # -- trying again ---------------------------------------------------------------------------

    def try_again(self) -> list[Retry]:
        """Every record is tried once more: the regions to list for it, each region once (listed
        whole if any of its records needs it)."""
        self._try += 1
        regions: dict[str, bool] = {}
        for relpath, record in self._records.items():
            region = str(record.get("region", parent_region(relpath)))
            relist = bool(record.get("relist", True))
            self._trying.setdefault(region, set()).add(relpath)
            regions[region] = regions.get(region, True) and relist
        return [Retry(region, relist) for region, relist in sorted(regions.items())]

    def region_done(self, region: str) -> None:
        """``region``'s listing and all its files are done: what it tried again and did not
        fail again is copied now."""
        for relpath in self._trying.pop(region, ()):
            if self._records.pop(relpath, None) is not None:
                self._journal.delete(FAILED, relpath)

    # -- reading ----------------------------------------------------------------------------------

    def recent(self) -> list[dict[str, Any]]:
        """The latest records, for the checkpoint's summary."""
        latest = list(self._records.items())[-RECENT:]
        return [public(relpath, record) for relpath, record in latest]


def public(relpath: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as ``GET /migrations/{id}/failures`` lists it."""
    return {
        "path": shown(relpath),
        "reason": str(record.get("reason", "")),
        "attempts": int(record.get("attempts") or 1),
        "time": record.get("time"),
    }
