"""Queries on copy jobs shared by the services and the coordinator. Helpers never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from app.db.models import CopyJobRow
from app.policy.states import State

#: HIGH first: the SQL twin of ``app.policy.allocation.serving_order``.
PRIORITY_RANK = case({"HIGH": 0, "NORMAL": 1, "LOW": 2}, value=CopyJobRow.priority)


def move(session: Session, job_id: str, expected: State, new: State, **values: Any) -> bool:
    """Change a job's state only if it is still ``expected``; True when it was."""
    result = session.execute(
        update(CopyJobRow)
        .where(CopyJobRow.id == job_id, CopyJobRow.state == expected.value)
        .values(state=new.value, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def save_run_state(session: Session, job_id: str, run_number: int, **values: Any) -> bool:
    """Write progress/checkpoint of run ``run_number``; ignored if the job was reset since."""
    result = session.execute(
        update(CopyJobRow)
        .where(CopyJobRow.id == job_id, CopyJobRow.run_number == run_number)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def scheduled_in_order(session: Session, limit: int | None) -> list[CopyJobRow]:
    query = (
        select(CopyJobRow)
        .where(CopyJobRow.state == State.SCHEDULED.value)
        .order_by(PRIORITY_RANK, CopyJobRow.created_at, CopyJobRow.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_in_state(session: Session, state: State) -> int:
    return session.scalar(select(func.count()).where(CopyJobRow.state == state.value)) or 0


def counts_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(CopyJobRow.state, func.count()).group_by(CopyJobRow.state))
    return {state: count for state, count in rows}  # noqa: C416 - a Result is not a mapping


def recoverable(session: Session, owner: str, stale_before: datetime) -> list[CopyJobRow]:
    """RUNNING jobs this instance may take: its own, unowned, or with a stale heartbeat."""
    query = select(CopyJobRow).where(
        CopyJobRow.state == State.RUNNING.value,
        (CopyJobRow.owner.is_(None))
        | (CopyJobRow.owner == owner)
        | (CopyJobRow.heartbeat_at.is_(None))
        | (CopyJobRow.heartbeat_at < stale_before),
    )
    return list(session.scalars(query))
