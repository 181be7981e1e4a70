"""Percentages as operators write them: ``13%``, ``13``, ``12.5%``; each 0 < p <= 100."""

from __future__ import annotations

import re

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$")


def parse_percent(text: str) -> float:
    """Parse one percentage; raise ValueError naming the accepted form."""
    match = _PERCENT.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a percentage; expected a number 0 < p <= 100, '%' optional")
    value = float(match.group(1))
    if not 0 < value <= 100:
        raise ValueError(f"{text!r} is out of range; a percentage must be 0 < p <= 100")
    return value


def format_percent(value: float) -> str:
    """``7.0`` -> ``"7%"``, ``12.5`` -> ``"12.5%"``."""
    return f"{value:g}%"
