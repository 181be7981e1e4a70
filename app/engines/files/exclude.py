"""Exclusion globs on relative paths (pure).

A pattern without ``/`` matches an entry's name at any depth (``*.tmp``, ``.git``); a pattern with
``/`` matches the whole relative path from the migration root (``logs/2024-*``, ``a/**/b``; a
leading ``/`` is ignored). ``*`` and ``?`` never cross ``/``; ``**`` crosses any number of
directories. An excluded directory excludes everything beneath it. Matching is case-sensitive,
as POSIX names are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                raise ValueError(f"unclosed '[' in exclusion pattern {pattern!r}")
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
            i = end + 1
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


class Excluder:
    """Answers whether a relative path (``a/b/c``, no leading slash) is excluded."""

    def __init__(self, patterns: Iterable[str]) -> None:
        names: list[str] = []
        paths: list[str] = []
        for pattern in patterns:
            stripped = pattern.strip().rstrip("/")
            if not stripped or stripped == "/":
                raise ValueError(f"empty exclusion pattern {pattern!r}")
            if "/" in stripped:
                paths.append(_translate(stripped.lstrip("/")))
            else:
                names.append(_translate(stripped))
        self._name = re.compile("|".join(f"(?:{n})" for n in names)) if names else None
        self._path = re.compile("|".join(f"(?:{p})" for p in paths)) if paths else None

    def __bool__(self) -> bool:
        return self._name is not None or self._path is not None

    def excluded(self, relpath: str) -> bool:
        """True when ``relpath`` itself matches (its ancestors were checked when they were met)."""
        if self._name is not None and self._name.fullmatch(relpath.rpartition("/")[2]):
            return True
        return self._path is not None and self._path.fullmatch(relpath) is not None
