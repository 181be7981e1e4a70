"""Cluster policy: which grants a leader may publish, and where new work goes (SPEC section 8).

Grants are computed once for the whole cluster (:func:`app.policy.allocation.allocate`) and
published in the database; each node applies what it reads. A node may still be applying an
older, larger grant, or have more units in flight than a new, smaller one allows, so a published
*raise* must fit beside what every other job may still *hold*:

    hold(j) = max(published(j), applied(j), active(j))

where ``applied`` is the grant the owning node acknowledged (it reads and acknowledges in one
statement, so it never applies anything else) and ``active`` its units in flight at that moment.
A node starts units only up to its applied grant, so the threads at work in the cluster never
exceed the sum of holds, and :func:`publishable` keeps that sum within ``global.scan.limit``
(or lowers it towards the limit after the limit shrank).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Held:
    """What the database says of one job's threads."""

    published: int
    applied: int
    active: int

    @property
    def hold(self) -> int:
        return max(self.published, self.applied, self.active)


def publishable(
    order: Sequence[str], targets: Mapping[str, int], held: Mapping[str, Held], limit: int
) -> dict[str, int]:
    """The grants to publish now: every decrease at once, raises as room allows in serving order.

    ``order`` is the serving order (HIGH first, then start time); ``targets`` the grants the pool
    policy wants; ``held`` the current state of each job (absent: a job just claimed, holding
    nothing). Jobs in ``held`` but not in ``targets`` (ended, stopping) are published 0.
    """
    current = {job: held.get(job, Held(0, 0, 0)) for job in {*held, *targets}}
    published = {job: min(state.published, targets.get(job, 0)) for job, state in current.items()}
    holds = {job: max(published[job], state.applied, state.active) for job, state in current.items()}
    for job in order:
        want = targets.get(job, 0)
        if want <= published[job]:
            continue
        others = sum(h for other, h in holds.items() if other != job)
        floor = max(current[job].applied, current[job].active)
        room = limit - others
        new = max(published[job], min(want, room))
        if new > published[job]:
            published[job] = new
            holds[job] = max(new, floor)
    return published


@dataclass(frozen=True, slots=True)
class NodeLoad:
    node_id: str
    running: int
    granted: int


def least_loaded(nodes: Sequence[NodeLoad]) -> NodeLoad | None:
    """The node with the most free capacity: fewest migrations, then fewest threads, then id."""
    if not nodes:
        return None
    return min(nodes, key=lambda node: (node.running, node.granted, node.node_id))


def place(jobs: Sequence[str], nodes: Sequence[NodeLoad]) -> dict[str, str]:
    """Spread ``jobs`` (in admission order) over ``nodes``, each to the least loaded at its turn."""
    loads = {node.node_id: node for node in nodes}
    placed: dict[str, str] = {}
    for job in jobs:
        node = least_loaded(list(loads.values()))
        if node is None:
            break
        placed[job] = node.node_id
        loads[node.node_id] = NodeLoad(node.node_id, node.running + 1, node.granted)
    return placed
