"""Dashboard numbers for the whole cluster, from the snapshot the coordinator keeps ready.

A stats read touches neither the database nor the pool's lock: it formats the newest
:class:`~app.pool.view.ClusterView` (refreshed every tick), so it never waits on a copy, and
never on another node.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.db.models import CopyJobRow
from app.db.session import Database
from app.policy.allocation import Priority, percentage_of, requested_threads
from app.policy.percent import format_percent
from app.policy.properties import RuntimeConfig
from app.policy.states import State
from app.pool.coordinator import THROUGHPUT_WINDOWS, Coordinator
from app.pool.view import ClusterView
from app.services.history import MIGRATIONS_KEPT, History, Sample

WINDOWS = THROUGHPUT_WINDOWS


class StatsService:
    def __init__(self, db: Database, coordinator: Coordinator) -> None:
        self._db = db
        self._coordinator = coordinator
        #: Started and stopped with the server (the app's lifespan).
        self.history = History(self._history_sample)
        #: The last answer and the view and configuration it was made from.
        self._pool_answer: tuple[ClusterView, object, dict[str, Any]] | None = None

    def scanner_pool(self) -> dict[str, Any]:
        """The pool's figures, made once per view the coordinator publishes (every tick) and
        configuration: between two, every request gets the same answer (do not change it)."""
        view, config = self._coordinator.view, self._coordinator.config
        cached = self._pool_answer
        if cached is not None and cached[0] is view and cached[1] is config:
            return cached[2]
        answer = self._scanner_pool(view, config)
        self._pool_answer = (view, config, answer)
        return answer

    def _scanner_pool(self, view: ClusterView, config: RuntimeConfig) -> dict[str, Any]:
        policy = config.pool
        migrations = []
        for job in view.jobs.values():
            percentage, source = percentage_of(job.claim, policy)
            migrations.append(
                {
                    "migrationId": job.job_id,
                    "kind": job.kind,
                    "priority": job.claim.priority.name,
                    "percentage": format_percent(percentage),
                    "percentageSource": source,
                    "requested": requested_threads(percentage, policy),
                    "granted": job.granted,
                    "active": job.active,
                    "pendingRegions": int(job.progress.get("pendingRegions") or 0),
                    "unitsCompleted": job.units_completed,
                    "bytesCopied": int(job.progress.get("bytesCopied") or 0),
                    "bytesPerSecond": int(job.progress.get("bytesPerSecond") or 0),
                    "node": job.node,
                }
            )
        allocated = sum(job.granted for job in view.jobs.values())
        active = sum(job.active for job in view.jobs.values())
        totals = view.totals
        return {
            "poolSize": policy.limit,
            "poolMax": config.pool_max,
            "allocated": allocated,
            "active": active,
            "idle": max(0, allocated - active),
            "runningMigrations": view.counts.get(State.RUNNING.value, 0),
            "waitingMigrations": sum(1 for job in view.jobs.values() if job.granted == 0 and job.state == "RUNNING"),
            "scheduledMigrations": view.counts.get(State.SCHEDULED.value, 0),
            "maxRunningMigrations": config.max_running,
            "maxThreadsPerMigration": policy.max_per_job,
            "priorityAllocations": {p.name: format_percent(policy.shares[p]) for p in Priority},
            "migrations": migrations,
            "totals": {
                key: int(totals.get(key) or 0)
                for key in (
                    "unitsCompleted",
                    "unitsFailed",
                    "retries",
                    "bytesCopied",
                    "filesScanned",
                    "directoriesScanned",
                )
            },
            "nodes": nodes_of(view),
            "sampledAt": view.sampled_at,
        }

    def nodes(self) -> list[dict[str, Any]]:
        return nodes_of(self._coordinator.view)

    def migration_summary(self) -> dict[str, Any]:
        with self._db.session() as session:
            rows = session.execute(select(CopyJobRow.id, CopyJobRow.state, CopyJobRow.progress)).all()
        states: dict[str, dict[str, Any]] = {
            state.value: {"count": 0, "bytesTotal": 0, "bytesCopied": 0, "bytesDone": 0, "migrations": [], "eta": []}
            for state in State
        }
        for job_id, state, stored in rows:
            held = self._coordinator.view.jobs.get(job_id)
            progress = self._coordinator.live_progress(job_id) or (held.progress if held else None) or stored or {}
            entry = states[state]
            entry["count"] += 1
            entry["bytesTotal"] += int(progress.get("bytesTotal") or 0)
            entry["bytesCopied"] += int(progress.get("bytesCopied") or 0)
            entry["bytesDone"] += _done_bytes(state, progress)
            entry["migrations"].append(job_id)
            entry["eta"].append(progress.get("etaSeconds"))
        return {
            "states": {name: _summarise(entry) for name, entry in states.items()},
            "sampledAt": datetime.now(UTC),
        }

    def history_view(self, since: datetime | None = None) -> dict[str, Any]:
        """``/stats/history``: the samples of the last hour (or those after ``since``), oldest first."""
        history = self.history
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)  # a time without a zone is UTC, as every time here
        # The wire's times are whole microseconds: half of one past ``since`` skips the sample it names.
        samples = history.samples(since.timestamp() + 5e-7 if since is not None else None)
        return {
            "intervalSeconds": history.every,
            "horizonSeconds": round(history.every * history.capacity),
            "samples": [_sample_fields(sample) for sample in samples],
            "sampledAt": datetime.now(UTC),
        }

    def _history_sample(self, at: float) -> Sample:
        """One sample of what scannerPoolStats shows: the whole cluster, as this node sees it."""
        pool = self.scanner_pool()
        speeds = sorted(((m["migrationId"], m["bytesPerSecond"]) for m in pool["migrations"]), key=lambda m: -m[1])
        return Sample(
            at=at,
            bytes_per_second=sum(speed for _, speed in speeds),
            pool_size=pool["poolSize"],
            allocated=pool["allocated"],
            active=pool["active"],
            running_migrations=pool["runningMigrations"],
            waiting_migrations=pool["waitingMigrations"],
            migrations=tuple(speeds[:MIGRATIONS_KEPT]),
        )

    def throughput(self) -> dict[str, Any]:
        windows = []
        view = self._coordinator.view
        for seconds in WINDOWS:
            moved, files = view.throughput.get(seconds, (0.0, 0.0))
            windows.append(
                {
                    "seconds": seconds,
                    "bytes": int(moved),
                    "files": int(files),
                    "bytesPerSecond": round(moved / seconds, 1),
                    "filesPerSecond": round(files / seconds, 2),
                }
            )
        return {"windows": windows, "sampledAt": datetime.now(UTC)}


def _sample_fields(sample: Sample) -> dict[str, Any]:
    return {
        "time": datetime.fromtimestamp(sample.at, UTC),
        "bytesPerSecond": sample.bytes_per_second,
        "poolSize": sample.pool_size,
        "allocated": sample.allocated,
        "active": sample.active,
        "runningMigrations": sample.running_migrations,
        "waitingMigrations": sample.waiting_migrations,
        "migrations": dict(sample.migrations),
    }


def _done_bytes(state: str, progress: dict[str, Any]) -> int:
    """Bytes of a migration's work done: copied, zeroed, skipped or found equal, not only copied.

    A COMPLETED migration has done all of it; otherwise its percentage (of done work) says.
    """
    total = int(progress.get("bytesTotal") or 0)
    if state == State.COMPLETED.value:
        return total
    percent = progress.get("percentComplete")
    if isinstance(percent, int | float):
        return round(total * min(100.0, float(percent)) / 100.0)
    return int(progress.get("bytesCopied") or 0)


def _summarise(entry: dict[str, Any]) -> dict[str, Any]:
    total, copied, done = entry["bytesTotal"], entry["bytesCopied"], entry["bytesDone"]
    etas = entry["eta"]
    known = [eta for eta in etas if isinstance(eta, int | float)]
    return {
        "count": entry["count"],
        "bytesTotal": total,
        "bytesCopied": copied,
        "percentComplete": round(100.0 * done / total, 2) if total else None,
        # The group is done when its slowest member is; unknown if any member's ETA is unknown.
        "etaSeconds": int(max(known)) if known and len(known) == len(etas) else None,
        "migrations": entry["migrations"],
    }


def nodes_of(view: ClusterView) -> list[dict[str, Any]]:
    """SPEC section 8's node entries: each live node, what it holds and how fresh it is."""
    held: dict[str, list[int]] = {}
    for job in view.jobs.values():
        entry = held.setdefault(job.node, [0, 0, 0])
        entry[0] += job.granted
        entry[1] += job.active
        entry[2] += 1 if job.purpose == "copy" and job.state == State.RUNNING.value else 0
    return [
        {
            "nodeId": node.node_id,
            "host": node.host,
            "heartbeatAgeSeconds": round(node.heartbeat_age, 3),
            "granted": held.get(node.node_id, [0, 0, 0])[0],
            "active": held.get(node.node_id, [0, 0, 0])[1],
            "runningMigrations": held.get(node.node_id, [0, 0, 0])[2],
            "draining": node.draining,
        }
        for node in view.nodes
    ]
