"""The disk options (SPEC section 3): parsed, checked and normalised, each error naming its field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.engines.base import InvalidField
from app.policy.units import parse_size

MiB = 1024 * 1024
#: The NBD protocol's usual largest request; a chunk is read in one request.
MAX_CHUNK = 32 * MiB
#: Smallest chunk accepted: below this, per-request overhead dominates.
MIN_CHUNK = 4096
#: Longest ``openTimeout`` accepted: a day.
MAX_OPEN_TIMEOUT = 86400.0


class Mode(StrEnum):
    FULL = "FULL"
    INCREMENTAL = "INCREMENTAL"


@dataclass(frozen=True, slots=True)
class DiskOptions:
    mode: Mode = Mode.FULL
    dirty_bitmap: str | None = None
    changed_extents: tuple[tuple[int, int], ...] | None = None
    coalesce_gap: int = 1 * MiB
    chunk_size: int = 4 * MiB
    max_retries: int = 3
    #: Seconds before the first retry; each further retry doubles it.
    retry_delay: float = 1.0
    #: Seconds a run keeps trying to reach an unreachable source or target when it opens.
    open_timeout: float = 300.0
    verify: bool = False
    parallel: bool = True

    def as_dict(self) -> dict[str, Any]:
        extents = self.changed_extents
        return {
            "mode": self.mode.value,
            "dirtyBitmap": self.dirty_bitmap,
            "changedExtents": None if extents is None else [{"offset": o, "length": n} for o, n in extents],
            "coalesceGap": self.coalesce_gap,
            "chunkSize": self.chunk_size,
            "maxRetries": self.max_retries,
            "retryDelay": self.retry_delay,
            "openTimeout": self.open_timeout,
            "verify": self.verify,
            "parallel": self.parallel,
        }


_NAMES = {name.lower(): name for name in DiskOptions().as_dict()}


def parse_options(raw: Mapping[str, Any] | None) -> DiskOptions:
    """Check every option; raise InvalidField("options.<name>", ...) on the first bad one."""
    given: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        name = _NAMES.get(str(key).lower())
        if name is None:
            raise InvalidField(f"options.{key}", f"unknown option; known: {', '.join(_NAMES.values())}")
        if value is not None:
            given[name] = value
    extents = _extents(given["changedExtents"]) if "changedExtents" in given else None
    bitmap = _bitmap(given["dirtyBitmap"]) if "dirtyBitmap" in given else None
    options = DiskOptions(
        mode=_mode(given.get("mode"), incremental_source=extents is not None or bitmap is not None),
        dirty_bitmap=bitmap,
        changed_extents=extents,
        coalesce_gap=_size("coalesceGap", given.get("coalesceGap", 1 * MiB), 0, 1024 * MiB),
        chunk_size=_size("chunkSize", given.get("chunkSize", 4 * MiB), MIN_CHUNK, MAX_CHUNK),
        max_retries=_integer("maxRetries", given.get("maxRetries", 3), 0, 100),
        retry_delay=_seconds("retryDelay", given.get("retryDelay", 1.0)),
        open_timeout=_seconds("openTimeout", given.get("openTimeout", 300.0), MAX_OPEN_TIMEOUT),
        verify=_boolean("verify", given.get("verify", False)),
        parallel=_boolean("parallel", given.get("parallel", True)),
    )
    if extents is not None and bitmap is not None:
        raise InvalidField("options.changedExtents", "give changedExtents or dirtyBitmap, not both")
    return options


def _mode(value: Any, *, incremental_source: bool) -> Mode:
    if value is None:
        return Mode.INCREMENTAL if incremental_source else Mode.FULL
    try:
        mode = Mode(str(value).upper())
    except ValueError:
        raise InvalidField("options.mode", f"{value!r} is not FULL or INCREMENTAL") from None
    if mode is Mode.INCREMENTAL and not incremental_source:
        raise InvalidField("options.mode", "INCREMENTAL needs changedExtents or dirtyBitmap")
    if mode is Mode.FULL and incremental_source:
        raise InvalidField("options.mode", "FULL copies everything; drop changedExtents/dirtyBitmap")
    return mode


def _bitmap(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 1024:
        raise InvalidField("options.dirtyBitmap", "expected the name of a QEMU dirty bitmap")
    return value.strip()


def _extents(value: Any) -> tuple[tuple[int, int], ...]:
    field = "options.changedExtents"
    if not isinstance(value, list):
        raise InvalidField(field, 'expected a list of {"offset": N, "length": N}')
    out: list[tuple[int, int]] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or set(item) != {"offset", "length"}:
            raise InvalidField(f"{field}[{i}]", 'expected {"offset": N, "length": N}')
        offset = _integer(f"changedExtents[{i}].offset", item["offset"], 0, 2**63 - 1)
        length = _integer(f"changedExtents[{i}].length", item["length"], 1, 2**63 - 1)
        out.append((offset, length))
    return tuple(out)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidField(f"options.{name}", f"expected a whole number from {low} to {high}")
    try:
        number = int(value)
    except ValueError:
        raise InvalidField(f"options.{name}", f"expected a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise InvalidField(f"options.{name}", f"{number} is out of range {low}..{high}")
    return number


def _size(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, str):
        try:
            value = parse_size(value)[0]
        except ValueError as exc:
            raise InvalidField(f"options.{name}", str(exc)) from None
    return _integer(name, value, low, high)


def _seconds(name: str, value: Any, high: float = 3600.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidField(f"options.{name}", "expected a number of seconds")
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidField(f"options.{name}", f"expected a number of seconds, got {value!r}") from None
    if not 0 <= seconds <= high:
        raise InvalidField(f"options.{name}", f"{seconds} is out of range 0..{high:g} seconds")
    return seconds


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidField(f"options.{name}", f"expected true or false, got {value!r}")
