"""Confining operator-given paths to ``FERRY_ALLOWED_ROOTS``."""

from __future__ import annotations

import os
from pathlib import Path


def confine(path: str, roots: tuple[Path, ...]) -> Path:
    """Return ``path`` resolved (symlinks followed, ``..`` removed) if it lies inside a root.

    Raises ValueError with a message fit for an operator otherwise. The path need not exist.
    """
    if not isinstance(path, str) or not path.strip() or not os.path.isabs(path):
        raise ValueError(f"{path!r} is not an absolute path")
    if "\x00" in path:
        raise ValueError("a path may not contain a NUL character")
    resolved = Path(os.path.realpath(path))
    real_roots = [Path(os.path.realpath(root)) for root in roots]
    for root in real_roots:
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    allowed = ":".join(str(root) for root in real_roots) or "(none configured)"
    raise ValueError(f"{path!r} resolves to {str(resolved)!r}, outside the allowed roots ({allowed})")
