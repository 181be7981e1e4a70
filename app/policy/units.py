"""Byte quantities as operators write them: ``0``, ``1048576``, ``500MB``, ``1GiB``, ``1.5 GB``."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
_CANONICAL = {
    "": "",
    "B": "B",
    "KB": "KB",
    "MB": "MB",
    "GB": "GB",
    "TB": "TB",
    "KIB": "KiB",
    "MIB": "MiB",
    "GIB": "GiB",
    "TIB": "TiB",
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
ACCEPTED = "a whole number of bytes, optionally with a unit B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"


def parse_size(text: str) -> tuple[int, str]:
    """Return (bytes, normalised text); raise ValueError saying the accepted form."""
    match = _SIZE.match(text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size; expected {ACCEPTED}")
    number = match.group(1)
    value = float(number) * _UNITS[unit]
    if value != int(value) or (unit == "" and "." in number):
        raise ValueError(f"{text!r} is not a whole number of bytes; expected {ACCEPTED}")
    return int(value), f"{number}{_CANONICAL[unit]}"
