"""The registry of runtime configuration properties (SPEC section 2).

Each key has a default, a description and a parser that both validates and normalises. The
database stores the normalised text; :func:`pool_config` turns the stored values into the typed
view the pool and the scheduler use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.policy.allocation import PoolPolicy, Priority
from app.policy.percent import format_percent, parse_percent
from app.policy.units import parse_size

SCAN_LIMIT = "global.scan.limit"
POOL_MAX = "global.scan.pool.max"
PRIORITY_ALLOCATIONS = "migration.priority.pool.allocations"
MAX_SCAN_THREADS = "migration.max.scan.threads"
MAX_RUNNING = "migration.max.running.migrations"
BANDWIDTH_LIMIT = "global.bandwidth.limit"
#: The one per-migration property (``properties`` of a migration).
SCAN_PERCENTAGE = "migration.parallel.scan.percentage"


def _integer(minimum: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        stripped = text.strip()
        if not stripped.isdigit() or int(stripped) < minimum:
            raise ValueError(f"{text!r} is not accepted; expected an integer >= {minimum}")
        return str(int(stripped))

    return parse


def _allocations(text: str) -> str:
    parts = text.split(",")
    if len(parts) != 3:
        raise ValueError(f"{text!r} is not accepted; expected three percentages LOW,NORMAL,HIGH such as 2%,4%,8%")
    return ",".join(format_percent(parse_percent(part)) for part in parts)


@dataclass(frozen=True, slots=True)
class PropertySpec:
    key: str
    default: str
    description: str
    #: Validate and normalise; raise ValueError with a message that names the accepted form.
    normalise: Callable[[str], str]


REGISTRY: dict[str, PropertySpec] = {
    spec.key: spec
    for spec in (
        PropertySpec(
            SCAN_LIMIT,
            "100",
            "Size of the global scan pool (threads), 1 to global.scan.pool.max.",
            _integer(1),
        ),
        PropertySpec(POOL_MAX, "10000", "The largest global.scan.limit allowed.", _integer(1)),
        PropertySpec(
            PRIORITY_ALLOCATIONS,
            "2%,4%,8%",
            "Share of the pool requested by LOW, NORMAL and HIGH migrations.",
            _allocations,
        ),
        PropertySpec(MAX_SCAN_THREADS, "50", "Most threads one migration may hold.", _integer(1)),
        PropertySpec(
            MAX_RUNNING,
            "10",
            "Migrations RUNNING at once (0 = no limit); the rest wait in SCHEDULED.",
            _integer(0),
        ),
        PropertySpec(
            BANDWIDTH_LIMIT,
            "0",
            "Cap in bytes per second on all copying together (500MB, 1GiB); 0 = none.",
            lambda text: parse_size(text)[1],
        ),
    )
}


class PropertyConflict(ValueError):
    """A value that is well-formed alone but contradicts another property."""


def validate(key: str, text: str, current: Mapping[str, str]) -> str:
    """Return the normalised value of ``key``; ``current`` holds every key's effective value."""
    value = REGISTRY[key].normalise(text)
    if key == SCAN_LIMIT and int(value) > int(current[POOL_MAX]):
        raise PropertyConflict(f"{value} is above {POOL_MAX} ({current[POOL_MAX]}); raise that first")
    if key == POOL_MAX and int(value) < int(current[SCAN_LIMIT]):
        raise PropertyConflict(f"{value} is below {SCAN_LIMIT} ({current[SCAN_LIMIT]}); lower that first")
    return value


def effective(stored: Mapping[str, str]) -> dict[str, str]:
    """Every key's value: the stored one, else its default."""
    return {key: stored.get(key, spec.default) for key, spec in REGISTRY.items()}


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    pool: PoolPolicy
    max_running: int  # 0 = no limit
    bandwidth_limit: int  # bytes/s, 0 = none
    pool_max: int


def runtime_config(values: Mapping[str, str]) -> RuntimeConfig:
    full = effective(values)
    low, normal, high = (parse_percent(p) for p in full[PRIORITY_ALLOCATIONS].split(","))
    policy = PoolPolicy(
        limit=int(full[SCAN_LIMIT]),
        max_per_job=int(full[MAX_SCAN_THREADS]),
        shares={Priority.LOW: low, Priority.NORMAL: normal, Priority.HIGH: high},
    )
    return RuntimeConfig(
        pool=policy,
        max_running=int(full[MAX_RUNNING]),
        bandwidth_limit=parse_size(full[BANDWIDTH_LIMIT])[0],
        pool_max=int(full[POOL_MAX]),
    )


DEFAULT_CONFIG = runtime_config({})
