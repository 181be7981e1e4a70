"""Where a disk comes from and goes to: NBD URIs and local image paths, checked and opened."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import nbd

from app.engines.base import InvalidField
from app.paths import confine

ALLOCATION = "base:allocation"
#: Largest block-status window asked for at once (servers may answer less; we loop).
STATUS_WINDOW = 1 << 30


#: errno names (as libnbd reports them) of a server that is not there now but may be soon.
_TRANSIENT = frozenset({"ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "ETIMEDOUT", "EHOSTUNREACH",
                        "ENETUNREACH", "EHOSTDOWN", "ENETDOWN", "EPIPE", "EAGAIN", "ESHUTDOWN"})  # fmt: skip


class ConnectError(Exception):
    """An NBD server could not be reached, refused the export, or did not answer in time.

    ``transient`` tells a connection-level failure (refused, no socket yet, no answer, closed
    during the handshake: the server may be back soon) from a definite refusal by a server
    that answered (no such export, a required feature missing).
    """

    def __init__(self, uri: str, reason: str, *, transient: bool = False) -> None:
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason
        self.transient = transient

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its fields (it crosses from a lane's helper process)."""
        return _connect_error, (self.uri, self.reason, self.transient)


def _connect_error(uri: str, reason: str, transient: bool) -> ConnectError:
    return ConnectError(uri, reason, transient=transient)


def is_nbd_uri(text: str) -> bool:
    """Whether ``text`` names an NBD server (its scheme says so; whether it parses comes later)."""
    scheme, separator, _ = text.partition("://")
    return bool(separator) and scheme in ("nbd", "nbd+unix", "nbds", "nbds+unix")


def check_nbd_uri(field: str, uri: str) -> None:
    """Reject URIs libnbd would only refuse later, with a message the operator can act on."""
    if "\x00" in uri:
        raise InvalidField(field, "the URI contains a NUL character")
    try:
        parts = urlsplit(uri)
        hostname = parts.hostname
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise InvalidField(field, f"not a valid URI: {exc}") from None
    if parts.scheme in ("nbd+unix", "nbds+unix"):
        if parts.netloc or not parse_qs(parts.query).get("socket"):
            raise InvalidField(field, "expected nbd+unix:///EXPORT?socket=/path/to/socket")
    elif not hostname:
        raise InvalidField(field, "expected nbd://HOST[:PORT]/EXPORT")


def bitmap_context(name: str) -> str:
    return f"qemu:dirty-bitmap:{name}"


def connect(uri: str, *, contexts: tuple[str, ...] = (ALLOCATION,), timeout: float = 10.0) -> nbd.NBD:
    """Open one NBD connection, giving up after ``timeout`` seconds (a full server never answers)."""
    handle = nbd.NBD()
    handle.set_handle_name("ferry")
    for context in contexts:
        handle.add_meta_context(context)
    deadline = time.monotonic() + timeout
    try:
        handle.aio_connect_uri(uri)
        while handle.aio_is_connecting():
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectError(_redact(uri), f"no answer within {timeout:g} s", transient=True)
            handle.poll(max(1, int(left * 1000)))
        if not handle.aio_is_ready():
            raise ConnectError(_redact(uri), "connection closed during handshake", transient=True)
    except nbd.Error as exc:
        # Dropping the handle closes its socket (libnbd 1.14 has no close()).
        raise ConnectError(_redact(uri), exc.string, transient=_is_transient(exc)) from None
    return handle


def _is_transient(exc: nbd.Error) -> bool:
    """Whether libnbd failed before any server answered: at the socket, not in the handshake."""
    name = str(exc.errno or "")
    # No socket file (ENOENT) means no server listening yet, but only at the connect itself:
    # "handshake: server has no export named 'x': No such file or directory" is a refusal.
    at_connect = " connect: " in f" {exc.string}"
    return name in _TRANSIENT or (at_connect and name == "ENOENT") or "getaddrinfo" in exc.string


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    return uri if parts.password is None else uri.replace(parts.password, "***")


def extents(handle: nbd.NBD, context: str, offset: int, length: int) -> Iterator[tuple[int, int, int]]:
    """Yield ``(offset, length, flags)`` covering ``[offset, offset+length)`` for one context."""
    end = offset + length
    while offset < end:
        found = _status(handle, context, offset, min(end - offset, STATUS_WINDOW))
        if not found:
            raise ConnectError("block status", f"the server sent no {context} status at offset {offset}")
        for i in range(0, len(found), 2):
            size = min(found[i], end - offset)
            if size <= 0:
                break
            yield offset, size, found[i + 1]
            offset += size


def _status(handle: nbd.NBD, context: str, offset: int, length: int) -> list[int]:
    """One block-status request: the flat ``[length, flags, ...]`` list for ``context``."""
    found: list[int] = []

    def collect(meta: str, _offset: int, entries: list[int], _err: object) -> int:
        if meta == context and not found:
            found.extend(entries)
        return 0

    handle.block_status(length, offset, collect)
    return found


def source_contexts(dirty_bitmap: str | None) -> tuple[str, ...]:
    """The meta contexts a source connection asks for."""
    return (ALLOCATION,) if dirty_bitmap is None else (ALLOCATION, bitmap_context(dirty_bitmap))


def dirty(handle: nbd.NBD, name: str, size: int) -> list[tuple[int, int]]:
    """The ranges a QEMU dirty bitmap marks as changed."""
    return [(o, n) for o, n, flags in extents(handle, bitmap_context(name), 0, size) if flags & 1]


@dataclass(frozen=True, slots=True)
class PathTarget:
    path: Path
    exists: bool
    is_block: bool


def resolve_path(text: str, allowed_roots: tuple[Path, ...]) -> PathTarget:
    """Resolve a file or device target (symlinks and ``..``) and keep it inside the roots."""
    if not text.startswith("/"):
        raise InvalidField("target", "expected an NBD URI or an absolute path")
    try:
        path = confine(text, allowed_roots)
    except ValueError as exc:
        raise InvalidField("target", str(exc)) from None
    if not path.exists():
        if not path.parent.is_dir():
            raise InvalidField("target", f"directory {path.parent} does not exist")
        return PathTarget(path, exists=False, is_block=False)
    mode = path.stat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        raise InvalidField("target", f"{path} is neither a regular file nor a block device")
    return PathTarget(path, exists=True, is_block=stat.S_ISBLK(mode))


def path_size(target: PathTarget) -> int:
    fd = os.open(target.path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def size_problem(source_size: int, target_size: int, *, is_block: bool) -> str | None:
    """Why a target of this size cannot take the source, or None (devices may be larger)."""
    if target_size == source_size or (is_block and target_size > source_size):
        return None
    return f"target size {target_size} does not match the source size {source_size}"
