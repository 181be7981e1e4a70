"""The leader's round: one transaction in which the cluster's one leader acts for all nodes.

It takes over dead nodes' jobs, admits SCHEDULED jobs while the cluster-wide running limit allows
and places them (and jobs let go at shutdown) on the least loaded live nodes, then publishes
grants that keep the threads at work within ``global.scan.limit`` (:mod:`app.policy.cluster`).
Every change of state goes through the state table; the leadership itself is checked, row
locked, at the start of the transaction (:meth:`app.db.nodes.NodeRegistry.lead`), so a leader
that was paused past its term writes nothing of what it computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.jobs import PRIORITY_RANK
from app.db.leases import COPY, VERIFY
from app.db.ledger import claim_of, move, released
from app.db.models import CopyJobRow, NodeRow, VerificationRow, utcnow
from app.db.nodes import NodeRegistry
from app.db.session import Database
from app.policy.allocation import PoolPolicy, allocate, serving_order
from app.policy.cluster import Held, NodeLoad, place, publishable
from app.policy.states import Action, State, next_state


@dataclass(slots=True)
class LeaderReport:
    """What a leader round did, for the log."""

    taken_over: dict[str, list[str]] = field(default_factory=dict)  # dead node -> its jobs
    admitted: dict[str, str] = field(default_factory=dict)  # job -> node
    placed: dict[str, str] = field(default_factory=dict)  # job -> node
    grants: dict[str, int] = field(default_factory=dict)  # changed grants only


def lead(
    db: Database,
    registry: NodeRegistry,
    epoch: int | None,
    term: timedelta,
    policy: PoolPolicy,
    max_running: int,
) -> tuple[int | None, LeaderReport]:
    """One round of the leader, in one transaction: nothing of it lands unless it still leads.

    Take over dead nodes' jobs, admit SCHEDULED jobs while the cluster-wide running limit
    allows and place them (and jobs let go at shutdown) on the least loaded live nodes, then
    publish grants that keep the threads at work within ``policy.limit``.
    """
    report = LeaderReport()
    with db.session() as session:
        epoch = registry.lead(session, epoch, term)
        if epoch is None:
            return None, report
        _take_over(session, registry, report)
        live = [node for node in registry.live_nodes(session) if not node.draining]
        owned = session.scalars(select(CopyJobRow).where(CopyJobRow.owner.is_not(None))).all()
        loads = {node.node_id: NodeLoad(node.node_id, 0, 0) for node in live}
        for row in owned:
            if row.owner in loads:
                load = loads[row.owner]
                loads[row.owner] = NodeLoad(load.node_id, load.running + 1, load.granted + row.granted)
        nodes = list(loads.values())
        _admit(session, nodes, max_running, report)
        _place_orphans(session, nodes, report)
        _publish(session, policy, report)
        return epoch, report


def _take_over(session: Session, registry: NodeRegistry, report: LeaderReport) -> None:
    dead = registry.dead_nodes(session)
    known = set(session.scalars(select(NodeRow.node_id)).all())
    orphaned = session.scalars(select(CopyJobRow).where(CopyJobRow.owner.is_not(None)).with_for_update()).all()
    for row in orphaned:
        if row.owner in dead or row.owner not in known:
            report.taken_over.setdefault(row.owner or "?", []).append(row.id)
            if row.run_purpose == VERIFY:
                verification = session.get(VerificationRow, row.id)
                if verification is not None and verification.status == "RUNNING":
                    verification.status, verification.completed_at = "FAILED", utcnow()
                    verification.error = f"node {row.owner} stopped during the verification; verify again"
            for key, value in released().items():
                setattr(row, key, value)
    if dead:
        registry.bury(session, dead)


def _admit(session: Session, nodes: list[NodeLoad], max_running: int, report: LeaderReport) -> None:
    if not nodes:
        return
    running = session.scalar(select(func.count()).where(CopyJobRow.state == State.RUNNING.value)) or 0
    room = None if max_running == 0 else max(0, max_running - running)
    if room == 0:
        return
    waiting = session.scalars(
        select(CopyJobRow)
        .where(CopyJobRow.state == State.SCHEDULED.value, CopyJobRow.owner.is_(None))
        .order_by(PRIORITY_RANK, CopyJobRow.created_at, CopyJobRow.id)
        .limit(room)
        .with_for_update()
    ).all()
    placement = place([row.id for row in waiting], nodes)
    now = utcnow()
    running_state = next_state(State.SCHEDULED, Action.ADMIT)
    for row in waiting:
        node_id = placement[row.id]
        values = {"owner": node_id, "run_purpose": COPY, "lease_epoch": row.lease_epoch + 1}
        values.update(started_at=now, completed_at=None, error=None, heartbeat_at=now)
        values.update(granted=0, grant_applied=0, active=0, units_completed=0, units_failed=0)
        if move(session, row.id, State.SCHEDULED, running_state, **values):
            report.admitted[row.id] = node_id
    _shift(nodes, report.admitted.values())


def _place_orphans(session: Session, nodes: list[NodeLoad], report: LeaderReport) -> None:
    if not nodes:
        return
    orphans = session.scalars(
        select(CopyJobRow)
        .where(CopyJobRow.state == State.RUNNING.value, CopyJobRow.owner.is_(None))
        .order_by(PRIORITY_RANK, CopyJobRow.started_at, CopyJobRow.id)
        .with_for_update()
    ).all()
    placement = place([row.id for row in orphans], nodes)
    for row in orphans:
        row.owner, row.run_purpose, row.lease_epoch = placement[row.id], COPY, row.lease_epoch + 1
        row.granted = row.grant_applied = row.active = row.units_completed = row.units_failed = 0
        report.placed[row.id] = placement[row.id]


def _publish(session: Session, policy: PoolPolicy, report: LeaderReport) -> None:
    session.flush()
    rows = session.scalars(select(CopyJobRow).where(CopyJobRow.owner.is_not(None)).with_for_update()).all()
    claimants = [row for row in rows if row.run_purpose == VERIFY or row.state == State.RUNNING.value]
    claims = [claim_of(row) for row in claimants]
    targets = {job: grant.granted for job, grant in allocate(claims, policy).items()}
    held = {row.id: Held(row.granted, row.grant_applied, row.active) for row in rows}
    order = [claim.job_id for claim in serving_order(claims)]
    published = publishable(order, targets, held, policy.limit)
    for row in rows:
        new = published.get(row.id, 0)
        if new != row.granted:
            row.granted = new
            report.grants[row.id] = new


def _shift(nodes: list[NodeLoad], placed: Iterable[str]) -> None:
    """Count placements made this round against their nodes, for the next placement."""
    counts: dict[str, int] = {}
    for node_id in placed:
        counts[node_id] = counts.get(node_id, 0) + 1
    for i, node in enumerate(nodes):
        nodes[i] = NodeLoad(node.node_id, node.running + counts.get(node.node_id, 0), node.granted)
