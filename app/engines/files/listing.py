"""Listing one region (a directory): compare each source entry with the target and act.

A :class:`Listing` walks ``os.scandir`` of the source directory in steps of a bounded number of
entries, using the ``lstat`` result each ``DirEntry`` already holds (no second stat of a source
entry). Cheap target changes happen inline: directories created, symlinks made, modes fixed,
entries of the wrong kind or (with ``targetMatch``) absent from the source removed, stale
temporary files of ours deleted. Files whose data must move come back as :class:`FileTask` for
copy units.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

from app.engines.files.copy import is_temp, make_special, make_symlink
from app.engines.files.exclude import Excluder
from app.engines.files.failures import What
from app.engines.files.options import ActionPolicy, FilesOptions
from app.engines.files.policy import Action, Kind, Meta, decide

#: A directory no larger than this (st_size; about 2000 entries on ext4) is listed in one unit.
SMALL_DIRECTORY_BYTES = 64 * 1024
#: Open a directory to list it and to reach its entries by name.
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW


def _inode(entry: os.DirEntry[str]) -> int:
    return entry.inode()


def join(region: str, name: str) -> str:
    return f"{region}/{name}" if region else name


@dataclass(frozen=True, slots=True)
class FileTask:
    region: str
    name: str
    meta: Meta
    #: CHECKSUM with equal sizes: compare contents first, copy only if they differ.
    compare: bool

    @property
    def relpath(self) -> str:
        return join(self.region, self.name)


@dataclass(slots=True)
class StepResult:
    children: list[tuple[str, bool]] = field(default_factory=list)
    tasks: list[FileTask] = field(default_factory=list)
    files_scanned: int = 0
    bytes_scanned: int = 0
    files_skipped: int = 0
    bytes_skipped: int = 0
    files_copied: int = 0
    #: Bytes of the files the listing's unit copied itself (see ``units.ListUnit``).
    bytes_copied: int = 0
    files_deleted: int = 0
    directories_deleted: int = 0
    #: Entries that could not be copied: path, reason, and what failed (how it is tried again).
    failures: list[tuple[str, str, What]] = field(default_factory=list)
    #: Entries found in the listing and gone from the source when they were reached.
    vanished: int = 0
    #: The source directory's own metadata (first step), for finishing the region.
    dir_meta: Meta | None = None
    done: bool = False


@dataclass(frozen=True, slots=True)
class Roots:
    source: Path
    target: Path
    options: FilesOptions
    excluder: Excluder
    #: After an unclean stop: a target file whose inode changed at or after this wall-clock time
    #: (ns) may not have reached the disk before a power cut, so it is copied again, never trusted.
    untrusted_since: int | None = None


def remove_entry(path: Path, relpath: str = "", excluder: Excluder | None = None) -> tuple[int, int]:
    """Remove a target entry of any kind; returns how many (files, directories) went, itself
    included: each directory removed counts one directory, every other entry one file.

    Within a directory, entries matched by ``excluder`` (relative paths from ``relpath``) are
    kept, and so are the directories that hold them.
    """
    if not (path.is_dir() and not path.is_symlink()):
        path.unlink()
        return 1, 0
    if not excluder:
        files, dirs = 0, 1
        for root, subdirs, names in os.walk(path):
            # os.walk lists symlinks to directories among the directories: they are files here.
            files += len(names)
            for sub in subdirs:
                if os.path.islink(os.path.join(root, sub)):
                    files += 1
                else:
                    dirs += 1
        shutil.rmtree(path)
        return files, dirs
    files = dirs = 0
    with os.scandir(path) as it:
        entries = list(it)
    for entry in entries:
        child = join(relpath, entry.name)
        if not excluder.excluded(child):
            f, d = remove_entry(Path(entry.path), child, excluder)
            files, dirs = files + f, dirs + d
    if not any(path.iterdir()):
        path.rmdir()
        dirs += 1
    return files, dirs


def reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class Listing:
    """The listing of one region, spread over as many steps as it takes; holds one open fd."""

    def __init__(self, roots: Roots, region: str, *, fresh: bool, relist: bool, keep: frozenset[str]) -> None:
        self.roots = roots
        self.region = region
        self.fresh = fresh
        self.relist = relist
        self.keep = keep
        self.src_dir = roots.source / region
        self.dst_dir = roots.target / region
        self._entries: Iterator[os.DirEntry[str]] | None = None
        self._src_fd: int | None = None
        self._dst_fd: int | None = None
        self._target_names: set[str] = set()
        self._source_names: set[str] = set()

    def close(self) -> None:
        if self._entries is not None:
            self._entries.close()  # type: ignore[attr-defined]
            self._entries = None
        for fd in (self._src_fd, self._dst_fd):
            if fd is not None:
                os.close(fd)
        self._src_fd = self._dst_fd = None

    def _open(self, result: StepResult) -> None:
        # Both directories are held open and entries are reached by name relative to them
        # (fstatat): the kernel resolves one component per entry, not the whole path.
        self._src_fd = os.open(self.src_dir, DIRECTORY_FLAGS)
        result.dir_meta = Meta.of(os.fstat(self._src_fd))
        if not self.fresh:
            if not self.dst_dir.is_dir():
                os.makedirs(self.dst_dir, mode=0o700, exist_ok=True)
            self._dst_fd = os.open(self.dst_dir, DIRECTORY_FLAGS)
            self._target_names = set(os.listdir(self._dst_fd))
            for name in [n for n in self._target_names if is_temp(n) and n not in self.keep]:
                os.unlink(name, dir_fd=self._dst_fd)
                self._target_names.discard(name)
        self._entries = os.scandir(self._src_fd)

    @property
    def unopened(self) -> bool:
        return self._entries is None and self._src_fd is None

    def is_small(self) -> bool:
        """Whether the source directory is small enough to list in one unit (by its size on disk,
        which grows with its entries; a directory that cannot be read is not small)."""
        try:
            return os.stat(self.src_dir).st_size <= SMALL_DIRECTORY_BYTES
        except OSError:
            return False

    def step(self, limit: int) -> StepResult:
        result = StepResult()
        if self._entries is None:
            try:
                self._open(result)
            except FileNotFoundError:
                if os.path.lexists(self.src_dir):
                    raise
                self.close()  # the directory left the source since it was found: nothing to do
                result.vanished, result.done = 1, True
                return result
        assert self._entries is not None
        # Entries in inode order, not the directory's (hash order on ext4): on a cold source the
        # inodes, and the data of files written one after another, are read nearly in disk order.
        entries = sorted(itertools.islice(self._entries, limit), key=_inode)
        for entry in entries:
            try:
                self._entry(entry, result)
            except OSError as exc:
                self._failed(entry, exc, result)
        if len(entries) >= limit:
            return result
        self.close()
        if self.roots.options.target_match and not self.relist:
            self._match_target(result)
        result.done = True
        return result

    def _failed(self, entry: os.DirEntry[str], exc: OSError, result: StepResult) -> None:
        if isinstance(exc, FileNotFoundError) and not _exists(entry.name, self._src_fd):
            result.vanished += 1  # deleted from the source since the directory was read
            return
        what = What.DIRECTORY if entry.is_dir(follow_symlinks=False) else What.ENTRY
        result.failures.append((join(self.region, entry.name), reason(exc), what))

    def _target_stat(self, name: str) -> os.stat_result | None:
        if name not in self._target_names:
            return None
        try:
            return os.lstat(name, dir_fd=self._dst_fd)
        except FileNotFoundError:
            return None

    def _untrusted(self, dst: os.stat_result) -> bool:
        since = self.roots.untrusted_since
        return since is not None and dst.st_ctime_ns >= since

    def _unchanged(self, st: os.stat_result, dst: os.stat_result | None) -> bool:
        """The hot path of a rescan: a regular file the target already holds, per the policy.

        The same answer :func:`decide` gives as SKIP for two regular files, from the raw stat
        results, so an unchanged tree costs two stats and a few comparisons per file.
        """
        if dst is None or not (S_ISREG(st.st_mode) and S_ISREG(dst.st_mode)) or st.st_size != dst.st_size:
            return False
        if self._untrusted(dst):
            return False
        policy = self.roots.options.action_policy
        if policy is ActionPolicy.SKIP_IF_SIZE_MATCH:
            return True
        return policy is ActionPolicy.OVERWRITE and st.st_mtime_ns == dst.st_mtime_ns and st.st_mode == dst.st_mode

    def _entry(self, entry: os.DirEntry[str], result: StepResult) -> None:
        name = entry.name
        relpath = join(self.region, name)
        if self.roots.excluder and self.roots.excluder.excluded(relpath):
            return
        if self.roots.options.target_match:
            self._source_names.add(name)
        st = entry.stat(follow_symlinks=False)
        dst_st = self._target_stat(name)
        if self._unchanged(st, dst_st):
            if not self.relist:
                result.files_scanned += 1
                result.bytes_scanned += st.st_size
                result.files_skipped += 1
                result.bytes_skipped += st.st_size
            return
        meta = Meta.of(st)
        dst = Meta.of(dst_st) if dst_st is not None else None
        action = decide(meta, dst, self.roots.options.action_policy)
        trusted = dst_st is None or meta.kind is not Kind.FILE or not self._untrusted(dst_st)
        if not trusted and action in (Action.SKIP, Action.FIX_MODE, Action.COMPARE):
            action = Action.COPY
        if meta.kind is not Kind.DIR and not self.relist:
            result.files_scanned += 1
            result.bytes_scanned += meta.size if meta.kind is Kind.FILE else 0
        target = self.dst_dir / name
        if action is Action.REPLACE:
            self._removed(remove_entry(target, relpath, self.roots.excluder), result)
        if meta.kind is Kind.DIR:
            self._directory(target, relpath, action, result)
        elif meta.kind is Kind.LINK:
            self._symlink(name, target, meta, dst, result)
        elif meta.kind is Kind.OTHER:
            self._special(target, meta, action, result)
        else:
            self._file(target, name, meta, action, result)

    def _directory(self, target: Path, relpath: str, action: Action, result: StepResult) -> None:
        created = action is not Action.SKIP
        if created:
            try:
                target.mkdir(mode=0o700)
            except FileExistsError:
                # Made since this directory's target was read: by the listing of that very
                # region, when both try failed entries again at the end of a pass.
                if not target.is_dir():
                    raise
                created = False
        if not self.relist:
            result.children.append((relpath, created))

    def _symlink(self, name: str, target: Path, meta: Meta, dst: Meta | None, result: StepResult) -> None:
        text = os.readlink(name, dir_fd=self._src_fd)
        same = dst is not None and dst.kind is Kind.LINK and dst.mtime_ns == meta.mtime_ns
        if same and os.readlink(target) == text:
            if not self.relist:
                result.files_skipped += 1
            return
        make_symlink(text, target, meta)
        result.files_copied += 1

    def _special(self, target: Path, meta: Meta, action: Action, result: StepResult) -> None:
        if action is Action.SKIP:
            if not self.relist:
                result.files_skipped += 1
            return
        make_special(target, meta)
        result.files_copied += 1

    def _file(self, target: Path, name: str, meta: Meta, action: Action, result: StepResult) -> None:
        if action in (Action.SKIP, Action.FIX_MODE):
            if action is Action.FIX_MODE:
                os.chmod(target, meta.mode)
            if not self.relist:
                result.files_skipped += 1
                result.bytes_skipped += meta.size
            return
        result.tasks.append(FileTask(self.region, name, meta, compare=action is Action.COMPARE))

    @staticmethod
    def _removed(counts: tuple[int, int], result: StepResult) -> None:
        result.files_deleted += counts[0]
        result.directories_deleted += counts[1]

    def _match_target(self, result: StepResult) -> None:
        for name in sorted(self._target_names - self._source_names):
            relpath = join(self.region, name)
            if is_temp(name) or (self.roots.excluder and self.roots.excluder.excluded(relpath)):
                continue
            try:
                self._removed(remove_entry(self.dst_dir / name, relpath, self.roots.excluder), result)
            except FileNotFoundError:
                continue
            except OSError as exc:
                result.failures.append((relpath, f"not removed from the target: {reason(exc)}", What.DELETION))


def _exists(name: str, dir_fd: int | None) -> bool:
    """Whether ``name`` is (still) in the directory ``dir_fd``, whatever it is."""
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True
