"""The database engine and short-lived sessions.

Workers never hold a transaction across I/O: they open a session per state change or
checkpoint through :func:`Database.session`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import structlog
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = structlog.get_logger(__name__)
T = TypeVar("T")
#: SQLSTATEs of a transaction PostgreSQL aborted so that another could go on: deadlock_detected,
#: serialization_failure. Run again, it meets the state the winner left.
_CONFLICTS = frozenset({"40P01", "40001"})
#: Runs of one transaction at most before its conflict is raised.
CONFLICT_ATTEMPTS = 4


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets stats reads proceed while a worker checkpoints; busy_timeout waits out writers.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, idle_transaction_timeout: float | None = None) -> Engine:
    """SQLite with WAL, or PostgreSQL; ``idle_transaction_timeout`` (seconds, PostgreSQL) ends a
    session that sits in an open transaction that long without sending anything."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {}
    if idle_transaction_timeout is not None:
        milliseconds = max(1, int(idle_transaction_timeout * 1000))
        connect_args["options"] = f"-c idle_in_transaction_session_timeout={milliseconds}"
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args)


class Database:
    """``idle_transaction_timeout``: a node paused (SIGSTOP, a frozen VM) inside a transaction
    would hold its row locks, a takeover of its jobs or the leadership waiting behind them, until
    it woke; PostgreSQL ends such a session after that many seconds (ferry serve: half the node
    lease) instead, its locks with it. Transactions here never wait on I/O, so a live node's never
    come near it."""

    def __init__(self, url: str, *, idle_transaction_timeout: float | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, idle_transaction_timeout)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def transaction(self, operation: Callable[[Session], T], *, what: str) -> T:
        """``operation`` in one transaction, run again (up to CONFLICT_ATTEMPTS times) when
        PostgreSQL aborts it as deadlocked with another: for operations that lock many rows,
        whose order other writers cannot always share. ``operation`` must read what it decides
        on inside the transaction (a run again then decides afresh)."""
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                with self.session() as session:
                    return operation(session)
            except OperationalError as exc:
                if attempt == CONFLICT_ATTEMPTS or getattr(exc.orig, "sqlstate", None) not in _CONFLICTS:
                    raise
                log.info("transaction run again", action="db_conflict_retry", operation=what, attempt=attempt)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
