"""The cluster's nodes and its grant leader, in the database (SPEC section 8).

Every ``ferry serve`` is a node: it registers a row, beats its heartbeat every tick, and is dead
once the heartbeat is older than the node lease. One node at a time is the *leader*: it holds the
single ``cluster_leader`` row under a short lease of its own and computes grants, admits and
places work (:func:`app.db.ledger.lead`). Times come from the database server on PostgreSQL, so
nodes on machines whose clocks disagree still agree on who is alive.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.orm import Session

from app.db.models import LeaderRow, NodeRow, utcnow
from app.db.session import Database


def db_now(session: Session) -> datetime:
    """The database server's clock on PostgreSQL (one clock for all nodes); ours on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(select(func.now()))
        assert isinstance(value, datetime)
        return value
    return utcnow()


class NodeIdInUse(Exception):
    """Another live process runs with this node id."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    host: str
    pid: int
    heartbeat_age: float
    draining: bool
    stats: dict[str, Any]


class NodeRegistry:
    """One node's view of the ``nodes`` and ``cluster_leader`` rows; each method one transaction."""

    def __init__(self, db: Database, node_id: str, lease: float) -> None:
        self.db = db
        self.node_id = node_id
        self.lease = timedelta(seconds=lease)
        self._identity: Connection | None = None

    # -- this node ------------------------------------------------------------------------------

    def claim_identity(self) -> None:
        """On PostgreSQL, hold a session lock on the node id for the life of the process.

        Two live processes with one ``FERRY_NODE_ID`` would both think they hold the same jobs;
        the second one refuses to start instead. The lock goes with the first one's connection,
        however that process ends. (SQLite has one node anyway: :mod:`app.db.sole`.)
        """
        if self.db.engine.dialect.name != "postgresql":
            return
        connection = self.db.engine.connect()
        key = connection.scalar(select(func.hashtextextended(f"ferry-node:{self.node_id}", 0)))
        if not connection.scalar(select(func.pg_try_advisory_lock(key))):
            connection.close()
            raise NodeIdInUse(f"node id {self.node_id!r} is in use by another live ferry serve; give each its own")
        self._identity = connection

    def release_identity(self) -> None:
        if self._identity is not None:
            self._identity.close()
            self._identity = None

    def register(self) -> None:
        with self.db.session() as session:
            now = db_now(session)
            session.execute(delete(NodeRow).where(NodeRow.node_id == self.node_id))
            session.add(
                NodeRow(
                    node_id=self.node_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started_at=now,
                    heartbeat_at=now,
                    draining=False,
                    stats={},
                )
            )

    def forget_others(self) -> int:
        """On SQLite only one node can exist (the file lock proves the rest dead): drop them."""
        with self.db.session() as session:
            result = session.execute(delete(NodeRow).where(NodeRow.node_id != self.node_id))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def beat(self, session: Session, stats: dict[str, Any], draining: bool) -> bool:
        """Renew the heartbeat in ``session``; False when the node was declared dead meanwhile."""
        result = session.execute(
            update(NodeRow)
            .where(NodeRow.node_id == self.node_id)
            .values(heartbeat_at=db_now(session), stats=stats, draining=draining)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def unregister(self) -> None:
        with self.db.session() as session:
            session.execute(delete(NodeRow).where(NodeRow.node_id == self.node_id))
            session.execute(
                update(LeaderRow)
                .where(LeaderRow.id == 1, LeaderRow.node_id == self.node_id)
                .values(node_id=None, expires_at=None)
            )

    # -- the cluster ---------------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        with self.db.session() as session:
            now = db_now(session)
            rows = session.scalars(select(NodeRow).order_by(NodeRow.node_id)).all()
            return [
                NodeInfo(
                    row.node_id,
                    row.host,
                    row.pid,
                    max(0.0, (now - row.heartbeat_at).total_seconds()),
                    row.draining,
                    dict(row.stats or {}),
                )
                for row in rows
                if now - row.heartbeat_at <= self.lease
            ]

    def holder_of(self) -> NodeRow | None:
        """The live node registered in this database, if any (for SQLite's refusal message)."""
        with self.db.session() as session:
            return session.scalars(select(NodeRow).order_by(NodeRow.heartbeat_at.desc()).limit(1)).first()

    # -- leadership ----------------------------------------------------------------------------

    def lead(self, session: Session, epoch: int | None, term: timedelta) -> int | None:
        """Take or keep the leadership in ``session`` (row-locked until it commits).

        Returns the leadership epoch this node now holds, or None when another node leads. A
        leader keeps its epoch while it renews in time; a node that was paused past its term
        finds a new epoch (or another leader) and must not act on what it computed before.
        """
        row = session.scalars(select(LeaderRow).where(LeaderRow.id == 1).with_for_update()).one()
        now = db_now(session)
        mine = row.node_id == self.node_id and row.epoch == epoch
        expired = row.node_id is None or row.expires_at is None or row.expires_at < now
        if mine and not expired:
            row.expires_at = now + term
            return row.epoch
        if not expired:
            return None
        row.node_id, row.epoch, row.expires_at = self.node_id, row.epoch + 1, now + term
        return row.epoch

    def dead_nodes(self, session: Session) -> list[str]:
        """Nodes whose heartbeat ran out, locked so a late heartbeat waits for the takeover."""
        cutoff = db_now(session) - self.lease
        return list(
            session.scalars(select(NodeRow.node_id).where(NodeRow.heartbeat_at < cutoff).with_for_update()).all()
        )

    def live_nodes(self, session: Session) -> list[NodeRow]:
        cutoff = db_now(session) - self.lease
        return list(session.scalars(select(NodeRow).where(NodeRow.heartbeat_at >= cutoff)).all())

    def bury(self, session: Session, node_ids: list[str]) -> None:
        session.execute(delete(NodeRow).where(NodeRow.node_id.in_(node_ids)))


def holder_text(db: Database) -> str:
    """The node registered in a database, for the message that refuses a second one."""
    try:
        row = NodeRegistry(db, "", 15.0).holder_of()
    except Exception:  # a database without the table yet: say what we know
        row = None
    return f"node {row.node_id} (pid {row.pid} on {row.host})" if row is not None else "another process"
