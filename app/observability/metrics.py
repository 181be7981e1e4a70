"""Prometheus metrics, in base units.

Pool and migration gauges are read from the coordinator when scraped (a custom collector), so
they cost nothing between scrapes; counters and histograms are updated as units finish and
requests end.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.db import jobs as job_queries
from app.db.session import Database
from app.engines.base import Unit
from app.observability.copied import CopiedCounters
from app.policy.states import State
from app.pool.coordinator import Coordinator
from app.pool.run import RunHandle

UNIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PoolCollector(Collector):
    def __init__(self, coordinator: Coordinator, db: Database) -> None:
        self._coordinator = coordinator
        self._db = db

    def collect(self) -> Iterator[Metric]:
        snapshot = self._coordinator.pool.snapshot()
        yield GaugeMetricFamily("ferry_pool_size_threads", "global.scan.limit", value=snapshot.limit)
        yield GaugeMetricFamily("ferry_pool_threads", "pool worker threads alive", value=snapshot.threads)
        yield GaugeMetricFamily("ferry_pool_granted_threads", "threads granted in all", value=snapshot.allocated)
        yield GaugeMetricFamily("ferry_pool_active_threads", "threads at work in all", value=snapshot.active)
        granted = GaugeMetricFamily("ferry_migration_granted_threads", "threads granted", labels=["migration"])
        active = GaugeMetricFamily("ferry_migration_active_threads", "threads at work", labels=["migration"])
        for run in snapshot.runs:
            granted.add_metric([run.job_id], run.granted)
            active.add_metric([run.job_id], run.active)
        yield granted
        yield active
        with self._db.session() as session:
            counts = job_queries.counts_by_state(session)
        by_state = GaugeMetricFamily("ferry_migrations", "migrations by state", labels=["state"])
        for state in State:
            by_state.add_metric([state.value], counts.get(state.value, 0))
        yield by_state
        totals = self._coordinator.totals.current(
            (run.job_id, self._coordinator.live_progress(run.job_id) or {}) for run in snapshot.runs
        )
        yield CounterMetricFamily("ferry_retries", "retried requests and units", value=totals["retries"])
        yield CounterMetricFamily("ferry_files_scanned", "files listed by scans", value=totals["filesScanned"])


class Metrics:
    def __init__(self, coordinator: Coordinator, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(PoolCollector(coordinator, db))
        self.units = Counter(
            "ferry_units", "units of work finished", ["kind", "unit", "outcome"], registry=self.registry
        )
        self.unit_seconds = Histogram(
            "ferry_unit_duration_seconds",
            "time one unit of work took",
            ["kind", "unit"],
            buckets=UNIT_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "ferry_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "ferry_http_request_duration_seconds",
            "time to answer a request",
            ["method", "route"],
            registry=self.registry,
        )
        self.copied = CopiedCounters(self.registry, coordinator.purpose_of)
        self.copied.declare(coordinator.engines)
        coordinator.unit_observers.append(self.observe_unit)
        coordinator.unit_observers.append(self.copied.observe_unit)

    def observe_unit(self, run: RunHandle, unit: Unit, seconds: float, ok: bool) -> None:
        self.units.labels(run.kind, unit.name, "ok" if ok else "failed").inc()
        self.unit_seconds.labels(run.kind, unit.name).observe(seconds)
