"""How the global scan pool is shared among running migrations (SPEC section 4).

``allocate`` is a pure function of the running set and the pool properties, so one process or
many can compute the same grants from the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum


class Priority(IntEnum):
    """Higher value wins; the value orders grants."""

    LOW = 0
    NORMAL = 1
    HIGH = 2


@dataclass(frozen=True, slots=True)
class Claim:
    """One running migration's bid for threads."""

    job_id: str
    priority: Priority
    #: The order among equals: earlier starters are served first (epoch seconds, or any sortable).
    started_at: float
    #: The per-migration override, if any (0 < p <= 100).
    override: float | None = None


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    limit: int
    max_per_job: int
    #: Percentages requested per priority.
    shares: Mapping[Priority, float]


@dataclass(frozen=True, slots=True)
class Grant:
    percentage: float
    source: str  # "priority" | "override"
    requested: int
    granted: int


def percentage_of(claim: Claim, policy: PoolPolicy) -> tuple[float, str]:
    if claim.override is not None:
        return claim.override, "override"
    return policy.shares[claim.priority], "priority"


def requested_threads(percentage: float, policy: PoolPolicy) -> int:
    """``min(max_per_job, max(1, ceil(limit * pct / 100)))``."""
    # round() first so 7% of 100 is 7, not 8 from float noise (7/100*100 = 7.000000000000001).
    wanted = math.ceil(round(policy.limit * percentage / 100, 9))
    return min(policy.max_per_job, max(1, wanted))


def serving_order(claims: Iterable[Claim]) -> list[Claim]:
    """HIGH first, then earlier start, then id so the order is total."""
    return sorted(claims, key=lambda c: (-c.priority, c.started_at, c.job_id))


def allocate(claims: Iterable[Claim], policy: PoolPolicy) -> dict[str, Grant]:
    """Grant each claim ``min(requested, free)`` in serving order."""
    free = policy.limit
    grants: dict[str, Grant] = {}
    for claim in serving_order(claims):
        percentage, source = percentage_of(claim, policy)
        requested = requested_threads(percentage, policy)
        granted = min(requested, free)
        free -= granted
        grants[claim.job_id] = Grant(percentage, source, requested, granted)
    return grants
