"""The job ledger: every change of a job's state, owner and lease, one named transaction each.

Who calls what::

    services (any node)     create, act (start/stop/resume/reset/verify-refusals), stop_all,
                            reset, delete, edit, open_verification
    a node's coordinator    sync (heartbeat, read and acknowledge its grants), save_progress,
                            record_outcome, close_verification, findings, fenced
    the leader's coordinator app.db.leading.lead (take over dead nodes' jobs, admit, place,
                            publish grants), with the helpers here

Every state change goes through :func:`app.policy.states.next_state`. A job being run is held by
one node under a *lease*: ``owner`` names the node and ``lease_epoch`` grows each time the lease
changes hands. Everything a run writes is conditional on ``(owner, lease_epoch)``, so a node that
lost the lease (declared dead while paused or partitioned) can no longer write: its progress,
checkpoints, outcome and engine rows are refused. Nothing here assumes that a job's units all run
in one process: the lease is what a writer must hold, wherever it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, load_only

from app.db.jobs import PRIORITY_RANK
from app.db.leases import VERIFY, FencedDatabase, Lease, fence, lease_of
from app.db.models import CopyJobRow, DiscrepancyRow, VerificationRow, WorkItemRow, utcnow
from app.db.nodes import NodeRegistry
from app.db.session import Database
from app.policy.allocation import Claim, Priority
from app.policy.states import Action, State, next_state

#: The ``work_items`` bucket of requests for the node that runs a job (rescan this directory).
INBOX = "inbox:region"


class NoSuchJob(LookupError):
    """No migration has that id."""


class Busy(Exception):
    """A node still holds the job (its run is stopping, or it is verifying)."""

    def __init__(self, job_id: str, doing: str) -> None:
        super().__init__(f"migration {job_id!r} is {doing}")
        self.doing = doing


class StateChanged(Exception):
    """The job changed state between reading and writing: the caller may try again."""


@dataclass(frozen=True, slots=True)
class Owned:
    """One job a node holds, as its sync read it."""

    lease: Lease
    state: State
    granted: int
    claim: Claim


@dataclass(frozen=True, slots=True)
class Sync:
    """What a node learns each tick: whether it is still alive, and the jobs it holds."""

    alive: bool
    owned: list[Owned]


@dataclass(frozen=True, slots=True)
class RunReport:
    """What a node reports of one of its runs each tick."""

    active: int
    units_completed: int
    units_failed: int
    #: What the run waits for (a server down at open), or None while it can work.
    notice: str | None = None


#: The columns a sync reads and writes, four times a second: not the progress, checkpoint and
#: options documents, whose decoding would cost the interpreter more than the rest of the row.
SYNCED = load_only(
    *(CopyJobRow.id, CopyJobRow.state, CopyJobRow.owner, CopyJobRow.lease_epoch, CopyJobRow.run_number),
    *(CopyJobRow.run_purpose, CopyJobRow.priority, CopyJobRow.scan_percentage, CopyJobRow.started_at),
    *(CopyJobRow.created_at, CopyJobRow.granted, CopyJobRow.grant_applied, CopyJobRow.active),
    *(CopyJobRow.units_completed, CopyJobRow.units_failed, CopyJobRow.notice),
)


def claim_of(row: CopyJobRow) -> Claim:
    started = row.started_at or row.created_at
    return Claim(row.id, Priority[row.priority], started.timestamp(), row.scan_percentage)


def released() -> dict[str, Any]:
    """The columns of a job no node holds."""
    return {"owner": None, "run_purpose": None, "granted": 0, "grant_applied": 0, "active": 0, "notice": None}


class JobLedger:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading (for the operations below and the services) ------------------------------------

    @staticmethod
    def _row(session: Session, job_id: str, *, lock: bool = False) -> CopyJobRow:
        query = select(CopyJobRow).where(CopyJobRow.id == job_id)
        row = session.scalars(query.with_for_update() if lock else query).first()
        if row is None:
            raise NoSuchJob(job_id)
        return row

    def get(self, job_id: str) -> CopyJobRow:
        with self.db.session() as session:
            return self._row(session, job_id)

    # -- an operator's changes -----------------------------------------------------------------

    def create(self, row: CopyJobRow) -> CopyJobRow:
        """Record a new job; it starts NONSCHEDULED. The caller checked the id is free."""
        row.state = State.NONSCHEDULED.value
        with self.db.session() as session:
            session.add(row)
        return row

    def act(
        self, job_id: str, action: Action, *, fresh_pass: bool = False, empty_progress: dict[str, Any] | None = None
    ) -> tuple[State, CopyJobRow]:
        """Start, resume or stop a job through the state table; returns (state before, row).

        A resume may be asked while the stopped run still drains on its node: the job waits in
        SCHEDULED, and the leader admits it only once that node let go of it.
        """
        with self.db.session() as session:
            row = self._row(session, job_id, lock=True)
            before = State(row.state)
            if action not in (Action.STOP, Action.RESUME) or row.run_purpose == VERIFY:
                _refuse_if_held(row, action)
            new = next_state(before, action)
            values: dict[str, Any] = {"error": None} if new is State.SCHEDULED else {}
            if fresh_pass:
                values.update(checkpoint=None, run_number=row.run_number + 1, completed_at=None)
                if empty_progress is not None:
                    values["progress"] = empty_progress
                session.execute(delete(WorkItemRow).where(WorkItemRow.job_id == job_id))
            if not move(session, job_id, before, new, **values):
                raise StateChanged(job_id)
            session.refresh(row)
            return before, row

    def stop_all(self) -> list[tuple[State, CopyJobRow]]:
        """Stop every SCHEDULED job, then every RUNNING one, in one transaction.

        Stopping a running job frees a place under ``migration.max.running.migrations``; doing
        the waiting ones first and in the same transaction leaves no moment at which the leader
        could admit one of them. On PostgreSQL the rows are locked first in the order the leader
        locks them (jobs held by a node, then the waiting ones in admission order): locking the
        waiting ones first deadlocked with an admission (seen as a 500 from stop-all). Each state
        is then read again as it is stopped, so a job admitted meanwhile where rows are not
        locked (SQLite) is stopped as a running one. Other writers (the leader placing a dead
        node's jobs) cannot always lock in this order: a transaction PostgreSQL aborts as
        deadlocked is run again.
        """
        return self.db.transaction(_stop_all, what="stop_all")

    def reset(self, job_id: str, empty_progress: dict[str, Any]) -> tuple[State, CopyJobRow]:
        with self.db.session() as session:
            row = self._row(session, job_id, lock=True)
            _refuse_if_held(row, Action.RESET)
            before = State(row.state)
            moved = move(
                session,
                job_id,
                before,
                next_state(before, Action.RESET),
                checkpoint=None,
                error=None,
                progress=empty_progress,
                passes=0,
                run_number=row.run_number + 1,
                started_at=None,
                completed_at=None,
            )
            if not moved:
                raise StateChanged(job_id)
            session.execute(delete(WorkItemRow).where(WorkItemRow.job_id == job_id))
            session.refresh(row)
            return before, row

    @contextmanager
    def deleting(self, job_id: str) -> Iterator[CopyJobRow]:
        """Delete a job; the body runs first (removing its temporaries) inside the transaction."""
        with self.db.session() as session:
            row = self._row(session, job_id, lock=True)
            _refuse_if_held(row, Action.DELETE)
            next_state(State(row.state), Action.DELETE)
            yield row
            session.execute(delete(CopyJobRow).where(CopyJobRow.id == job_id, CopyJobRow.state == row.state))

    def edit(self, job_id: str, values: Mapping[str, Any], *, options_changed: bool) -> CopyJobRow:
        """Change priority, override or options (options only while no node holds the job)."""
        with self.db.session() as session:
            row = self._row(session, job_id, lock=True)
            next_state(State(row.state), Action.EDIT)
            if options_changed and (row.owner is not None or State(row.state) in (State.RUNNING, State.SCHEDULED)):
                raise Busy(job_id, f"{row.state}; stop it before changing its options")
            for key, value in values.items():
                setattr(row, key, value)
            return row

    def open_verification(self, job_id: str, node_id: str) -> tuple[CopyJobRow, Lease]:
        """Take the job's lease on ``node_id`` to verify it, with a fresh RUNNING report."""
        with self.db.session() as session:
            row = self._row(session, job_id, lock=True)
            _refuse_if_held(row, Action.VERIFY)
            next_state(State(row.state), Action.VERIFY)
            row.owner, row.run_purpose, row.lease_epoch = node_id, VERIFY, row.lease_epoch + 1
            row.granted = row.grant_applied = row.active = row.units_completed = row.units_failed = 0
            session.execute(delete(DiscrepancyRow).where(DiscrepancyRow.job_id == job_id))
            session.execute(delete(VerificationRow).where(VerificationRow.job_id == job_id))
            session.add(VerificationRow(job_id=job_id, status="RUNNING", started_at=utcnow(), counts={}))
            session.flush()
            return row, lease_of(row)

    # -- a node's writes about its runs --------------------------------------------------------

    def sync(self, registry: NodeRegistry, stats: dict[str, Any], reports: Mapping[str, RunReport]) -> Sync:
        """Beat the heartbeat, read the jobs this node holds, and acknowledge their grants.

        Reading a grant and acknowledging it happen under one row lock, so the grant a node
        applies is always the one the leader sees acknowledged (see :mod:`app.policy.cluster`).
        """
        with self.db.session() as session:
            alive = registry.beat(session, stats, draining=bool(stats.get("draining")))
            rows = session.scalars(
                select(CopyJobRow).options(SYNCED).where(CopyJobRow.owner == registry.node_id).with_for_update()
            ).all()
            owned = []
            for row in rows:
                report = reports.get(row.id, RunReport(0, 0, 0))
                row.grant_applied, row.active = row.granted, report.active
                row.units_completed, row.units_failed = report.units_completed, report.units_failed
                row.notice = report.notice
                owned.append(Owned(lease_of(row), State(row.state), row.granted, claim_of(row)))
            return Sync(alive, owned if alive else [])

    def save_progress(self, entries: Iterable[tuple[Lease, dict[str, Any], dict[str, Any] | None]]) -> set[str]:
        """Progress and checkpoint of each run, in one transaction; the ids whose lease is gone."""
        lost: set[str] = set()
        with self.db.session() as session:
            now = utcnow()
            for lease, progress, checkpoint in entries:
                values: dict[str, Any] = {"progress": progress, "heartbeat_at": now}
                if checkpoint is not None:
                    values["checkpoint"] = checkpoint
                if not _write(session, lease, **values):
                    lost.add(lease.job_id)
        return lost

    def record_outcome(
        self,
        lease: Lease,
        outcome: str,
        progress: dict[str, Any],
        checkpoint: dict[str, Any] | None,
        error: str | None,
    ) -> bool:
        """Save a copy run's last progress and checkpoint, let go of the job, move its state.

        ``outcome`` is COMPLETED or FAILED (the state moves if still RUNNING: a user's stop won),
        STOPPED (the user's stop already moved it) or INTERRUPTED (shutdown: the job stays
        RUNNING and another node, or this one after a restart, takes it from the checkpoint).
        False when the lease was lost: then nothing at all is written.
        """
        values: dict[str, Any] = {"progress": progress, **released()}
        if checkpoint is not None:
            values["checkpoint"] = checkpoint
        with self.db.session() as session:
            row = session.scalars(select(CopyJobRow).where(fence(lease)).with_for_update()).first()
            if row is None:
                return False
            action = {"COMPLETED": Action.COMPLETE, "FAILED": Action.FAIL}.get(outcome)
            if action is not None and row.state == State.RUNNING.value and row.run_number == lease.run_number:
                new = next_state(State.RUNNING, action)
                values["state"] = new.value
                values["completed_at"] = utcnow()
                if new is State.COMPLETED:
                    values["passes"] = CopyJobRow.passes + 1
                else:
                    values["error"] = error
            elif row.run_number != lease.run_number:
                values = released()  # a reset or fresh pass came after: keep only the release
            session.execute(update(CopyJobRow).where(fence(lease)).values(**values))
            return True

    def close_verification(self, lease: Lease, ok: bool, counts: dict[str, Any], error: str | None) -> bool:
        with self.db.session() as session:
            if not _write(session, lease, **released()):
                return False
            report = session.get(VerificationRow, lease.job_id)
            if report is not None:
                report.completed_at, report.counts = utcnow(), counts
                report.status = "COMPLETED" if ok else "FAILED"
                report.error = None if ok else (error or "verification did not finish; verify again")
            return True

    def findings(self, lease: Lease, found: Sequence[tuple[str, str, str | None]]) -> None:
        """Append discrepancies ``(type, path, detail)`` to the job's report, numbered in order."""
        if not found:
            return
        with self.fenced(lease).session() as session:
            last = session.scalar(select(func.max(DiscrepancyRow.seq)).where(DiscrepancyRow.job_id == lease.job_id))
            first = (last or 0) + 1
            session.execute(
                insert(DiscrepancyRow),
                [
                    {"job_id": lease.job_id, "seq": first + i, "type": kind, "path": path, "detail": detail}
                    for i, (kind, path, detail) in enumerate(found)
                ],
            )

    def post_region(self, job_id: str, region: str) -> None:
        """Ask the node running a job to rescan one directory (it takes the request each tick)."""
        with self.db.session() as session:
            session.execute(delete(WorkItemRow).where(*_inbox(job_id), WorkItemRow.key == region))
            session.add(WorkItemRow(job_id=job_id, bucket=INBOX, key=region, payload=None))

    def take_regions(self, job_ids: Sequence[str]) -> list[tuple[str, str]]:
        """The rescan requests posted for these jobs, removed as they are read."""
        if not job_ids:
            return []
        with self.db.session() as session:
            query = select(WorkItemRow.job_id, WorkItemRow.key).where(
                WorkItemRow.bucket == INBOX, WorkItemRow.job_id.in_(job_ids)
            )
            posted = [(job_id, key) for job_id, key in session.execute(query)]
            for job_id, key in posted:
                session.execute(delete(WorkItemRow).where(*_inbox(job_id), WorkItemRow.key == key))
            return posted

    def fenced(self, lease: Lease) -> FencedDatabase:
        """A database for the run's engine: each transaction first checks the lease."""
        return FencedDatabase(self.db, lease)


def _inbox(job_id: str) -> tuple[Any, Any]:
    return WorkItemRow.job_id == job_id, WorkItemRow.bucket == INBOX


def _refuse_if_held(row: CopyJobRow, action: Action) -> None:
    """Refuse an action on a job some node still holds: stopping, or verifying."""
    if row.owner is None or State(row.state) in (State.RUNNING, State.SCHEDULED):
        return
    doing = "verifying" if row.run_purpose == VERIFY else "still stopping"
    raise Busy(row.id, doing)


def move(session: Session, job_id: str, expected: State, new: State, **values: Any) -> bool:
    result = session.execute(
        update(CopyJobRow)
        .where(CopyJobRow.id == job_id, CopyJobRow.state == expected.value)
        .values(state=new.value, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _write(session: Session, lease: Lease, **values: Any) -> bool:
    result = session.execute(
        update(CopyJobRow)
        .where(fence(lease), CopyJobRow.run_number == lease.run_number)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _stop_all(session: Session) -> list[tuple[State, CopyJobRow]]:
    """JobLedger.stop_all's transaction (run again when PostgreSQL aborts it as deadlocked)."""
    stopped: list[tuple[State, CopyJobRow]] = []
    session.scalars(select(CopyJobRow).where(CopyJobRow.owner.is_not(None)).with_for_update()).all()
    session.scalars(
        select(CopyJobRow)
        .where(CopyJobRow.state == State.SCHEDULED.value)
        .order_by(PRIORITY_RANK, CopyJobRow.created_at, CopyJobRow.id)
        .with_for_update()
    ).all()
    for state in (State.SCHEDULED, State.RUNNING):
        rows = session.scalars(select(CopyJobRow).where(CopyJobRow.state == state.value).with_for_update())
        for row in rows.all():
            if move(session, row.id, state, next_state(state, Action.STOP)):
                session.refresh(row)
                stopped.append((state, row))
    return stopped


__all__ = ["Busy", "JobLedger", "NoSuchJob", "Owned", "RunReport", "StateChanged", "Sync", "claim_of"]
