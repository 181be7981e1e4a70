"""Request and response bodies, with the SPEC's camelCase names on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.policy.states import State

Kind = Literal["files", "disk"]


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class Strict(Wire):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


PropertyValue = str | float | int | None


class MigrationCreate(Strict):
    migration_id: str | None = Field(default=None, description="1-128 of A-Za-z0-9._-; generated when absent")
    kind: Kind
    source: str
    target: str
    priority: str = Field(default="NORMAL", description="LOW, NORMAL or HIGH, any case")
    properties: dict[str, PropertyValue] = Field(
        default_factory=dict, description="migration.parallel.scan.percentage: 0 < p <= 100, '%' optional"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="kind-specific options")
    auto_start: bool | None = Field(default=None, description="start at once (default true for POST)")


class MigrationPatch(Strict):
    """A JSON merge-patch: fields absent are left alone; a property set to null is removed."""

    priority: str | None = None
    properties: dict[str, PropertyValue] | None = None
    options: dict[str, Any] | None = None


class PoolShare(Wire):
    percentage: str
    percentage_source: Literal["priority", "override"]
    requested: int
    granted: int
    active: int


class Failure(Wire):
    path: str
    reason: str


class Migration(Wire):
    migration_id: str
    kind: str
    source: str
    target: str
    priority: Literal["LOW", "NORMAL", "HIGH"]
    properties: dict[str, str]
    options: dict[str, Any]
    state: State
    progress: dict[str, Any]
    error: str | None
    created_time: datetime
    start_time: datetime | None
    complete_time: datetime | None
    pool: PoolShare
    #: The node running it, verifying it or still stopping it; null when none holds it.
    node: str | None = None
    #: The status of its latest verification (``RUNNING``, ``COMPLETED``, ``FAILED``), if any.
    verification: str | None = None
    #: The latest entries that could not be copied (counted in filesFailed); retried next pass.
    failures: list[Failure] = Field(default_factory=list)


class Property(Wire):
    key: str
    value: str
    default_value: str
    description: str
    is_default: bool


class Discrepancy(Wire):
    type: str
    path: str
    detail: str | None


class Verification(Wire):
    migration_id: str
    status: Literal["RUNNING", "COMPLETED", "FAILED"]
    started_time: datetime
    completed_time: datetime | None
    counts: dict[str, Any]
    error: str | None
    offset: int
    limit: int
    discrepancies: list[Discrepancy]


class MigrationStats(Wire):
    migration_id: str
    kind: str
    priority: str
    percentage: str
    percentage_source: str
    requested: int
    granted: int
    active: int
    pending_regions: int
    units_completed: int
    bytes_copied: int
    bytes_per_second: int
    #: The node running it (SPEC section 8).
    node: str | None = None


class Node(Wire):
    """One live node of the cluster (SPEC section 8)."""

    node_id: str
    host: str
    heartbeat_age_seconds: float
    granted: int
    active: int
    running_migrations: int
    draining: bool = False


class Totals(Wire):
    units_completed: int
    units_failed: int
    retries: int
    bytes_copied: int
    files_scanned: int
    directories_scanned: int


class ScannerPoolStats(Wire):
    pool_size: int
    pool_max: int
    allocated: int
    active: int
    idle: int
    running_migrations: int
    waiting_migrations: int
    scheduled_migrations: int
    max_running_migrations: int
    max_threads_per_migration: int
    priority_allocations: dict[str, str]
    migrations: list[MigrationStats]
    totals: Totals
    nodes: list[Node] = Field(default_factory=list)
    sampled_at: datetime


class StateSummary(Wire):
    count: int
    bytes_total: int
    bytes_copied: int
    percent_complete: float | None
    eta_seconds: int | None
    migrations: list[str]


class MigrationSummary(Wire):
    states: dict[str, StateSummary]
    sampled_at: datetime


class Window(Wire):
    seconds: int
    bytes: int
    files: int
    bytes_per_second: float
    files_per_second: float


class ThroughputSummary(Wire):
    windows: list[Window]
    sampled_at: datetime


class HistorySample(Wire):
    time: datetime
    bytes_per_second: int = Field(description="bytes transferred per second by all running migrations")
    pool_size: int
    allocated: int = Field(description="threads granted to running migrations")
    active: int = Field(description="threads at work")
    running_migrations: int
    waiting_migrations: int
    migrations: dict[str, int] = Field(description="bytesPerSecond of each running migration (the fastest 32)")


class History(Wire):
    interval_seconds: float = Field(description="seconds between samples")
    horizon_seconds: int = Field(description="seconds of history kept (an hour)")
    samples: list[HistorySample] = Field(description="oldest first")
    sampled_at: datetime


class Health(Wire):
    status: str
    detail: str | None = None
