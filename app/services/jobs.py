"""Copy jobs (migrations): define, read, change, and act on them.

Every state change goes through :func:`app.policy.states.next_state` and a conditional UPDATE,
so two racing requests cannot both win, and a refused action changes nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db import jobs as job_queries
from app.db.models import CopyJobRow, DiscrepancyRow, VerificationRow, WorkItemRow, utcnow
from app.db.session import Database
from app.engines.base import Engine, InvalidField, LeavesPartials, Purpose, RescansRegions
from app.errors import Conflict, InvalidValue, NotFound
from app.policy.allocation import Grant, Priority, percentage_of, requested_threads
from app.policy.percent import parse_percent
from app.policy.properties import SCAN_PERCENTAGE
from app.policy.states import Action, State, TransitionRefused, is_active, next_state
from app.pool.coordinator import Coordinator, claim_of
from app.pool.pool import RunStats

JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

log = structlog.get_logger(__name__)


def _logged(job_id: str, action: str, before: str | None, after: str | None, **details: Any) -> None:
    """One event per transition an operator caused, named by its action."""
    log.info("migration transition", action=action, migration_id=job_id, from_state=before, to_state=after, **details)


@dataclass(frozen=True)
class JobDefinition:
    """What an operator asks for; compared field by field for an idempotent PUT."""

    kind: str
    source: str
    target: str
    priority: Priority = Priority.NORMAL
    scan_percentage: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobView:
    row: CopyJobRow
    progress: dict[str, Any]
    grant: Grant
    active: int
    #: While RUNNING: what the run waits for (SPEC: said in ``error``), else None.
    notice: str | None = None


def parse_priority(value: str, field_name: str = "priority") -> Priority:
    try:
        return Priority[value.strip().upper()]
    except KeyError:
        raise InvalidValue(field_name, f"{value!r} is not one of LOW, NORMAL, HIGH") from None


def parse_properties(properties: Mapping[str, Any], field_name: str = "properties") -> float | None:
    """The per-migration properties; today only the scan percentage. None or "" clears it."""
    unknown = set(properties) - {SCAN_PERCENTAGE}
    if unknown:
        raise InvalidValue(f"{field_name}.{sorted(unknown)[0]}", f"unknown property; known: {SCAN_PERCENTAGE}")
    value = properties.get(SCAN_PERCENTAGE)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse_percent(str(value))
    except ValueError as exc:
        raise InvalidValue(f"{field_name}.{SCAN_PERCENTAGE}", str(exc)) from None


class JobService:
    def __init__(self, db: Database, engines: Mapping[str, Engine], coordinator: Coordinator) -> None:
        self._db = db
        self._engines = engines
        self._coordinator = coordinator

    # -- defining ------------------------------------------------------------------------------

    def validate(self, definition: JobDefinition) -> JobDefinition:
        engine = self._engines.get(definition.kind)
        if engine is None:
            raise InvalidValue("kind", f"{definition.kind!r} is not one of {', '.join(sorted(self._engines))}")
        try:
            options = engine.validate(
                definition.source, definition.target, definition.options, self._coordinator.allowed_roots
            )
        except InvalidField as exc:
            raise InvalidValue(exc.field, exc.message) from None
        except (ValueError, OSError) as exc:  # an input the engine did not foresee: still the input's fault
            log.warning("engine refused a definition without naming a field", action="validate_error", error=repr(exc))
            raise InvalidValue("definition", f"the {definition.kind} engine refused it: {exc}") from None
        return JobDefinition(
            definition.kind,
            definition.source,
            definition.target,
            definition.priority,
            definition.scan_percentage,
            options,
        )

    def create(
        self, job_id: str | None, definition: JobDefinition, *, auto_start: bool, idempotent: bool
    ) -> tuple[JobView, bool]:
        """Create a job; with ``idempotent`` the same definition again is not an error.

        Returns the job and whether it was created now.
        """
        if job_id is not None and not JOB_ID.match(job_id):
            raise InvalidValue("migrationId", "must be 1 to 128 of A-Z a-z 0-9 . _ -")
        definition = self.validate(definition)
        job_id = job_id or f"{definition.kind}-{uuid.uuid4().hex[:12]}"
        with self._db.session() as session:
            existing = session.get(CopyJobRow, job_id)
            if existing is not None:
                if idempotent and _definition_of(existing) == definition:
                    return self._view(existing), False
                raise Conflict(f"migrationId: {job_id!r} exists with a different definition")
            engine = self._engines[definition.kind]
            row = CopyJobRow(
                id=job_id,
                kind=definition.kind,
                source=definition.source,
                target=definition.target,
                priority=definition.priority.name,
                scan_percentage=definition.scan_percentage,
                options=dict(definition.options),
                state=State.NONSCHEDULED.value,
                progress=engine.empty_progress(),
                run_number=0,
                passes=0,
                created_at=utcnow(),
            )
            session.add(row)
        _logged(job_id, "create", None, State.NONSCHEDULED.value, kind=definition.kind)
        if auto_start:
            return self.start(job_id), True
        return self._view(row), True

    # -- reading -------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobView:
        with self._db.session() as session:
            return self._view(_row(session, job_id))

    def list_jobs(self, state: State | None) -> list[JobView]:
        with self._db.session() as session:
            query = select(CopyJobRow).order_by(CopyJobRow.created_at, CopyJobRow.id)
            if state is not None:
                query = query.where(CopyJobRow.state == state.value)
            rows = list(session.scalars(query))
        runs = {run.job_id: run for run in self._coordinator.pool.snapshot().runs}
        return [self._view(row, runs) for row in rows]

    # -- changing ------------------------------------------------------------------------------

    def patch(
        self,
        job_id: str,
        *,
        priority: Priority | None = None,
        percentage: float | None = None,
        clear_percentage: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> JobView:
        with self._db.session() as session:
            row = _row(session, job_id)
            if options is not None:
                if is_active(State(row.state)) or self._coordinator.busy(job_id):
                    raise Conflict(f"options: cannot change the options of a {row.state} migration; stop it first")
                merged = {**row.options, **options}
                merged = {key: value for key, value in merged.items() if value is not None}
                definition = JobDefinition(row.kind, row.source, row.target, options=merged)
                row.options = dict(self.validate(definition).options)
            if priority is not None:
                row.priority = priority.name
            if clear_percentage:
                row.scan_percentage = None
            elif percentage is not None:
                row.scan_percentage = percentage
        self._coordinator.update_claim(row)
        _logged(
            job_id,
            "edit",
            row.state,
            row.state,
            priority=row.priority,
            percentage=row.scan_percentage,
            options_changed=options is not None,
        )
        return self._view(row)

    def start(self, job_id: str) -> JobView:
        """Start a new pass: the first, or an incremental one after COMPLETED."""
        return self._act(job_id, Action.START, fresh_pass=True)

    def resume(self, job_id: str) -> JobView:
        return self._act(job_id, Action.RESUME)

    def stop(self, job_id: str) -> JobView:
        view = self._act(job_id, Action.STOP)
        self._coordinator.stop(job_id)
        return view

    def stop_all(self) -> list[JobView]:
        with self._db.session() as session:
            ids = session.scalars(
                select(CopyJobRow.id).where(CopyJobRow.state.in_([State.SCHEDULED.value, State.RUNNING.value]))
            ).all()
        stopped = []
        for job_id in ids:
            try:
                stopped.append(self.stop(job_id))
            except (Conflict, NotFound):
                continue  # it ended or was stopped meanwhile
        return stopped

    def reset(self, job_id: str) -> JobView:
        with self._db.session() as session:
            row = _row(session, job_id)
            self._refuse_if_busy(row, Action.RESET)
            new = _next(row, Action.RESET)
            if not job_queries.move(
                session,
                job_id,
                State(row.state),
                new,
                checkpoint=None,
                error=None,
                progress=self._engines[row.kind].empty_progress(),
                passes=0,
                run_number=row.run_number + 1,
                started_at=None,
                completed_at=None,
            ):
                raise Conflict(f"migration {job_id!r} changed state meanwhile; try again")
            session.execute(delete(WorkItemRow).where(WorkItemRow.job_id == job_id))
            before = row.state
            session.refresh(row)
        _logged(job_id, "reset", before, row.state)
        return self._view(row)

    def delete(self, job_id: str) -> None:
        with self._db.session() as session:
            row = _row(session, job_id)
            self._refuse_if_busy(row, Action.DELETE)
            _next(row, Action.DELETE)
            state, engine = row.state, self._engines.get(row.kind)
            if isinstance(engine, LeavesPartials):
                # Before the job's rows go: they say which temporaries are its own.
                engine.discard_partials(self._db, job_id, row.target)
            session.execute(delete(CopyJobRow).where(CopyJobRow.id == job_id, CopyJobRow.state == state))
        _logged(job_id, "delete", state, None)

    def verify(self, job_id: str) -> JobView:
        with self._db.session() as session:
            row = _row(session, job_id)
            self._refuse_if_busy(row, Action.VERIFY)
            _next(row, Action.VERIFY)
            session.execute(delete(DiscrepancyRow).where(DiscrepancyRow.job_id == job_id))
            session.execute(delete(VerificationRow).where(VerificationRow.job_id == job_id))
            session.add(VerificationRow(job_id=job_id, status="RUNNING", started_at=utcnow(), counts={}))
        self._coordinator.verify(row)
        _logged(job_id, "verify", row.state, row.state)
        return self._view(row)

    def add_pending_region(self, job_id: str, path: str) -> JobView:
        """Queue a rescan of one directory of the source (``/sub/dir``, relative to the source)."""
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if not path.startswith("/") or ".." in parts or "\x00" in path:
            raise InvalidValue("path", f"{path!r} must be an absolute path within the source, such as /sub/dir")
        with self._db.session() as session:
            row = _row(session, job_id)
        engine = self._engines[row.kind]
        if not isinstance(engine, RescansRegions):
            raise InvalidValue("path", f"pending regions apply to tree migrations, not {row.kind}")
        live = self._coordinator.pool.get(job_id) if self._coordinator.purpose_of(job_id) is Purpose.COPY else None
        try:
            engine.add_pending_region(self._db, job_id, "/".join(parts), live.engine_run if live else None)
        except InvalidField as exc:
            raise InvalidValue(exc.field, exc.message) from None
        return self._view(row)

    def verification(self, job_id: str, offset: int, limit: int) -> tuple[VerificationRow, list[DiscrepancyRow]]:
        with self._db.session() as session:
            _row(session, job_id)
            report = session.get(VerificationRow, job_id)
            if report is None:
                raise NotFound(f"migrationId: {job_id!r} has not been verified; POST .../verify first")
            items = session.scalars(
                select(DiscrepancyRow)
                .where(DiscrepancyRow.job_id == job_id)
                .order_by(DiscrepancyRow.seq)
                .offset(offset)
                .limit(limit)
            ).all()
            return report, list(items)

    # -- helpers -------------------------------------------------------------------------------

    def _act(self, job_id: str, action: Action, *, fresh_pass: bool = False) -> JobView:
        with self._db.session() as session:
            row = _row(session, job_id)
            # A stopped run may still be draining: resume waits for it in SCHEDULED (the
            # coordinator admits a job only once its old run has left the pool).
            draining_is_fine = action is Action.RESUME and self._coordinator.purpose_of(job_id) is not Purpose.VERIFY
            if action is not Action.STOP and not draining_is_fine:
                self._refuse_if_busy(row, action)
            new = _next(row, action)
            values: dict[str, Any] = {"error": None} if new is State.SCHEDULED else {}
            if fresh_pass:
                values.update(
                    checkpoint=None,
                    run_number=row.run_number + 1,
                    completed_at=None,
                    progress=self._engines[row.kind].empty_progress(),
                )
                session.execute(delete(WorkItemRow).where(WorkItemRow.job_id == job_id))
            before = row.state
            if not job_queries.move(session, job_id, State(before), new, **values):
                raise Conflict(f"migration {job_id!r} changed state meanwhile; try again")
            session.refresh(row)
        _logged(job_id, action.value, before, row.state)
        self._coordinator.wake()
        return self._view(row)

    def _refuse_if_busy(self, row: CopyJobRow, action: Action) -> None:
        if self._coordinator.busy(row.id) and not is_active(State(row.state)):
            doing = "verifying" if self._coordinator.purpose_of(row.id) is Purpose.VERIFY else "still stopping"
            raise Conflict(f"cannot {action.value} migration {row.id!r}: it is {doing}; try again shortly")

    def _view(self, row: CopyJobRow, runs: Mapping[str, RunStats] | None = None) -> JobView:
        if runs is None:
            runs = {run.job_id: run for run in self._coordinator.pool.snapshot().runs}
        stats = runs.get(row.id)
        progress = self._coordinator.live_progress(row.id) or dict(row.progress)
        if stats is not None:
            grant = Grant(stats.percentage, stats.source, stats.requested, stats.granted)
            return JobView(row, progress, grant, stats.active, self._coordinator.notice(row.id))
        policy = self._coordinator.config.pool
        percentage, source = percentage_of(claim_of(row), policy)
        return JobView(row, progress, Grant(percentage, source, requested_threads(percentage, policy), 0), 0)


def _row(session: Session, job_id: str) -> CopyJobRow:
    row = session.get(CopyJobRow, job_id)
    if row is None:
        raise NotFound(f"migrationId: no migration {job_id!r}")
    return row


def _next(row: CopyJobRow, action: Action) -> State:
    try:
        return next_state(State(row.state), action)
    except TransitionRefused as exc:
        raise Conflict(str(exc)) from None


def _definition_of(row: CopyJobRow) -> JobDefinition:
    return JobDefinition(
        row.kind, row.source, row.target, Priority[row.priority], row.scan_percentage, dict(row.options)
    )
