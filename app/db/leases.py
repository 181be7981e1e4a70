"""Leases: what a node must hold to write anything about a job it runs.

A job being run is held by one node: ``owner`` names it and ``lease_epoch`` grows each time the
lease changes hands. Every write of a run is conditional on ``(owner, lease_epoch)``: the job
ledger's updates carry :func:`fence` in their WHERE clause, and the engine's own rows go through
a :class:`FencedDatabase` whose every transaction checks the lease first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import CopyJobRow
from app.db.session import Database

COPY, VERIFY = "copy", "verify"


@dataclass(frozen=True, slots=True)
class Lease:
    """What a run must hold to write anything about its job."""

    job_id: str
    node_id: str
    epoch: int
    run_number: int
    purpose: str


def lease_of(row: CopyJobRow) -> Lease:
    assert row.owner is not None
    return Lease(row.id, row.owner, row.lease_epoch, row.run_number, row.run_purpose or COPY)


def fence(lease: Lease) -> Any:
    """The WHERE clause that holds only while ``lease`` does."""
    return (
        (CopyJobRow.id == lease.job_id) & (CopyJobRow.owner == lease.node_id) & (CopyJobRow.lease_epoch == lease.epoch)
    )


class FencedDatabase(Database):
    """The engine's database: every transaction holds the lease, or raises :class:`LeaseLost`.

    The job's row is read FOR SHARE first, so a takeover (which updates that row) waits until
    the transaction ends, and a transaction begun after a takeover sees it and writes nothing.
    """

    def __init__(self, db: Database, lease: Lease) -> None:
        self.url = db.url
        self.engine = db.engine
        self._sessions = db._sessions
        self.lease = lease

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            held = session.scalar(select(CopyJobRow.id).where(fence(self.lease)).with_for_update(read=True))
            if held is None:
                raise LeaseLost(self.lease.job_id)
            yield session


class LeaseLost(Exception):
    """This node no longer holds the job's lease: another node runs it now."""
