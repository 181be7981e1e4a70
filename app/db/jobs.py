"""Read-only queries on copy jobs: ordering and counts. Every write is in :mod:`app.db.ledger`."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, defer

from app.db.models import CopyJobRow

#: HIGH first: the SQL twin of ``app.policy.allocation.serving_order``.
PRIORITY_RANK = case({"HIGH": 0, "NORMAL": 1, "LOW": 2}, value=CopyJobRow.priority)


def counts_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(CopyJobRow.state, func.count()).group_by(CopyJobRow.state))
    return {state: count for state, count in rows}  # noqa: C416 - a Result is not a mapping


def held(session: Session) -> list[CopyJobRow]:
    """Jobs some node holds (running, stopping, verifying), in serving order, for the view: not
    their checkpoints and options (large, and read by runs alone)."""
    query = (
        select(CopyJobRow)
        .options(defer(CopyJobRow.checkpoint, raiseload=True), defer(CopyJobRow.options, raiseload=True))
        .where(CopyJobRow.owner.is_not(None))
        .order_by(PRIORITY_RANK, CopyJobRow.started_at)
    )
    return list(session.scalars(query))
