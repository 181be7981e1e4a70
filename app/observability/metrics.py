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

from app.db.session import Database
from app.engines.base import Unit
from app.observability.copied import CopiedCounters
from app.policy.states import State
from app.pool.coordinator import Coordinator
from app.pool.run import RunHandle, UnitOutcome

UNIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PoolCollector(Collector):
    def __init__(self, coordinator: Coordinator, db: Database) -> None:
        self._coordinator = coordinator
        self._db = db

    def collect(self) -> Iterator[Metric]:
        """Cluster-wide gauges from the coordinator's view; per-node series carry ``node``."""
        coordinator = self._coordinator
        view = coordinator.view
        local = coordinator.local_snapshot()
        jobs = list(view.jobs.values())
        yield GaugeMetricFamily("ferry_pool_size_threads", "global.scan.limit", value=local.limit)
        threads = GaugeMetricFamily("ferry_pool_threads", "pool worker threads alive", labels=["node"])
        threads.add_metric([coordinator.node_id], local.threads)
        yield threads
        yield GaugeMetricFamily(
            "ferry_pool_granted_threads", "threads granted in the cluster", value=sum(job.granted for job in jobs)
        )
        yield GaugeMetricFamily(
            "ferry_pool_active_threads", "threads at work in the cluster", value=sum(job.active for job in jobs)
        )
        labels = ["migration", "node"]
        granted = GaugeMetricFamily("ferry_migration_granted_threads", "threads granted", labels=labels)
        active = GaugeMetricFamily("ferry_migration_active_threads", "threads at work", labels=labels)
        for job in jobs:
            granted.add_metric([job.job_id, job.node], job.granted)
            active.add_metric([job.job_id, job.node], job.active)
        yield granted
        yield active
        node_active = GaugeMetricFamily("ferry_node_active_threads", "threads at work per node", labels=["node"])
        node_age = GaugeMetricFamily("ferry_node_heartbeat_age_seconds", "age of a node's heartbeat", labels=["node"])
        for node in view.nodes:
            node_active.add_metric([node.node_id], sum(job.active for job in jobs if job.node == node.node_id))
            node_age.add_metric([node.node_id], node.heartbeat_age)
        yield node_active
        yield node_age
        by_state = GaugeMetricFamily("ferry_migrations", "migrations by state", labels=["state"])
        for state in State:
            by_state.add_metric([state.value], view.counts.get(state.value, 0))
        yield by_state
        totals = view.totals
        yield CounterMetricFamily("ferry_retries", "retried requests and units", value=totals.get("retries", 0))
        yield CounterMetricFamily("ferry_files_scanned", "files listed by scans", value=totals.get("filesScanned", 0))


class Metrics:
    def __init__(self, coordinator: Coordinator, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(PoolCollector(coordinator, db))
        self.units = Counter(
            "ferry_units",
            "units of work finished, by outcome: ok, failed, or interrupted by a stop",
            ["kind", "unit", "outcome"],
            registry=self.registry,
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

    def observe_unit(self, run: RunHandle, unit: Unit, seconds: float, outcome: UnitOutcome) -> None:
        self.units.labels(run.kind, unit.name, outcome.value).inc()
        self.unit_seconds.labels(run.kind, unit.name).observe(seconds)
