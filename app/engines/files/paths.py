"""Checks on a migration's ``source`` and ``target`` directories, done at creation.

Both must be absolute, resolve (symlinks followed, ``..`` removed) inside one of the allowed roots,
and be neither the same directory nor nested in each other. The source must be a readable
directory; the target must be a writable directory, or not exist yet below an existing writable
directory (``open`` creates it).
"""

from __future__ import annotations

import os
from pathlib import Path

from app.engines.base import InvalidField
from app.paths import confine


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _resolve(field: str, text: str, allowed_roots: tuple[Path, ...]) -> Path:
    try:
        return confine(text, allowed_roots)
    except ValueError as exc:
        raise InvalidField(field, str(exc)) from None


def _check_source(path: Path, text: str) -> None:
    if not path.exists():
        raise InvalidField("source", f"{text!r} does not exist")
    if not path.is_dir():
        raise InvalidField("source", f"{text!r} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise InvalidField("source", f"{text!r} is not readable")


def _check_target(path: Path, text: str) -> None:
    if path.exists():
        if not path.is_dir():
            raise InvalidField("target", f"{text!r} exists and is not a directory")
        directory = path
    else:
        directory = path.parent
        if not directory.is_dir():
            raise InvalidField("target", f"{text!r} does not exist, nor does its parent directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidField("target", f"{directory} is not writable")


def validate_paths(source: str, target: str, allowed_roots: tuple[Path, ...]) -> tuple[Path, Path]:
    """Return the resolved (source, target); raise InvalidField naming the field at fault."""
    src = _resolve("source", source, allowed_roots)
    _check_source(src, source)
    dst = _resolve("target", target, allowed_roots)
    if src == dst:
        raise InvalidField("target", "the target is the same directory as the source")
    if _inside(dst, src):
        raise InvalidField("target", "the target lies inside the source")
    if _inside(src, dst):
        raise InvalidField("target", "the source lies inside the target")
    _check_target(dst, target)
    return src, dst
