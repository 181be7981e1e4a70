"""Copy jobs (migrations): define, read, change, and act on them, on any node of the cluster.

Every change of state goes through the job ledger (:mod:`app.db.ledger`): one transaction, the
state table, a conditional UPDATE, so two racing requests (on one node or two) cannot both win
and a refused action changes nothing. The node that runs a job follows its row within a tick.
What this module needs of the node is :class:`Runner`, a narrow interface a test can fake.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.leases import Lease
from app.db.ledger import Busy, JobLedger, NoSuchJob, StateChanged, claim_of
from app.db.models import CopyJobRow, DiscrepancyRow, VerificationRow, utcnow
from app.db.session import Database
from app.engines.base import Engine, InvalidField, JobRun, LeavesPartials, ListsFailures, Purpose, RescansRegions
from app.errors import Conflict, InvalidValue, NotFound
from app.policy.allocation import Grant, Priority, percentage_of, requested_threads
from app.policy.percent import parse_percent
from app.policy.properties import SCAN_PERCENTAGE, RuntimeConfig
from app.policy.states import Action, State, TransitionRefused
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
    #: The node running (or verifying, or still stopping) it, or None.
    node: str | None = None
    #: The status of its latest verification (RUNNING, COMPLETED, FAILED), if any.
    verification: str | None = None
    #: While RUNNING: what the run waits for (SPEC: said in ``error``), else None.
    notice: str | None = None


class Runner(Protocol):
    """What the services need of this node's coordinator."""

    node_id: str
    allowed_roots: tuple[Path, ...]

    @property
    def config(self) -> RuntimeConfig: ...

    def wake(self) -> None: ...

    def run_stats(self) -> dict[str, RunStats]: ...

    def live_progress(self, job_id: str) -> dict[str, Any] | None: ...

    def notice(self, job_id: str) -> str | None: ...

    def purpose_of(self, job_id: str) -> Purpose | None: ...

    def live_engine_run(self, job_id: str) -> JobRun | None: ...

    def expect(self, job_id: str) -> None: ...

    def forget(self, job_id: str) -> None: ...

    def verify_here(self, row: CopyJobRow, lease: Lease) -> None: ...


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
    def __init__(self, db: Database, engines: Mapping[str, Engine], runner: Runner) -> None:
        self._db = db
        self._engines = engines
        self._runner = runner
        self._ledger = JobLedger(db)

    # -- defining ------------------------------------------------------------------------------

    def validate(self, definition: JobDefinition) -> JobDefinition:
        engine = self._engines.get(definition.kind)
        if engine is None:
            raise InvalidValue("kind", f"{definition.kind!r} is not one of {', '.join(sorted(self._engines))}")
        try:
            options = engine.validate(
                definition.source, definition.target, definition.options, self._runner.allowed_roots
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
            progress=engine.empty_progress(),
            run_number=0,
            passes=0,
            created_at=utcnow(),
        )
        try:
            self._ledger.create(row)
        except Exception as exc:  # the same id created at once on another node
            if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
                raise Conflict(f"migrationId: {job_id!r} was just created by another request") from None
            raise
        _logged(job_id, "create", None, State.NONSCHEDULED.value, kind=definition.kind)
        if auto_start:
            return self.start(job_id), True
        return self._view(row), True

    # -- reading -------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobView:
        with self._db.session() as session:
            row = _row(session, job_id)
            verification = session.scalar(select(VerificationRow.status).where(VerificationRow.job_id == job_id))
        return self._view(row, verification=verification)

    def list_jobs(self, state: State | None) -> list[JobView]:
        with self._db.session() as session:
            query = select(CopyJobRow).order_by(CopyJobRow.created_at, CopyJobRow.id)
            if state is not None:
                query = query.where(CopyJobRow.state == state.value)
            rows = list(session.scalars(query))
            reports = dict(session.execute(select(VerificationRow.job_id, VerificationRow.status)).all())
        runs = self._runner.run_stats()
        return [self._view(row, runs, reports.get(row.id)) for row in rows]

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
        values: dict[str, Any] = {}
        if options is not None:
            current = self._ledger_call(self._ledger.get, job_id)
            merged = {**current.options, **options}
            merged = {key: value for key, value in merged.items() if value is not None}
            definition = JobDefinition(current.kind, current.source, current.target, options=merged)
            values["options"] = dict(self.validate(definition).options)
        if priority is not None:
            values["priority"] = priority.name
        if clear_percentage:
            values["scan_percentage"] = None
        elif percentage is not None:
            values["scan_percentage"] = percentage
        try:
            row = self._ledger_call(self._ledger.edit, job_id, values, options_changed=options is not None)
        except Conflict as exc:
            if options is not None:
                raise Conflict(f"options: {exc.detail}") from None
            raise
        self._runner.wake()
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
        return self._act(job_id, Action.STOP)

    def stop_all(self) -> list[JobView]:
        stopped = self._ledger.stop_all()
        for before, row in stopped:
            _logged(row.id, "stop", before.value, row.state, all=True)
        self._runner.wake()
        return [self._view(row) for _, row in stopped]

    def reset(self, job_id: str) -> JobView:
        row = self._ledger_call(self._ledger.get, job_id)
        before, row = self._ledger_call(self._ledger.reset, job_id, self._engines[row.kind].empty_progress())
        _logged(job_id, "reset", before.value, row.state)
        return self._view(row)

    def delete(self, job_id: str) -> None:
        with self._translated(job_id), self._ledger.deleting(job_id) as row:
            engine = self._engines.get(row.kind)
            if isinstance(engine, LeavesPartials):
                # Before the job's rows go: they say which temporaries are its own.
                engine.discard_partials(self._db, job_id, row.target)
            state = row.state
        _logged(job_id, "delete", state, None)

    def verify(self, job_id: str) -> JobView:
        self._runner.expect(job_id)
        try:
            row, lease = self._ledger_call(self._ledger.open_verification, job_id, self._runner.node_id)
        except BaseException:
            self._runner.forget(job_id)
            raise
        self._runner.verify_here(row, lease)
        _logged(job_id, "verify", row.state, row.state, node=self._runner.node_id)
        return self._view(row, verification="RUNNING")

    def add_pending_region(self, job_id: str, path: str) -> JobView:
        """Queue a rescan of one directory of the source (``/sub/dir``, relative to the source)."""
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if not path.startswith("/") or ".." in parts or "\x00" in path:
            raise InvalidValue("path", f"{path!r} must be an absolute path within the source, such as /sub/dir")
        row = self._ledger_call(self._ledger.get, job_id)
        engine = self._engines[row.kind]
        if not isinstance(engine, RescansRegions):
            raise InvalidValue("path", f"pending regions apply to tree migrations, not {row.kind}")
        region = "/".join(parts)
        live = self._runner.live_engine_run(job_id)
        try:
            if live is None and row.owner is not None and row.state == State.RUNNING.value:
                self._ledger.post_region(job_id, region)  # its node takes it within a tick
            else:
                engine.add_pending_region(self._db, job_id, region, live)
        except InvalidField as exc:
            raise InvalidValue(exc.field, exc.message) from None
        return self._view(row)

    def failures(self, job_id: str, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """The entries the migration's latest pass could not copy: their count and one page.
        A kind that stops at its first failure (a disk) has none to list."""
        row = self._ledger_call(self._ledger.get, job_id)
        engine = self._engines[row.kind]
        if not isinstance(engine, ListsFailures):
            return 0, []
        return engine.failures(self._db, job_id, offset, limit)

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
        empty = None
        if fresh_pass:
            empty = self._engines[self._ledger_call(self._ledger.get, job_id).kind].empty_progress()
        before, row = self._ledger_call(self._ledger.act, job_id, action, fresh_pass=fresh_pass, empty_progress=empty)
        _logged(job_id, action.value, before.value, row.state)
        self._runner.wake()
        return self._view(row)

    def _ledger_call(self, operation: Any, job_id: str, *args: Any, **kwargs: Any) -> Any:
        with self._translated(job_id):
            return operation(job_id, *args, **kwargs)

    @staticmethod
    @contextmanager
    def _translated(job_id: str) -> Iterator[None]:
        """The ledger's refusals as the API's errors."""
        try:
            yield
        except NoSuchJob:
            raise NotFound(f"migrationId: no migration {job_id!r}") from None
        except TransitionRefused as exc:
            raise Conflict(str(exc)) from None
        except Busy as exc:
            raise Conflict(f"migration {job_id!r} is {exc.doing}; try again shortly") from None
        except StateChanged:
            raise Conflict(f"migration {job_id!r} changed state meanwhile; try again") from None

    def _view(
        self, row: CopyJobRow, runs: Mapping[str, RunStats] | None = None, verification: str | None = None
    ) -> JobView:
        runs = self._runner.run_stats() if runs is None else runs
        policy = self._runner.config.pool
        percentage, source = percentage_of(claim_of(row), policy)
        requested = requested_threads(percentage, policy)
        stats = runs.get(row.id)
        running = row.state == State.RUNNING.value or row.run_purpose == "verify"
        if stats is not None:  # runs here: the pool's figures, this instant
            granted, active = (stats.granted if running else 0), stats.active
        elif row.owner is not None:  # runs on another node: what that node last reported
            granted, active = (row.granted if running else 0), row.active
        else:
            granted = active = 0
        progress = self._runner.live_progress(row.id) or dict(row.progress)
        grant = Grant(percentage, source, requested, granted)
        notice = self._runner.notice(row.id) if stats is not None else row.notice
        return JobView(row, progress, grant, active, row.owner, verification, notice)


def _row(session: Session, job_id: str) -> CopyJobRow:
    row = session.get(CopyJobRow, job_id)
    if row is None:
        raise NotFound(f"migrationId: no migration {job_id!r}")
    return row


def _definition_of(row: CopyJobRow) -> JobDefinition:
    return JobDefinition(
        row.kind, row.source, row.target, Priority[row.priority], row.scan_percentage, dict(row.options)
    )
