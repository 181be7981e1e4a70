"""Request and response bodies, with the SPEC's camelCase names on the wire.

A migration's ``progress`` and ``options`` depend on its ``kind``. On the wire they are plain
JSON objects, exactly what the engine reports; the OpenAPI document types them per kind: the
``Migration`` and ``MigrationCreate`` schemas are each a ``oneOf`` of a files and a disk variant,
told apart by ``kind`` (see :func:`_by_kind`). The variants exist for the document only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, TypeAdapter
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app.api.kinds import DiskOptions, DiskProgress, FilesOptions, FilesProgress, Wire
from app.policy.states import State

Kind = Literal["files", "disk"]
PRIORITY = "LOW, NORMAL or HIGH (any case on input); HIGH is granted threads first"


class Strict(Wire):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


PropertyValue = str | float | int | None


def _by_kind(files: type[BaseModel], disk: type[BaseModel], handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    """The JSON schema of ``files | disk`` told apart by ``kind``, with both in the components."""
    union = Annotated[files | disk, Field(discriminator="kind")]  # type: ignore[valid-type]
    return handler(TypeAdapter(union).core_schema)


# -- requests ------------------------------------------------------------------------------------------

_MIGRATION_ID = "1-128 of A-Za-z0-9._-; generated when absent"
_PROPERTIES = "per-migration overrides: migration.parallel.scan.percentage, 0 < p <= 100 ('%' optional)"


class MigrationCreate(Strict):
    """A migration to define; its schema is one of :class:`FilesMigrationCreate` or :class:`DiskMigrationCreate`."""

    migration_id: str | None = Field(default=None, description=_MIGRATION_ID)
    kind: Kind = Field(description="files: a directory tree; disk: a virtual disk over NBD")
    source: str = Field(description="absolute directory (files) or NBD URI (disk)")
    target: str = Field(description="absolute directory (files); NBD URI, image file or block device (disk)")
    priority: str = Field(default="NORMAL", description=PRIORITY)
    properties: dict[str, PropertyValue] = Field(default_factory=dict, description=_PROPERTIES)
    options: dict[str, Any] = Field(default_factory=dict, description="kind-specific options")
    auto_start: bool | None = Field(default=None, description="start at once (default true for POST, false for PUT)")

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        if cls is not MigrationCreate:
            return handler(core_schema)
        return _by_kind(FilesMigrationCreate, DiskMigrationCreate, handler)


class FilesMigrationCreate(MigrationCreate):
    """A directory tree to copy: ``source`` and ``target`` absolute, inside FERRY_ALLOWED_ROOTS."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "migrationId": "projects",
                    "kind": "files",
                    "source": "/srv/ferry/var/tour/projects",
                    "target": "/srv/ferry/var/tour/copy",
                    "priority": "HIGH",
                    "options": {"targetMatch": True},
                }
            ]
        }
    )
    kind: Literal["files"] = Field(description="a directory tree")
    options: FilesOptions = Field(default_factory=FilesOptions, description="options of a files migration")  # type: ignore[assignment]


class DiskMigrationCreate(MigrationCreate):
    """A disk to copy over NBD; a file target inside FERRY_ALLOWED_ROOTS is created sparse."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "migrationId": "vm42",
                    "kind": "disk",
                    "source": "nbd+unix:///?socket=/srv/ferry/var/tour/vm42.sock",
                    "target": "/srv/ferry/var/tour/vm42.raw",
                    "options": {"verify": True},
                }
            ]
        }
    )
    kind: Literal["disk"] = Field(description="a virtual disk over NBD")
    options: DiskOptions = Field(default_factory=DiskOptions, description="options of a disk migration")  # type: ignore[assignment]


class MigrationPatch(Strict):
    """A JSON merge-patch: fields absent are left alone; a property set to null is removed."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"properties": {"migration.parallel.scan.percentage": "13%"}}]}
    )
    priority: str | None = Field(default=None, description=PRIORITY)
    properties: dict[str, PropertyValue] | None = Field(default=None, description=_PROPERTIES + "; null removes it")
    options: dict[str, Any] | None = Field(
        default=None, description="new options (same form as at creation); only while not SCHEDULED or RUNNING"
    )


# -- responses ------------------------------------------------------------------------------------------


class PoolShare(Wire):
    """The migration's share of the global scan pool (SPEC section 4)."""

    percentage: str = Field(description="share of the pool it requests, e.g. 8%")
    percentage_source: Literal["priority", "override"] = Field(
        description="priority: its priority's share; override: its own migration.parallel.scan.percentage"
    )
    requested: int = Field(description="threads requested: ceil(global.scan.limit x percentage / 100), capped")
    granted: int = Field(description="threads granted now")
    active: int = Field(description="threads at work now")


class Failure(Wire):
    path: str = Field(description="path of the entry from the source's root, such as /sub/file")
    reason: str = Field(description="why it could not be copied")
    attempts: int = Field(default=1, description="how many times it was tried, retries included")
    time: datetime | None = Field(default=None, description="when it failed last")


class Failures(Wire):
    """One page of the entries a migration's latest pass could not copy."""

    migration_id: str
    total: int = Field(description="entries not copied in all")
    offset: int
    limit: int
    failures: list[Failure] = Field(description="in path order")


class Migration(Wire):
    """A migration as it is now; its schema is one of :class:`FilesMigration` or :class:`DiskMigration`."""

    migration_id: str = Field(description="the migration's id")
    kind: str = Field(description="files or disk")
    source: str = Field(description="where it copies from")
    target: str = Field(description="where it copies to")
    priority: Literal["LOW", "NORMAL", "HIGH"] = Field(description=PRIORITY)
    properties: dict[str, str] = Field(description="per-migration overrides, normalised (13%)")
    options: dict[str, Any] = Field(description="kind-specific options, normalised, with their defaults")
    state: State = Field(description="NONSCHEDULED, SCHEDULED, RUNNING, COMPLETED, FAILED or STOPPED")
    progress: dict[str, Any] = Field(description="kind-specific counters, with speed and ETA")
    error: str | None = Field(description="why it FAILED, or what a RUNNING one waits for; null otherwise")
    created_time: datetime = Field(description="when it was defined")
    start_time: datetime | None = Field(description="when its latest pass started")
    complete_time: datetime | None = Field(description="when its latest pass ended COMPLETED")
    pool: PoolShare = Field(description="its share of the global scan pool")
    node: str | None = Field(default=None, description="the node running it, verifying it or still stopping it")
    verification: str | None = Field(
        default=None, description="status of its latest verification: RUNNING, COMPLETED or FAILED; null if none"
    )
    #: The latest entries that could not be copied (counted in filesFailed); retried next pass.
    failures: list[Failure] = Field(
        default_factory=list, description="the latest entries not copied, as of the last checkpoint"
    )

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        if cls is not Migration:
            return handler(core_schema)
        return _by_kind(FilesMigration, DiskMigration, handler)


class FilesMigration(Migration):
    """A ``files`` migration: a directory tree."""

    kind: Literal["files"] = Field(description="a directory tree")
    options: FilesOptions = Field(description="options, normalised, with their defaults")  # type: ignore[assignment]
    progress: FilesProgress = Field(description="counters of the latest pass, with speed and ETA")  # type: ignore[assignment]


class DiskMigration(Migration):
    """A ``disk`` migration: a virtual disk over NBD."""

    kind: Literal["disk"] = Field(description="a virtual disk over NBD")
    options: DiskOptions = Field(description="options, normalised, with their defaults")  # type: ignore[assignment]
    progress: DiskProgress = Field(description="counters of the latest pass, with speed and ETA")  # type: ignore[assignment]


class Property(Wire):
    """A runtime configuration property (SPEC section 2)."""

    key: str = Field(description="e.g. global.scan.limit")
    value: str = Field(description="its value, normalised (7%,36%,49%)")
    default_value: str = Field(description="the value DELETE returns it to")
    description: str = Field(description="what it means and the form it takes")
    is_default: bool = Field(description="true when never set, or reset")


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
