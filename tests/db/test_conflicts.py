"""Transactions that lock many rows in an order other writers do not share: PostgreSQL aborts one
of two deadlocked transactions, and ``Database.transaction`` runs it again instead of failing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from app.db.models import CopyJobRow
from app.db.session import Database
from tests.conftest import postgres_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(postgres_template: str) -> Iterator[Database]:
    with postgres_database(postgres_template) as url:
        database = Database(url)
        with database.session() as session:
            for job_id in ("a", "b"):
                session.add(CopyJobRow(id=job_id, kind="files", source="/s", target="/t", priority="NORMAL",
                                       options={}, state="SCHEDULED"))  # fmt: skip
        yield database
        database.dispose()


def _locker(first: str, second: str, both_hold_one: threading.Barrier, runs: list[str]) -> Callable[[Session], str]:
    def operation(session: Session) -> str:
        runs.append(first)
        session.execute(text("SET LOCAL lock_timeout = '20s'"))
        session.scalars(select(CopyJobRow).where(CopyJobRow.id == first).with_for_update()).one()
        if len(runs) <= 2:  # the first run of each: wait until both hold their first row
            both_hold_one.wait(10)
        session.scalars(select(CopyJobRow).where(CopyJobRow.id == second).with_for_update()).one()
        return first

    return operation


def test_a_deadlocked_transaction_is_run_again(db: Database) -> None:
    """Race: two transactions lock rows a, b and b, a, each holding its first when it asks for
    its second. PostgreSQL aborts one (deadlock_detected); run again it gets both rows once the
    other commits, so both operations succeed, and exactly one ran twice."""
    barrier = threading.Barrier(2)
    runs: list[str] = []
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def worker(first: str, second: str) -> None:
        try:
            results[first] = db.transaction(_locker(first, second, barrier, runs), what="test")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert results == {"a": "a", "b": "b"}
    assert len(runs) == 3


def test_other_errors_are_not_run_again(db: Database) -> None:
    """Only a conflict is retried: any other database error is raised at its first run."""
    runs: list[int] = []

    def broken(session: Session) -> None:
        runs.append(1)
        session.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(Exception, match="no_such_table") as raised:
        db.transaction(broken, what="test")
    assert not isinstance(raised.value, OperationalError) or "40P01" not in str(raised.value)
    assert runs == [1]


def test_a_paused_holder_of_row_locks_does_not_block_the_others(postgres_template: str) -> None:
    """Race: a node paused inside a transaction (SIGSTOP between two statements) holds its row
    locks. With an idle-transaction timeout PostgreSQL ends that session, so another writer gets
    the row within about the timeout instead of waiting for the paused one to wake; the paused
    one's transaction is gone (its next statement fails), its write never lands."""
    with postgres_database(postgres_template) as url:
        paused = Database(url, idle_transaction_timeout=1.0)
        other = Database(url)
        with other.session() as session:
            session.add(CopyJobRow(id="held", kind="files", source="/s", target="/t", priority="NORMAL",
                                   options={}, state="RUNNING"))  # fmt: skip
        try:
            session = Session(paused.engine)  # a transaction left open, as a paused node leaves it
            session.begin()
            session.scalars(select(CopyJobRow).where(CopyJobRow.id == "held").with_for_update()).one()
            # The pause: the other writer is blocked behind this lock until the server ends us.
            began = time.monotonic()
            with other.session() as theirs:
                theirs.execute(text("SET LOCAL lock_timeout = '10s'"))  # without the fix: fails here
                row = theirs.scalars(select(CopyJobRow).where(CopyJobRow.id == "held").with_for_update()).one()
                row.error = "written by the other node"
            waited = time.monotonic() - began
            with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
                session.execute(text("UPDATE copy_jobs SET error = 'late write' WHERE id = 'held'"))
            session.close()
            assert waited < 5
            with other.session() as session:
                assert session.get(CopyJobRow, "held").error == "written by the other node"  # type: ignore[union-attr]
        finally:
            paused.dispose()
            other.dispose()
