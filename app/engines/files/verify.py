"""The verification run of a files job: compare source and target, record discrepancies.

Each region's listing compares existence, kind and size (and symlink texts); with
``verifyContent`` or the ``CHECKSUM`` policy, files of equal size are compared by content digest
in batches, large ones range by range. Discrepancies (``MISSING_ON_TARGET``, ``MISSING_ON_SOURCE``, ``SIZE_MISMATCH``,
``CONTENT_MISMATCH``) get increasing ``seq`` numbers and are written in batches; the job's old
ones are deleted when the run opens. A verification always starts over: it has nothing to resume.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.engines.base import WorkerSlot
from app.engines.files.copy import is_temp, same_content
from app.engines.files.listing import join, reason
from app.engines.files.options import FilesOptions
from app.engines.files.policy import Kind, Meta, is_large

TYPES = {"MISSING_ON_TARGET": "missingOnTarget", "MISSING_ON_SOURCE": "missingOnSource",
         "SIZE_MISMATCH": "sizeMismatch", "CONTENT_MISMATCH": "contentMismatch"}  # fmt: skip
#: Discrepancies buffered before a write.
FLUSH_AT = 500

Found = tuple[str, str, str]  # type, path, detail


@dataclass(slots=True)
class Checked:
    files: int = 0
    bytes: int = 0
    children: list[str] = field(default_factory=list)
    compare: list[tuple[str, int]] = field(default_factory=list)
    found: list[Found] = field(default_factory=list)
    done: bool = False


class VerifyListing:
    def __init__(self, source: Path, target: Path, region: str, options: FilesOptions) -> None:
        self.region, self.options, self.excluder = region, options, options.excluder
        self.src_dir, self.dst_dir = source / region, target / region
        self._entries: Iterator[os.DirEntry[str]] | None = None
        self._target: dict[str, Meta] = {}
        self._seen: set[str] = set()

    def step(self, limit: int) -> Checked:
        out = Checked()
        if self._entries is None:
            with os.scandir(self.dst_dir) as it:
                self._target = {e.name: Meta.of(e.stat(follow_symlinks=False)) for e in it if not is_temp(e.name)}
            self._entries = os.scandir(self.src_dir)
        for count, entry in enumerate(self._entries, 1):
            self._entry(entry, out)
            if count >= limit:
                return out
        self.close()
        for name in sorted(set(self._target) - self._seen):
            relpath = join(self.region, name)
            if not (self.excluder and self.excluder.excluded(relpath)):
                out.found.append(
                    ("MISSING_ON_SOURCE", relpath, f"a {self._target[name].kind.value} on the target only")
                )
        out.done = True
        return out

    def _entry(self, entry: os.DirEntry[str], out: Checked) -> None:
        relpath = join(self.region, entry.name)
        if self.excluder and self.excluder.excluded(relpath):
            return
        self._seen.add(entry.name)
        src = Meta.of(entry.stat(follow_symlinks=False))
        dst = self._target.get(entry.name)
        if src.kind is not Kind.DIR:
            out.files += 1
        if dst is None or dst.kind is not src.kind:
            detail = "absent from the target" if dst is None else f"a {dst.kind.value} on the target"
            out.found.append(("MISSING_ON_TARGET", relpath, f"{src.kind.value}: {detail}"))
        elif src.kind is Kind.DIR:
            out.children.append(relpath)
        elif src.kind is Kind.LINK:
            if os.readlink(entry.path) != os.readlink(self.dst_dir / entry.name):
                out.found.append(("CONTENT_MISMATCH", relpath, "the symlinks point to different paths"))
        elif src.size != dst.size:
            out.found.append(("SIZE_MISMATCH", relpath, f"source {src.size} bytes, target {dst.size} bytes"))
        elif self.options.compares_content and src.kind is Kind.FILE:
            out.compare.append((relpath, src.size))
        else:
            out.bytes += src.size

    def close(self) -> None:
        if self._entries is not None:
            self._entries.close()  # type: ignore[attr-defined]
            self._entries = None


@dataclass(slots=True)
class VListUnit:
    listing: VerifyListing
    limit: int
    result: Checked | None = None
    name: str = "verify-list"

    def run(self, slot: WorkerSlot) -> None:
        self.result = self.listing.step(self.limit)


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes of one file to compare: all of it, or one range of a large file."""

    relpath: str
    offset: int
    #: Bytes to compare, or None for up to the end of the longer file (a whole file, or a large
    #: file's last range: a file grown since it was listed still differs).
    length: int | None
    #: Bytes this span accounts for in ``bytesChecked``.
    size: int
    #: One of several ranges of a large file (their findings name the file once).
    ranged: bool = False


def spans(relpath: str, size: int, range_size: int) -> list[Span]:
    """A file's comparison, cut into ranges of ``range_size`` when it is larger than that, so
    one huge file never holds a worker for minutes (as its copy does not)."""
    if not is_large(size, range_size):
        return [Span(relpath, 0, None, size)]
    starts = range(0, size, range_size)
    return [
        Span(relpath, start, None if start == starts[-1] else range_size, min(range_size, size - start), True)
        for start in starts
    ]


@dataclass(slots=True)
class VCompareUnit:
    source: Path
    target: Path
    spans: list[Span]
    stopping: threading.Event
    result: Checked = field(default_factory=Checked)
    #: Files of ranged spans that found something (``VerifyRun`` names each file once).
    flagged: set[str] = field(default_factory=set)
    name: str = "verify-compare"

    def run(self, slot: WorkerSlot) -> None:
        for span in self.spans:
            if self.stopping.is_set():
                return
            relpath = span.relpath
            found: Found | None = None
            try:
                if not same_content(self.source / relpath, self.target / relpath, span.offset, span.length):
                    found = ("CONTENT_MISMATCH", relpath, "the contents differ")
            except OSError as exc:
                found = ("MISSING_ON_TARGET", relpath, f"not readable: {reason(exc)}")
            if found is not None:
                self.result.found.append(found)
                if span.ranged:
                    self.flagged.add(relpath)
            self.result.bytes += span.size
