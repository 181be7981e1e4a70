"""The copy kernel: bytes moved by the kernel, holes kept, files landed atomically.

Every file is written under a temporary name in its target directory (:func:`temp_name`), given
its mode and times, optionally fsynced, and only then renamed to its real name: the target never
holds a half file under a real name. Data moves with ``os.copy_file_range`` (reflinks or in-kernel
copies where the filesystem can), falling back to ``pread``/``pwrite``; only the data segments
that ``SEEK_DATA``/``SEEK_HOLE`` report are copied, so sparse files stay sparse.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import re
import secrets
import stat
import threading
from pathlib import Path

from app.engines.bandwidth import BandwidthLimiter
from app.engines.base import UnitInterrupted
from app.engines.files.policy import Meta

#: Bytes per ``copy_file_range`` call: the grain of bandwidth accounting and of stop checks.
CHUNK = 4 * 1024 * 1024
#: Bytes per read when comparing contents.
COMPARE_CHUNK = 1024 * 1024
_TEMP = re.compile(r"\.ferry~[0-9a-f]{16}\.part")
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM}


class Interrupted(UnitInterrupted):
    """The run is stopping: the unit gave up mid-copy and left only its temporary file."""


class _Names:
    """A random per-process prefix and a counter: unique without a ``getrandom`` per file."""

    prefix = secrets.token_hex(4)
    counter = itertools.count()


def reseed_temp_names() -> None:
    """Start a fresh series of temporary names: a forked process must not repeat its parent's."""
    _Names.prefix = secrets.token_hex(4)
    _Names.counter = itertools.count()


def temp_name() -> str:
    """A fresh temporary name of ours (fixed length, so it fits wherever the real name fits)."""
    return f".ferry~{_Names.prefix}{next(_Names.counter) & 0xFFFFFFFF:08x}.part"


def is_temp(name: str) -> bool:
    # Called for every target entry a listing meets: the prefix test spares most of them the regex.
    return name.startswith(".ferry~") and _TEMP.fullmatch(name) is not None


#: Opening a file that was listed as regular: never blocks (a FIFO's open waits for a writer).
_SOURCE_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class NotRegular(OSError):
    """A name listed as a regular file is something else now (a FIFO, a device, a directory)."""

    def __init__(self, name: str | Path) -> None:
        super().__init__(errno.EAGAIN, "no longer a regular file (it changed since it was listed)", str(name))


def open_regular(name: str | Path, dir_fd: int | None = None) -> tuple[int, os.stat_result]:
    """Open a file the listing saw as regular, for reading, and its ``fstat``; NotRegular (the fd
    closed) when it no longer is one. Without this, a file replaced by a FIFO between the listing
    and the copy would hold its unit in ``open`` until some writer came; refused, it is a failure
    whose retry lists the directory again and finds the FIFO for what it is."""
    fd = os.open(name, _SOURCE_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(name)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _data_segments(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of the data in ``[start, end)``; all of it where holes are unknown."""
    segments: list[tuple[int, int]] = []
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                break
            return [(start, end - start)]
        if data >= end:
            break
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        segments.append((data, hole - data))
        pos = hole
    return segments


def _move(src: int, dst: int, offset: int, length: int) -> int:
    try:
        return os.copy_file_range(src, dst, length, offset, offset)
    except OSError as exc:
        if exc.errno not in _FALLBACK_ERRNOS:
            raise
    data = os.pread(src, length, offset)
    written = 0
    while written < len(data):
        written += os.pwrite(dst, data[written:], offset + written)
    return len(data)


def copy_data(
    src: int,
    dst: int,
    offset: int,
    length: int,
    limiter: BandwidthLimiter,
    stopping: threading.Event,
    dense: bool = False,
) -> int:
    """Copy the data of ``[offset, offset+length)`` from ``src`` to ``dst`` (same offsets).

    The destination must already have its final size (holes read back as zeroes). ``dense``
    says the source has no holes (its blocks cover its size): no need to look for them. Returns
    the data bytes moved. Raises :class:`Interrupted` when ``stopping`` is set between chunks.
    """
    moved = 0
    segments = [(offset, length)] if dense else _data_segments(src, offset, offset + length)
    for start, size in segments:
        pos, end = start, start + size
        while pos < end:
            step = min(CHUNK, end - pos)
            limiter.acquire(step, stopping)
            if stopping.is_set():
                raise Interrupted
            done = _move(src, dst, pos, step)
            if done == 0:
                raise OSError(errno.EIO, "source file shrank during the copy")
            pos += done
            moved += done
    return moved


def create_temp(directory: Path, size: int) -> tuple[int, Path]:
    """Create an empty temporary file of ``size`` (a hole) in ``directory``; owner-only until landed."""
    path = directory / temp_name()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    if not size:
        return fd, path
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    return fd, path


def _settle(fd: int, meta: Meta, fsync: bool) -> None:
    """Give a written temporary file its mode and times, and flush it if asked."""
    os.fchmod(fd, meta.mode)
    os.utime(fd, ns=(meta.atime_ns, meta.mtime_ns))
    if fsync:
        os.fsync(fd)


def land(fd: int, temp: Path, final: Path, meta: Meta, fsync: bool) -> None:
    """Give the temporary file its mode and times, flush it if asked, rename it; closes ``fd``."""
    try:
        _settle(fd, meta, fsync)
    finally:
        os.close(fd)
    os.rename(temp, final)


def copy_file_at(
    src_dir: int, dst_dir: int, name: str, limiter: BandwidthLimiter, stopping: threading.Event, fsync: bool
) -> int:
    """Copy the file ``name`` of the directory ``src_dir`` to the same name in ``dst_dir``
    atomically; returns its size (what it had when opened)."""
    src, st = open_regular(name, src_dir)
    try:
        meta = Meta.of(st)
        temp = temp_name()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=dst_dir)
        try:
            try:
                if meta.size:
                    dense = st.st_blocks * 512 >= meta.size
                    if not dense:
                        os.ftruncate(fd, meta.size)  # holes where the source has them
                    copy_data(src, fd, 0, meta.size, limiter, stopping, dense)
                _settle(fd, meta, fsync)
            finally:
                os.close(fd)
            os.rename(temp, name, src_dir_fd=dst_dir, dst_dir_fd=dst_dir)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=dst_dir)
            raise
        return meta.size
    finally:
        os.close(src)


def make_symlink(text: str, final: Path, meta: Meta) -> None:
    """Create (or replace) the symlink ``final -> text`` atomically, with the source's mtime."""
    temp = final.parent / temp_name()
    os.symlink(text, temp)
    try:
        os.utime(temp, ns=(meta.atime_ns, meta.mtime_ns), follow_symlinks=False)
        os.rename(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def make_special(final: Path, meta: Meta) -> None:
    """Create (or replace) the special file ``final`` (FIFO, socket, device node) atomically with
    the source's type, device number, mode and mtime, as ``rsync -a`` does."""
    temp = final.parent / temp_name()
    os.mknod(temp, meta.ftype | 0o600, meta.rdev)
    try:
        os.chmod(temp, meta.mode)
        os.utime(temp, ns=(meta.atime_ns, meta.mtime_ns))
        os.rename(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def same_content(a: Path, b: Path, offset: int = 0, length: int | None = None) -> bool:
    """Compare two files by content digest (BLAKE2b per chunk), reading each once, in lockstep.

    Stops at the first chunk whose digests differ, so a mismatch early in a large file costs
    little. ``length=None`` compares to the end of the longer file.
    """
    with open(open_regular(a)[0], "rb", buffering=0) as fa, open(open_regular(b)[0], "rb", buffering=0) as fb:
        fa.seek(offset)
        fb.seek(offset)
        left = length
        while left is None or left > 0:
            step = COMPARE_CHUNK if left is None else min(COMPARE_CHUNK, left)
            ca, cb = fa.read(step), fb.read(step)
            if hashlib.blake2b(ca).digest() != hashlib.blake2b(cb).digest():
                return False
            if len(ca) < step:
                return True
            if left is not None:
                left -= step
    return True


def finish_dir(path: Path, meta: Meta, fsync: bool) -> None:
    """Set a finished directory's mode and times (after its last entry changed), flush it if asked.

    A directory that already has them (a pass that changed nothing in it) is left alone: one
    ``lstat`` instead of a ``chmod`` and a ``utime``.
    """
    if fsync:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    st = os.lstat(path)
    if stat.S_IMODE(st.st_mode) != meta.mode:
        os.chmod(path, meta.mode)
    if st.st_mtime_ns != meta.mtime_ns:
        os.utime(path, ns=(meta.atime_ns, meta.mtime_ns))


def copy_range(
    src_path: Path,
    temp: Path,
    offset: int,
    length: int,
    limiter: BandwidthLimiter,
    stopping: threading.Event,
    fsync: bool,
) -> None:
    """Copy one range of a large file into its (already sized) temporary file."""
    src, _ = open_regular(src_path)
    try:
        dst = os.open(temp, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            copy_data(src, dst, offset, length, limiter, stopping)
            if fsync:
                os.fdatasync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def land_large(src_path: Path, temp: Path, final: Path, listed: Meta, fsync: bool) -> None:
    """Rename a fully copied large file into place, unless its source changed since listing."""
    now = Meta.of(os.lstat(src_path))
    if (now.size, now.mtime_ns) != (listed.size, listed.mtime_ns):
        temp.unlink(missing_ok=True)
        raise OSError(errno.EAGAIN, "the source file changed during the copy; retried on the next pass")
    fd = os.open(temp, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    land(fd, temp, final, now, fsync)
