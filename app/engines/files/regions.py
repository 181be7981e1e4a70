"""Relative region paths: what ``addPendingRegion?path=`` names, and how rows are keyed."""

from __future__ import annotations

from app.db.session import Database
from app.engines.files.store import PENDING, Store


def normalise_region(path: str) -> str:
    """``/sub/dir``, ``sub/dir/`` and ``./sub//dir`` all name ``sub/dir``; the root is ``""``.

    Raises ValueError for ``..`` components or a NUL character: a region never leaves the root.
    """
    if "\x00" in path:
        raise ValueError("a region path may not contain NUL")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{path!r}: a region path may not contain '..'")
    return "/".join(parts)


def parent_region(relpath: str) -> str:
    return relpath.rpartition("/")[0]


def record_pending_region(db: Database, job_id: str, path: str) -> str:
    """Queue a rescan of ``path`` for a files job that is not running; its next run lists it.

    Returns the normalised region. A resumed run picks it up with the rest of its frontier; a run
    that starts afresh (reset, incremental pass) scans the whole tree, this directory included.
    """
    region = normalise_region(path)
    Store(db, job_id).apply({(PENDING, region): None})
    return region
