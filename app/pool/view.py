"""What the cluster looks like, as one immutable snapshot the coordinator keeps ready.

Stats, summaries and metrics read the newest :class:`ClusterView` and never the pool's lock or
the database, so a request for them never waits on a copy, and never on another node: remote
figures are what the owning nodes last wrote (a quarter of a second old at most, plus their
save interval for progress).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.db.nodes import NodeInfo
from app.policy.allocation import Claim


@dataclass(frozen=True, slots=True)
class HeldJob:
    """A job some node holds (running, stopping or verifying), as the cluster sees it."""

    job_id: str
    kind: str
    node: str
    purpose: str
    state: str
    claim: Claim
    granted: int
    active: int
    units_completed: int
    units_failed: int
    progress: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClusterView:
    node_id: str
    jobs: dict[str, HeldJob] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    nodes: list[NodeInfo] = field(default_factory=list)
    #: Service-wide counters (SPEC 5 ``totals``), summed over the live nodes.
    totals: dict[str, int] = field(default_factory=dict)
    #: Bytes and files copied in the cluster over the last N seconds, per window N.
    throughput: dict[int, tuple[float, float]] = field(default_factory=dict)
    sampled_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def node_of(self, job_id: str) -> str | None:
        job = self.jobs.get(job_id)
        return job.node if job is not None else None
