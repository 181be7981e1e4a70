"""The coordinator: one thread per node that keeps the node's pool in step with the cluster.

Each tick (a quarter of a second) it

1. records the outcome of runs that settled (through the job ledger, fenced by their lease);
2. *syncs*: beats the node's heartbeat, reads the jobs this node holds and acknowledges their
   grants in one transaction, then starts runs for jobs newly placed here, stops runs whose job
   an operator stopped (on any node), and drops runs whose lease went elsewhere;
3. when something here changed (an operator's action, a run that settled, a new configuration:
   :meth:`Coordinator.wake`) or a round is due (:func:`round_every`), runs the leader's
   round if it is the leader (or becomes it): takes over dead nodes' jobs, admits and places
   SCHEDULED jobs, publishes grants for the whole cluster, and reads the cluster's rows again
   for the view;
4. samples speeds, saves progress and checkpoints every few seconds, and refreshes the
   :class:`~app.pool.view.ClusterView` that stats read (this node's runs every tick, the rest
   from the rows of the last round).

The rounds and the view's reads are most of a tick's interpreter time, which the event loop
shares: an idle tick took 6.9 ms with them, and stats polls that arrived during one waited.

A node whose sync has not succeeded for half the node lease starts no more units (its pool's
``may_start``), so it stops working well before any other node may take its jobs over. Web
threads never touch the pool's threads: services call the few methods of :class:`Runner`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from app.db import jobs as job_queries
from app.db import leading
from app.db.leases import COPY, VERIFY, Lease
from app.db.ledger import JobLedger, Owned, RunReport, Sync, claim_of
from app.db.models import CopyJobRow
from app.db.nodes import NodeInfo, NodeRegistry
from app.db.properties import load_config
from app.db.session import Database
from app.engines.bandwidth import BandwidthLimiter
from app.engines.base import Engine, Finding, JobContext, JobRun, JobSpec, Purpose, RescansRegions, Unit
from app.policy.properties import DEFAULT_CONFIG, RuntimeConfig
from app.policy.states import State
from app.pool.pool import PoolSnapshot, RunStats, ScanPool, UnitObserver
from app.pool.rates import RateWindow
from app.pool.run import Outcome, RunHandle, StopReason, UnitOutcome
from app.pool.totals import Totals
from app.pool.view import ClusterView, HeldJob

log = structlog.get_logger(__name__)

TICK = 0.25  #: seconds between coordinator ticks
SAVE_EVERY = 2.0  #: seconds between progress/checkpoint saves
CONFIG_EVERY = 1.0  #: seconds between property reloads from the database
RETRY_AFTER_ERROR = 1.0  #: seconds a failed tick waits before the next
THROUGHPUT_WINDOWS = (10, 60, 300)  #: seconds covered by /stats/throughputSummary
ROUND_EVERY = 1.0  #: seconds between the leader's rounds when nothing here asks for one


def leader_term(node_lease: float) -> timedelta:
    """How long a leader's round keeps it the leader: a third of the node lease, 1 to 5 s."""
    return timedelta(seconds=max(1.0, min(5.0, node_lease / 3)))


def round_every(node_lease: float) -> float:
    """Seconds between rounds nobody asked for: often enough that a leader renews its term
    four times within it, and reads other nodes' changes within a second."""
    return max(TICK, min(ROUND_EVERY, leader_term(node_lease).total_seconds() / 4))


class Coordinator:
    def __init__(
        self,
        db: Database,
        engines: Mapping[str, Engine],
        node_id: str,
        allowed_roots: tuple[Path, ...],
        *,
        node_lease: float = 15.0,
    ) -> None:
        self.db = db
        self.engines = engines
        self.node_id = node_id
        self.allowed_roots = allowed_roots
        self.node_lease = node_lease
        self.ledger = JobLedger(db)
        self.registry = NodeRegistry(db, node_id, node_lease)
        self.totals = Totals()
        self.pool = ScanPool(on_unit=self._unit_observed, may_start=self.holds_leases, cluster_grants=True)
        self.bandwidth = BandwidthLimiter()
        self.config: RuntimeConfig = DEFAULT_CONFIG
        self._config_lock = threading.Lock()
        self.throughput = {"bytes": RateWindow(), "files": RateWindow()}
        self.view = ClusterView(node_id)
        self.unit_observers: list[UnitObserver] = []
        self._leases: dict[str, Lease] = {}
        #: When each local run was added (monotonic): a sync that began before knows nothing of it.
        self._added: dict[str, float] = {}
        #: Verifications a web thread is opening here: their lease is ours before their run is.
        self._expected: set[str] = set()
        self._settled: queue.SimpleQueue[RunHandle] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_save = self._last_config = self._last_round = 0.0
        #: Rounds asked for (:meth:`wake`) and the count the loop last saw.
        self._round_asks = self._round_seen = 0
        #: A run started here since the view's last read of the cluster.
        self._view_stale = False
        self._round_every = round_every(node_lease)
        #: What the last round read of the cluster (held rows, counts by state, nodes), for the view.
        self._cluster: tuple[list[CopyJobRow], dict[str, int], list[NodeInfo]] | None = None
        #: Monotonic time at which the last successful sync began: the node's leases are its own
        #: until half a node lease after it.
        self._renewed = 0.0
        self._leader_epoch: int | None = None
        self._draining = False
        self.drain_deadline: float | None = None

    # -- life ----------------------------------------------------------------------------------

    def start(self, *, sole_node: bool = False) -> None:
        """Register the node and start the loop. ``sole_node``: no other node can exist (SQLite)."""
        self.registry.claim_identity()
        self.registry.register()
        if sole_node:
            self.registry.forget_others()
        self.reload_config()
        log.info("node registered", action="node_start", node=self.node_id, lease=self.node_lease)
        self._thread = threading.Thread(target=self._loop, name="ferry-coordinator", daemon=True)
        self._thread.start()

    def shutdown(self, timeout: float) -> None:
        """Take no new work, let units in flight finish (bounded), checkpoint, hand jobs over."""
        log.info("shutting down", action="shutdown", runs=len(self.pool.runs()), timeout=timeout)
        self._draining = True
        self.drain_deadline = time.monotonic() + timeout
        for run in self.pool.runs():
            self.pool.stop(run.job_id, StopReason.SHUTDOWN)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + 10)
        self.pool.close(timeout=1.0)
        try:
            self.registry.unregister()
        except Exception:
            log.exception("could not unregister the node", action="node_stop_error", node=self.node_id)
        self.registry.release_identity()
        log.info("node stopped", action="node_stop", node=self.node_id)

    def wake(self) -> None:
        """Something changed that the leader's round must see (an operator's action, a new
        configuration): the next tick runs it, now."""
        self._round_asks += 1  # a lost increment of two racing calls still differs from the seen
        self._wake.set()

    def _round_asked(self) -> bool:
        """True once per batch of :meth:`wake` calls (what the loop tells the tick)."""
        asks = self._round_asks
        asked, self._round_seen = asks != self._round_seen, asks
        return asked

    def holds_leases(self) -> bool:
        """True while the last sync is recent enough that no other node may have taken over."""
        return time.monotonic() - self._renewed < self.node_lease / 2

    def apply_config(self, config: RuntimeConfig) -> None:
        """Apply properties a web thread has just committed (or the coordinator has just read)."""
        with self._config_lock:
            self._apply_config(config)

    def reload_config(self) -> None:
        """Apply the properties as stored (another node may have changed them).

        Race: a reload that read the table just before a web thread committed a change must not
        apply what it read after that thread applied the change (a PUT's new bandwidth limit was
        seen reverted). Reading and applying under the lock the web thread's apply takes keeps
        the newer one last."""
        with self._config_lock:
            self._apply_config(load_config(self.db))

    def _apply_config(self, config: RuntimeConfig) -> None:
        if config != self.config:
            log.info(
                "pool rebalance",
                action="config_applied",
                limit=config.pool.limit,
                max_running=config.max_running,
                bandwidth=config.bandwidth_limit,
            )
            self.wake()
        self.config = config
        self.pool.set_policy(config.pool)
        self._apply_bandwidth()

    def _apply_bandwidth(self) -> None:
        """This node's part of ``global.bandwidth.limit``: its share of the cluster's threads."""
        limit = self.config.bandwidth_limit
        if limit:
            granted = {job.job_id: job.granted for job in self.view.jobs.values()}
            total = sum(granted.values())
            mine = sum(n for job_id, n in granted.items() if self.view.node_of(job_id) == self.node_id)
            nodes = max(1, len(self.view.nodes))
            limit = round(limit * mine / total) if total else limit // nodes
            limit = max(limit, 1)
        if self.bandwidth.rate != limit:
            self.bandwidth.set_rate(limit)

    # -- what services may ask (the narrow interface) ------------------------------------------

    def live_run(self, job_id: str) -> RunHandle | None:
        """This node's run of a job, if it runs here."""
        return self.pool.get(job_id)

    def live_engine_run(self, job_id: str) -> JobRun | None:
        """The engine's run of a job copying on this node (to queue a rescan in it)."""
        run = self.pool.get(job_id)
        return run.engine_run if run is not None and self.purpose_of(job_id) is Purpose.COPY else None

    def run_stats(self) -> dict[str, RunStats]:
        return {run.job_id: run for run in self.pool.snapshot().runs}

    def live_progress(self, job_id: str) -> dict[str, Any] | None:
        run = self.pool.get(job_id)
        lease = self._leases.get(job_id)
        if run is None or lease is None or lease.purpose != COPY:
            return None
        return run.progress_fields()

    def notice(self, job_id: str) -> str | None:
        """What a running job waits for (an unreachable server), shown in its ``error``."""
        run = self.pool.get(job_id)
        return run.notice if run is not None else None

    def purpose_of(self, job_id: str) -> Purpose | None:
        lease = self._leases.get(job_id)
        if lease is None:
            return None
        return Purpose.COPY if lease.purpose == COPY else Purpose.VERIFY

    def expect(self, job_id: str) -> None:
        """A web thread is about to take a job's lease for this node (a verification): until
        :meth:`verify_here` or :meth:`forget` the coordinator must not treat it as stray."""
        self._expected.add(job_id)

    def forget(self, job_id: str) -> None:
        self._expected.discard(job_id)

    def verify_here(self, row: CopyJobRow, lease: Lease) -> None:
        """Run a verification this node took the lease of (:meth:`JobLedger.open_verification`)."""
        self._add_run(row, lease)

    def local_snapshot(self) -> PoolSnapshot:
        return self.pool.snapshot()

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._wake.wait(TICK)
            self._wake.clear()
            try:
                if self._stop.is_set():
                    self._drain()
                    return
                self._tick(self._round_asked())
            except Exception:
                log.exception("coordinator tick failed", action="coordinator_error", node=self.node_id)
                time.sleep(RETRY_AFTER_ERROR)

    def _tick(self, asked: bool = True) -> None:
        """One tick; ``asked``: something here changed, so the leader's round runs now."""
        now = time.monotonic()
        asked = self._record_settled() or asked
        if now - self._last_config >= CONFIG_EVERY:
            self._last_config = now
            self.reload_config()
        self._sync(now)
        round_due = asked or now - self._last_round >= self._round_every
        if round_due:
            self._last_round = now
            self._lead()
        self._take_regions()
        self._sample(now)
        if now - self._last_save >= SAVE_EVERY:
            self._last_save = now
            self._save_all()
        self._refresh_view(reread=round_due or self._view_stale)

    def _drain(self) -> None:
        deadline = self.drain_deadline or time.monotonic()
        synced = 0.0
        while self.pool.inflight() > 0 and time.monotonic() < deadline:
            self._record_settled()
            now = time.monotonic()
            if now - synced >= TICK:  # keep the heartbeat (and so the leases) while units finish
                synced = now
                try:
                    self._sync(now)
                except Exception:
                    log.exception("sync failed while draining", action="coordinator_error", node=self.node_id)
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

    # -- sync: this node's jobs ----------------------------------------------------------------

    def _reports(self) -> dict[str, RunReport]:
        return {
            stats.job_id: RunReport(stats.active, stats.units_completed, stats.units_failed, self.notice(stats.job_id))
            for stats in self.pool.snapshot().runs
        }

    def _node_stats(self) -> dict[str, Any]:
        snapshot = self.pool.snapshot()
        live = [(run.job_id, self.live_progress(run.job_id) or {}) for run in snapshot.runs]
        return {
            "granted": snapshot.allocated,
            "active": snapshot.active,
            "runningMigrations": len(snapshot.runs),
            "draining": self._draining,
            "totals": self.totals.current(live),
            "throughput": {
                str(seconds): [self.throughput["bytes"].increase(seconds), self.throughput["files"].increase(seconds)]
                for seconds in THROUGHPUT_WINDOWS
            },
        }

    def _sync(self, started: float) -> None:
        result = self.ledger.sync(self.registry, self._node_stats(), self._reports())
        self._reconcile(result, started)
        self._renewed = started

    def _reconcile(self, result: Sync, started: float) -> None:
        if not result.alive:
            log.warning("node was declared dead; its jobs run elsewhere", action="node_fenced", node=self.node_id)
            for run in self.pool.runs():
                self.pool.stop(run.job_id, StopReason.LOST)
            self.registry.register()
            return
        owned = {entry.lease.job_id: entry for entry in result.owned}
        for run in self.pool.runs():
            # Race: a verification a web thread started here after this sync read the rows is
            # not among them yet; it is not lost.
            if self._added.get(run.job_id, 0.0) < started:
                self._follow(run, owned.get(run.job_id))
        for job_id, entry in owned.items():
            if job_id not in self._leases and job_id not in self._expected:
                self._adopt(entry)
        self.pool.set_grants(
            {job_id: entry.granted for job_id, entry in owned.items() if self._leases.get(job_id) == entry.lease}
        )
        for job_id, entry in owned.items():
            if self._leases.get(job_id) == entry.lease:
                self.pool.update_claim(job_id, entry.claim)

    def _follow(self, run: RunHandle, entry: Owned | None) -> None:
        """Keep one local run in step with its row: lost lease, or an operator's stop anywhere."""
        lease = self._leases.get(run.job_id)
        if entry is None or lease is None or entry.lease.epoch != lease.epoch:
            if run.stop_reason is not StopReason.LOST:
                log.warning("lease lost; stopping the run", action="lease_lost", migration_id=run.job_id)
                self.pool.stop(run.job_id, StopReason.LOST)
            return
        if lease.purpose == COPY and entry.state is not State.RUNNING and run.stop_reason is None:
            self.pool.stop(run.job_id, StopReason.USER)

    def _adopt(self, entry: Owned) -> None:
        """A job placed on this node: run it (or let go of one that should not run)."""
        lease = entry.lease
        row = self.ledger.get(lease.job_id)
        if self._draining:
            return
        if lease.purpose == VERIFY:
            # Placed here by a previous process with this node id: that verification is gone.
            self.ledger.close_verification(lease, False, {}, "interrupted by a restart of its node; verify again")
            return
        if entry.state is not State.RUNNING:
            self.ledger.record_outcome(lease, Outcome.STOPPED.value, dict(row.progress), None, None)
            return
        self._add_run(row, lease)

    def _add_run(self, row: CopyJobRow, lease: Lease) -> None:
        engine = self.engines[row.kind]
        purpose = Purpose.COPY if lease.purpose == COPY else Purpose.VERIFY
        spec = JobSpec(row.id, row.kind, row.source, row.target, dict(row.options))
        ctx = JobContext(
            spec=spec,
            purpose=purpose,
            checkpoint=row.checkpoint if purpose is Purpose.COPY else None,
            incremental=row.passes > 0,
            db=self.ledger.fenced(lease),
            bandwidth=self.bandwidth,
            allowed_roots=self.allowed_roots,
            wake=self.pool.wake,
            findings=lambda found: self._findings(lease, found),
        )
        initial = dict(row.progress or engine.empty_progress()) if purpose is Purpose.COPY else {}
        run = RunHandle(claim_of(row), row.kind, engine, ctx, initial, on_settled=self._on_settled)
        self._leases[row.id] = lease
        self._added[row.id] = time.monotonic()
        self._expected.discard(row.id)
        if purpose is Purpose.COPY:
            self.totals.run_started(row.id, initial)
        self.pool.add(run)
        self._view_stale = True  # the next tick reads the cluster again: the view shows the run
        self._wake.set()
        log.info("run started", action="run_started", purpose=purpose.value, migration_id=row.id, epoch=lease.epoch)

    def _findings(self, lease: Lease, found: Sequence[Finding]) -> None:
        self.ledger.findings(lease, found)

    def _take_regions(self) -> None:
        """Rescans an operator asked for on another node, for this node's running copies."""
        copying = [job_id for job_id, lease in self._leases.items() if lease.purpose == COPY]
        if not copying:
            return
        for job_id, region in self.ledger.take_regions(copying):
            run = self.pool.get(job_id)
            if run is None:  # leased here but its run is not in the pool yet: the next tick's
                self.ledger.post_region(job_id, region)
                continue
            engine = self.engines.get(run.kind)
            if isinstance(engine, RescansRegions):
                engine.add_pending_region(run.ctx.db, job_id, region, run.engine_run)

    # -- leading -------------------------------------------------------------------------------

    def _lead(self) -> None:
        if self._draining:
            return
        term = leader_term(self.node_lease)
        was = self._leader_epoch
        epoch, report = leading.lead(self.db, self.registry, was, term, self.config.pool, self.config.max_running)
        self._leader_epoch = epoch
        if epoch is not None and epoch != was:
            log.info("leading the cluster", action="leader_elected", node=self.node_id, epoch=epoch)
        for dead, jobs in report.taken_over.items():
            log.warning("node dead; its jobs go to live nodes", action="takeover", dead_node=dead, migrations=jobs)
        for job_id, node in report.admitted.items():
            log.info("migration admitted", action="admit", migration_id=job_id, node=node)
        for job_id, node in report.placed.items():
            log.info("migration placed", action="place", migration_id=job_id, node=node)
        if report.grants:
            log.info("pool rebalance", action="rebalance", grants=report.grants, node=self.node_id)
        if report.admitted or report.placed or report.grants:
            self._wake.set()  # a prompt sync starts what was placed here (no round: this was it)

    @property
    def leads(self) -> bool:
        return self._leader_epoch is not None

    # -- outcomes ------------------------------------------------------------------------------

    def _on_settled(self, run: RunHandle) -> None:
        self._settled.put(run)
        self._wake.set()  # the tick that records it runs a round (its threads go to others)

    def _record_settled(self) -> bool:
        """Record the runs that settled since the last call; True if there were any."""
        recorded = False
        while True:
            try:
                run = self._settled.get_nowait()
            except queue.Empty:
                return recorded
            self._record(run, run.outcome())
            recorded = True

    def _record(self, run: RunHandle, outcome: Outcome) -> None:
        """Record a settled run. What it reports is read first, then the engine closes (its last
        writes still hold the lease), and only then does the ledger let the job go."""
        lease = self._leases.pop(run.job_id, None)
        self._added.pop(run.job_id, None)
        self.pool.remove(run.job_id)
        progress = run.progress_fields()
        engine_progress = run.progress()
        checkpoint = run.checkpoint() if lease is not None and lease.purpose == COPY else None
        run.close()
        if lease is None or outcome is Outcome.LOST:
            recorded = False
        elif lease.purpose == VERIFY:
            counts = dict(engine_progress.fields) if engine_progress is not None else {}
            error = run.error or f"verification {outcome.value.lower()}; verify again"
            recorded = self.ledger.close_verification(lease, outcome is Outcome.COMPLETED, counts, error)
        else:
            self.totals.run_ended(run.job_id, progress)
            recorded = self.ledger.record_outcome(lease, outcome.value, progress, checkpoint, run.error)
        log.info(
            "run ended",
            action=f"run_{outcome.value.lower()}",
            migration_id=run.job_id,
            purpose=lease.purpose if lease else None,
            recorded=recorded,
            error=run.error,
        )

    # -- sampling, saving, the view ------------------------------------------------------------

    def _sample(self, now: float) -> None:
        live = []
        for run in self.pool.runs():
            run.sample(now)
            if self.purpose_of(run.job_id) is Purpose.COPY:
                live.append((run.job_id, run.progress_fields()))
        totals = self.totals.current(live)
        self.throughput["bytes"].add(now, totals["bytesCopied"])
        self.throughput["files"].add(now, totals["filesCopied"])

    def _save_all(self) -> None:
        entries = []
        for run in self.pool.runs():
            lease = self._leases.get(run.job_id)
            if lease is not None and lease.purpose == COPY and not run.settled():
                entries.append((lease, run.progress_fields(), run.checkpoint()))
        if entries:
            for job_id in self.ledger.save_progress(entries):
                log.warning("lease lost at a save; stopping the run", action="lease_lost", migration_id=job_id)
                self.pool.stop(job_id, StopReason.LOST)

    def _refresh_view(self, *, reread: bool = True) -> None:
        """A new view: this node's runs as they are now, the rest as the last read found them
        (``reread``: read the cluster's rows again first)."""
        if reread or self._cluster is None:
            self._view_stale = False
            with self.db.session() as session:
                held = job_queries.held(session)
                counts = job_queries.counts_by_state(session)
            self._cluster = (held, counts, self.registry.nodes())
        rows, counts, nodes = self._cluster
        local = {run.job_id: run for run in self.pool.snapshot().runs}
        jobs = {}
        for row in rows:
            stats = local.get(row.id) if row.owner == self.node_id else None
            progress = (self.live_progress(row.id) if stats else None) or dict(row.progress or {})
            jobs[row.id] = HeldJob(
                job_id=row.id,
                kind=row.kind,
                node=row.owner or "",
                purpose=row.run_purpose or COPY,
                state=row.state,
                claim=claim_of(row),
                granted=stats.granted if stats else row.granted,
                active=stats.active if stats else row.active,
                units_completed=stats.units_completed if stats else row.units_completed,
                units_failed=stats.units_failed if stats else row.units_failed,
                progress=progress,
            )
        mine = self._node_stats()
        totals = dict(mine["totals"])
        throughput = {int(window): list(pair) for window, pair in mine["throughput"].items()}
        for node in nodes:
            if node.node_id == self.node_id:
                continue
            for key, value in (node.stats.get("totals") or {}).items():
                totals[key] = totals.get(key, 0) + int(value)
            for window, (moved, files) in (node.stats.get("throughput") or {}).items():
                pair = throughput.setdefault(int(window), [0.0, 0.0])
                pair[0], pair[1] = pair[0] + moved, pair[1] + files
        self.view = ClusterView(
            self.node_id, jobs, counts, nodes, totals, {window: (p[0], p[1]) for window, p in throughput.items()}
        )
        if self.config.bandwidth_limit:
            self._apply_bandwidth()

    def _unit_observed(self, run: RunHandle, unit: Unit, seconds: float, outcome: UnitOutcome) -> None:
        self.totals.unit_done(outcome)
        for observer in self.unit_observers:
            observer(run, unit, seconds, outcome)


__all__ = ["Coordinator", "JobRun"]
