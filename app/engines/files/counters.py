"""The counters of a files run and its recent failures: SPEC progress fields, checkpointed."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Failures kept (path and reason) in the checkpoint: the most recent ones.
FAILURES_KEPT = 100


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
    files_failed: int = 0
    failures: deque[dict[str, str]] = field(default_factory=lambda: deque(maxlen=FAILURES_KEPT))

    def fail(self, path: str, why: str) -> None:
        self.files_failed += 1
        self.failures.append({"path": path, "reason": why})

    def fields(self, pending_regions: int) -> dict[str, int | float]:
        """The SPEC fields; ``bytesTotal`` is what the scan has found so far (all, once it is done)."""
        return {
            "filesScanned": self.files_scanned,
            "directoriesScanned": self.directories_scanned,
            "bytesScanned": self.bytes_scanned,
            "filesCopied": self.files_copied,
            "bytesCopied": self.bytes_copied,
            "filesSkipped": self.files_skipped,
            "filesDeleted": self.files_deleted,
            "directoriesDeleted": self.directories_deleted,
            "filesFailed": self.files_failed,
            "pendingRegions": pending_regions,
            "bytesTotal": self.bytes_scanned,
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = list(self.failures)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Counters:
        counters = cls()
        for f in fields(cls):
            if f.name != "failures" and isinstance((data or {}).get(f.name), int):
                setattr(counters, f.name, data[f.name])  # type: ignore[index]
        counters.failures.extend((data or {}).get("failures") or [])
        return counters


def empty_fields() -> dict[str, int | float]:
    return Counters().fields(0)
