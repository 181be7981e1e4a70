"""The counters of a files run: SPEC progress fields, checkpointed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(slots=True)
class Counters:
    files_scanned: int = 0
    directories_scanned: int = 0
    bytes_scanned: int = 0
    files_copied: int = 0
    bytes_copied: int = 0
    files_skipped: int = 0
    #: Bytes of files found already equal on the target (part of the work done, not copied).
    bytes_skipped: int = 0
    files_deleted: int = 0
    directories_deleted: int = 0
    #: Source entries gone by the time they were copied (not failures).
    files_vanished: int = 0

    def fields(self, pending_regions: int, failed: int) -> dict[str, int | float]:
        """The SPEC fields; ``bytesTotal`` is what the scan has found so far (all, once it is
        done); ``failed``: entries that could not be copied (each once, however often tried)."""
        return {
            "filesScanned": self.files_scanned,
            "directoriesScanned": self.directories_scanned,
            "bytesScanned": self.bytes_scanned,
            "filesCopied": self.files_copied,
            "bytesCopied": self.bytes_copied,
            "filesSkipped": self.files_skipped,
            "filesDeleted": self.files_deleted,
            "directoriesDeleted": self.directories_deleted,
            "filesFailed": failed,
            "filesVanished": self.files_vanished,
            "pendingRegions": pending_regions,
            "bytesTotal": self.bytes_scanned,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Counters:
        counters = cls()
        for f in fields(cls):
            if isinstance((data or {}).get(f.name), int):
                setattr(counters, f.name, data[f.name])  # type: ignore[index]
        return counters


def empty_fields() -> dict[str, int | float]:
    return Counters().fields(0, 0)
