"""Pure decisions of the copy: what to do with one entry, how to cut a file into ranges.

Nothing here touches the disk, so every rule is tested alone (``tests/files/test_policy.py``).
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from app.engines.files.options import ActionPolicy


class Kind(Enum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Meta:
    """What a listing knows of one entry, from the ``lstat`` it already made."""

    kind: Kind
    size: int
    mtime_ns: int
    mode: int
    atime_ns: int = 0
    #: A special file's type bits (``S_IFMT``) and device number, 0 for the other kinds.
    ftype: int = 0
    rdev: int = 0

    @classmethod
    def of(cls, st: object) -> Meta:
        mode: int = st.st_mode  # type: ignore[attr-defined]
        if stat.S_ISREG(mode):
            kind = Kind.FILE
        elif stat.S_ISDIR(mode):
            kind = Kind.DIR
        elif stat.S_ISLNK(mode):
            kind = Kind.LINK
        else:
            kind = Kind.OTHER
        special = (stat.S_IFMT(mode), st.st_rdev) if kind is Kind.OTHER else (0, 0)  # type: ignore[attr-defined]
        return cls(kind, st.st_size, st.st_mtime_ns, stat.S_IMODE(mode), st.st_atime_ns, *special)  # type: ignore[attr-defined]


class Action(Enum):
    #: Nothing to do: the target already holds this entry.
    SKIP = "skip"
    #: Data equal, permission bits differ: chmod only.
    FIX_MODE = "fix_mode"
    #: Same size under CHECKSUM: compare contents, copy if they differ.
    COMPARE = "compare"
    #: Copy it (the target lacks it or holds another version of it).
    COPY = "copy"
    #: The target holds another kind of entry under the name: remove it, then copy.
    REPLACE = "replace"


def decide(src: Meta, dst: Meta | None, policy: ActionPolicy) -> Action:
    """The action for a source entry given the target's entry of the same name (or None).

    Directories answer SKIP when both sides are directories: their contents are a region of their
    own, and their mode and mtime are set when that region is done. Symlinks answer COMPARE when
    both sides are links: the caller compares the link texts.
    """
    if dst is None:
        return Action.COPY
    if dst.kind is not src.kind:
        return Action.REPLACE
    if src.kind is Kind.DIR:
        return Action.SKIP
    if src.kind is Kind.LINK:
        return Action.COMPARE
    if src.kind is Kind.OTHER:  # a special file: recreated (atomically) unless equal, as rsync -a
        same = (src.ftype, src.rdev, src.mode, src.mtime_ns) == (dst.ftype, dst.rdev, dst.mode, dst.mtime_ns)
        return Action.SKIP if same else Action.COPY
    if src.size != dst.size:
        return Action.COPY
    if policy is ActionPolicy.SKIP_IF_SIZE_MATCH:
        return Action.SKIP
    if policy is ActionPolicy.CHECKSUM:
        return Action.COMPARE
    if src.mtime_ns != dst.mtime_ns:
        return Action.COPY
    return Action.FIX_MODE if src.mode != dst.mode else Action.SKIP


def is_large(size: int, range_size: int) -> bool:
    """A file copied range by range (each range its own unit) rather than in a batch."""
    return size > range_size


def gaps(size: int, done: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[0, size)`` that the ``(offset, length)`` ranges of ``done`` leave, in
    order (``done`` may overlap or run past ``size``; what lies outside counts for nothing)."""
    todo: list[tuple[int, int]] = []
    at = 0
    for offset, length in sorted(done):
        if offset > at:
            todo.append((at, min(offset, size) - at))
        at = max(at, offset + length)
        if at >= size:
            break
    if at < size:
        todo.append((at, size - at))
    return [(offset, length) for offset, length in todo if length > 0]
