"""The tables, as SQLAlchemy 2 typed models. Alembic (``migrations/``) owns the schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class CopyJobRow(Base):
    """One migration (a "copy job" in code: Alembic owns the word "migrations")."""

    __tablename__ = "copy_jobs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(8))
    #: ``migration.parallel.scan.percentage``, when overridden.
    scan_percentage: Mapped[float | None] = mapped_column(Float)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    #: The engine's own resumable state (small; large frontiers go to ``work_items``).
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Incremented by start and reset (not resume): a draining run of an older number may not
    #: write its checkpoint over a reset or a fresh pass.
    run_number: Mapped[int] = mapped_column(Integer, default=0)
    #: Passes run to COMPLETED since creation or reset: a start after one is incremental.
    passes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    #: The node that holds the job's lease (runs its copy or its verification), or None.
    owner: Mapped[str | None] = mapped_column(String(255), index=True)
    #: When the owner last saved the job's progress.
    heartbeat_at: Mapped[datetime | None]
    #: Incremented whenever the lease changes hands: every write of a run is conditional on it,
    #: so a node that lost the lease (paused, partitioned) cannot write over its successor.
    lease_epoch: Mapped[int] = mapped_column(Integer, default=0)
    #: ``copy`` or ``verify`` while owned: what the owner runs.
    run_purpose: Mapped[str | None] = mapped_column(String(8))
    #: Threads granted by the cluster's grant leader (see :mod:`app.policy.cluster`).
    granted: Mapped[int] = mapped_column(Integer, default=0)
    #: The grant the owner acknowledged (it reads and acknowledges in one statement).
    grant_applied: Mapped[int] = mapped_column(Integer, default=0)
    #: Units the owner had in flight when it last acknowledged.
    active: Mapped[int] = mapped_column(Integer, default=0)
    #: Units the owner finished and failed in this run, for the cluster's stats.
    units_completed: Mapped[int] = mapped_column(Integer, default=0)
    units_failed: Mapped[int] = mapped_column(Integer, default=0)


class NodeRow(Base):
    """One ``ferry serve`` process of the cluster, alive while its heartbeat is fresh."""

    __tablename__ = "nodes"

    node_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set by SIGTERM: the node takes no new work and hands its migrations over.
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    #: What the node reports of itself each heartbeat: threads, runs, counters since start.
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LeaderRow(Base):
    """The one row naming the node that computes grants, admits and places work."""

    __tablename__ = "cluster_leader"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[str | None] = mapped_column(String(255))
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None]


class PropertyRow(Base):
    """A configuration property an operator set; absent keys take their default."""

    __tablename__ = "config_properties"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WorkItemRow(Base):
    """Per-job work an engine keeps out of memory: a spilled frontier, finished ranges, ..."""

    __tablename__ = "work_items"

    job_id: Mapped[str] = mapped_column(ForeignKey("copy_jobs.id", ondelete="CASCADE"), primary_key=True)
    #: The engine's name for the list (``pending``, ``done``, ...).
    bucket: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class VerificationRow(Base):
    """The latest verification of a job: a summary, with discrepancies in their own table."""

    __tablename__ = "verifications"

    job_id: Mapped[str] = mapped_column(ForeignKey("copy_jobs.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # RUNNING | COMPLETED | FAILED
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class DiscrepancyRow(Base):
    __tablename__ = "discrepancies"
    __table_args__ = (Index("ix_discrepancies_job_seq", "job_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("verifications.job_id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
