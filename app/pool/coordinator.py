"""The coordinator: the one thread that turns database state into pool membership and back.

Each tick it records the outcome of settled runs, admits SCHEDULED jobs while the running limit
allows (HIGH first, then oldest), reloads properties (so a change made by any instance reaches
this pool within a second), samples speeds and, every few seconds, saves progress, checkpoints
and a heartbeat. Web threads never touch the pool's threads: they call the few methods here.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from app.db import jobs as job_queries
from app.db.models import CopyJobRow, VerificationRow, utcnow
from app.db.session import Database
from app.engines.base import Engine, JobContext, JobSpec, Purpose, Unit
from app.policy.allocation import Claim, Priority
from app.policy.properties import DEFAULT_CONFIG, RuntimeConfig
from app.policy.states import Action, State, next_state
from app.pool import ledger
from app.pool.bandwidth import BandwidthLimiter
from app.pool.pool import ScanPool, UnitObserver
from app.pool.rates import RateWindow
from app.pool.run import Outcome, RunHandle, StopReason
from app.pool.totals import Totals
from app.services.properties import load_config

log = structlog.get_logger(__name__)

TICK = 0.25  #: seconds between coordinator ticks
SAVE_EVERY = 2.0  #: seconds between progress/checkpoint/heartbeat saves
CONFIG_EVERY = 1.0  #: seconds between property reloads from the database
STALE_AFTER = timedelta(seconds=60)  #: a heartbeat older than this frees a job for takeover


def claim_of(row: CopyJobRow) -> Claim:
    started = row.started_at or row.created_at
    return Claim(row.id, Priority[row.priority], started.timestamp(), row.scan_percentage)


class Coordinator:
    def __init__(
        self, db: Database, engines: Mapping[str, Engine], instance_id: str, allowed_roots: tuple[Path, ...]
    ) -> None:
        self.db = db
        self.engines = engines
        self.instance_id = instance_id
        self.allowed_roots = allowed_roots
        self.totals = Totals()
        self.pool = ScanPool(on_unit=self._unit_observed)
        self.bandwidth = BandwidthLimiter()
        self.config: RuntimeConfig = DEFAULT_CONFIG
        self.throughput = {"bytes": RateWindow(), "files": RateWindow()}
        self._settled: queue.SimpleQueue[RunHandle] = queue.SimpleQueue()
        self._purposes: dict[str, tuple[Purpose, int]] = {}  # job id -> (purpose, run number)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_save = self._last_config = 0.0
        self.drain_deadline: float | None = None
        self.unit_observers: list[UnitObserver] = []

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.apply_config(load_config(self.db))
        self._recover()
        self._thread = threading.Thread(target=self._loop, name="ferry-coordinator", daemon=True)
        self._thread.start()

    def shutdown(self, timeout: float) -> None:
        """Stop handing out units, let units in flight finish (bounded), checkpoint, release."""
        log.info("shutting down", action="shutdown", runs=len(self.pool.runs()), timeout=timeout)
        self.drain_deadline = time.monotonic() + timeout
        for run in self.pool.runs():
            self.pool.stop(run.job_id, StopReason.SHUTDOWN)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + 10)
        self.pool.close(timeout=1.0)

    def wake(self) -> None:
        self._wake.set()

    def apply_config(self, config: RuntimeConfig) -> None:
        if config != self.config:
            log.info(
                "pool rebalance",
                action="config_applied",
                limit=config.pool.limit,
                max_running=config.max_running,
                bandwidth=config.bandwidth_limit,
            )
        self.config = config
        self.pool.set_policy(config.pool)
        if self.bandwidth.rate != config.bandwidth_limit:
            self.bandwidth.set_rate(config.bandwidth_limit)
        self._wake.set()

    # -- requests from the services ------------------------------------------------------------

    def busy(self, job_id: str) -> bool:
        """True while the pool still holds a run of the job (running, verifying or draining)."""
        return self.pool.get(job_id) is not None

    def stop(self, job_id: str) -> None:
        self.pool.stop(job_id, StopReason.USER)
        self._wake.set()

    def update_claim(self, row: CopyJobRow) -> None:
        self.pool.update_claim(row.id, claim_of(row))

    def verify(self, row: CopyJobRow) -> None:
        """Start a verification run of a job that is not running (the caller checked)."""
        self._add_run(row, Purpose.VERIFY, incremental=False)

    def live_progress(self, job_id: str) -> dict[str, Any] | None:
        run = self.pool.get(job_id)
        if run is None or self._purposes.get(job_id, (Purpose.COPY, 0))[0] is not Purpose.COPY:
            return None
        return run.progress_fields()

    def notice(self, job_id: str) -> str | None:
        """What a running job waits for (an unreachable server), shown in its ``error``."""
        run = self.pool.get(job_id)
        return run.notice if run is not None else None

    def purpose_of(self, job_id: str) -> Purpose | None:
        entry = self._purposes.get(job_id)
        return entry[0] if entry else None

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._wake.wait(TICK)
            self._wake.clear()
            try:
                if self._stop.is_set():
                    self._drain()
                    return
                self._tick()
            except Exception:
                log.exception("coordinator tick failed", action="coordinator_error")
                time.sleep(TICK)

    def _tick(self) -> None:
        now = time.monotonic()
        self._record_settled()
        if now - self._last_config >= CONFIG_EVERY:
            self._last_config = now
            self.apply_config(load_config(self.db))
        self._admit()
        self._sample(now)
        if now - self._last_save >= SAVE_EVERY:
            self._last_save = now
            self._save_all()

    def _drain(self) -> None:
        deadline = self.drain_deadline or time.monotonic()
        while self.pool.inflight() > 0 and time.monotonic() < deadline:
            self._record_settled()
            time.sleep(0.05)
        self._record_settled()
        leftovers = self.pool.runs()
        if leftovers:
            log.warning(
                "units still in flight at the drain deadline",
                action="drain_timeout",
                migrations=[run.job_id for run in leftovers],
            )
        for run in leftovers:  # units still in flight: save what finished; they redo the rest
            self._record(run, Outcome.INTERRUPTED)

    # -- admission -----------------------------------------------------------------------------

    def _admit(self) -> None:
        with self.db.session() as session:
            running = job_queries.count_in_state(session, State.RUNNING)
            room = None if self.config.max_running == 0 else max(0, self.config.max_running - running)
            if room == 0:
                return
            candidates = job_queries.scheduled_in_order(session, None if room is None else room + 16)
            admitted: list[CopyJobRow] = []
            for row in candidates:
                if room is not None and len(admitted) >= room:
                    break
                if self.busy(row.id):
                    continue  # the previous run of this job is still draining
                now = utcnow()
                values = {
                    "owner": self.instance_id,
                    "heartbeat_at": now,
                    "started_at": now,
                    "completed_at": None,
                    "error": None,
                }
                running_state = next_state(State.SCHEDULED, Action.ADMIT)
                if job_queries.move(session, row.id, State.SCHEDULED, running_state, **values):
                    session.refresh(row)
                    admitted.append(row)
        for row in admitted:
            log.info("migration running", action="admit", migration_id=row.id, priority=row.priority)
            self._add_run(row, Purpose.COPY, incremental=row.passes > 0)

    def _recover(self) -> None:
        """Take back RUNNING jobs after a restart (ours, unowned, or abandoned by a dead owner)."""
        with self.db.session() as session:
            stale = utcnow() - STALE_AFTER
            rows = job_queries.recoverable(session, self.instance_id, stale)
            for row in rows:
                row.owner, row.heartbeat_at = self.instance_id, utcnow()
            for verification in session.query(VerificationRow).filter_by(status="RUNNING"):
                verification.status, verification.completed_at = "FAILED", utcnow()
                verification.error = "interrupted by a restart of the service; verify again"
        for row in rows:
            log.info("migration resumed after restart", action="recover", migration_id=row.id)
            self._add_run(row, Purpose.COPY, incremental=row.passes > 0)

    def _add_run(self, row: CopyJobRow, purpose: Purpose, *, incremental: bool) -> None:
        engine = self.engines[row.kind]
        spec = JobSpec(row.id, row.kind, row.source, row.target, dict(row.options))
        ctx = JobContext(
            spec=spec,
            purpose=purpose,
            checkpoint=row.checkpoint if purpose is Purpose.COPY else None,
            incremental=incremental,
            db=self.db,
            bandwidth=self.bandwidth,
            allowed_roots=self.allowed_roots,
            wake=self.pool.wake,
        )
        initial = dict(row.progress or engine.empty_progress()) if purpose is Purpose.COPY else {}
        run = RunHandle(claim_of(row), row.kind, engine, ctx, initial, on_settled=self._on_settled)
        self._purposes[row.id] = (purpose, row.run_number)
        if purpose is Purpose.COPY:
            self.totals.run_started(row.id, initial)
        self.pool.add(run)
        self._log_grants(f"{purpose.value}_started", row.id)

    # -- outcomes ------------------------------------------------------------------------------

    def _on_settled(self, run: RunHandle) -> None:
        self._settled.put(run)
        self._wake.set()

    def _record_settled(self) -> None:
        while True:
            try:
                run = self._settled.get_nowait()
            except queue.Empty:
                return
            self._record(run, run.outcome())

    def _log_grants(self, cause: str, job_id: str) -> None:
        grants = {run.job_id: run.granted for run in self.pool.snapshot().runs}
        log.info("pool rebalance", action="rebalance", cause=cause, migration_id=job_id, grants=grants)

    def _record(self, run: RunHandle, outcome: Outcome) -> None:
        purpose, run_number = self._purposes.pop(run.job_id, (Purpose.COPY, 0))
        self.pool.remove(run.job_id)
        self._log_grants("run_ended", run.job_id)
        try:
            if purpose is Purpose.VERIFY:
                self._record_verification(run, outcome)
            else:
                self._record_copy(run, outcome, run_number)
        finally:
            run.close()

    def _record_copy(self, run: RunHandle, outcome: Outcome, run_number: int) -> None:
        progress = run.progress_fields()
        self.totals.run_ended(run.job_id, progress)
        moved = ledger.record_copy(self.db, run, outcome, run_number, progress)
        log.info(
            "migration run ended",
            action=f"run_{outcome.value.lower()}",
            migration_id=run.job_id,
            recorded=moved,
            error=run.error,
        )

    def _record_verification(self, run: RunHandle, outcome: Outcome) -> None:
        ledger.record_verification(self.db, run, outcome)
        log.info("verification ended", action="verify_ended", migration_id=run.job_id, outcome=outcome.value)

    # -- sampling and saving -------------------------------------------------------------------

    def _sample(self, now: float) -> None:
        live = []
        for run in self.pool.runs():
            run.sample(now)
            if self._purposes.get(run.job_id, (Purpose.COPY, 0))[0] is Purpose.COPY:
                live.append((run.job_id, run.progress_fields()))
        totals = self.totals.current(live)
        self.throughput["bytes"].add(now, totals["bytesCopied"])
        self.throughput["files"].add(now, totals["filesCopied"])

    def _save_all(self) -> None:
        entries = []
        for run in self.pool.runs():
            purpose, run_number = self._purposes.get(run.job_id, (Purpose.VERIFY, 0))
            if purpose is Purpose.COPY and not run.settled():
                entries.append((run.job_id, run_number, run.progress_fields(), run.checkpoint()))
        if entries:
            ledger.save_progress(self.db, entries)

    def _unit_observed(self, run: RunHandle, unit: Unit, seconds: float, ok: bool) -> None:
        self.totals.unit_done(ok)
        for observer in self.unit_observers:
            observer(run, unit, seconds, ok)
