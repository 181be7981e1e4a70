"""The pool's threads against a fake engine: limits, live shrink, priority, stop, failure."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.db.session import Database
from app.engines.bandwidth import BandwidthLimiter
from app.engines.base import JobContext, JobSpec, Purpose
from app.policy.allocation import Claim, PoolPolicy, Priority
from app.pool.pool import ScanPool
from app.pool.run import Outcome, RunHandle, StopReason
from tests.fakes.engine import FakeEngine
from tests.waiting import wait_until

SHARES = {Priority.LOW: 100.0, Priority.NORMAL: 100.0, Priority.HIGH: 100.0}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'unused.db'}")
    yield database
    database.dispose()


@pytest.fixture
def pool() -> Iterator[ScanPool]:
    scan_pool = ScanPool(PoolPolicy(limit=4, max_per_job=50, shares=SHARES))
    yield scan_pool
    scan_pool.close(5)


def make_run(
    engine: FakeEngine,
    db: Database,
    job_id: str,
    priority: Priority = Priority.NORMAL,
    started: float = 0.0,
    pool: ScanPool | None = None,
    **options: Any,
) -> RunHandle:
    """A run of the fake engine; given ``pool``, it leaves the pool when settled, as the coordinator does."""
    spec = JobSpec(job_id, engine.kind, "/src", "/dst", engine.validate("/src", "/dst", options, ()))
    ctx = JobContext(spec, Purpose.COPY, None, False, db, BandwidthLimiter(), ())
    leave = (lambda run: pool.remove(run.job_id)) if pool is not None else (lambda run: None)
    return RunHandle(Claim(job_id, priority, started), engine.kind, engine, ctx, {}, on_settled=leave)


def test_never_more_units_at_work_than_the_limit(pool: ScanPool, db: Database) -> None:
    """Three jobs each wanting the whole pool of 4: at most 4 units ever run at once, and 4 do."""
    engine = FakeEngine()
    runs = [make_run(engine, db, f"job-{n}", started=n, pool=pool, units=30, unitSeconds=0.01) for n in range(3)]
    for run in runs:
        pool.add(run)
    wait_until(lambda: all(run.settled() for run in runs), timeout=20)
    assert engine.concurrency.peak == 4
    assert pool.peak_active <= 4
    assert all(run.outcome() is Outcome.COMPLETED for run in runs)
    assert sorted(engine.finished) == ["job-0", "job-1", "job-2"]


def test_live_shrink_takes_effect_as_units_finish(db: Database) -> None:
    """6 -> 3 threads while running: in-flight units finish, no new unit starts beyond 3."""
    scan_pool = ScanPool(PoolPolicy(limit=6, max_per_job=50, shares=SHARES))
    engine = FakeEngine()
    run = make_run(engine, db, "big", units=400, unitSeconds=0.05)
    scan_pool.add(run)
    wait_until(lambda: engine.concurrency.now == 6)
    scan_pool.set_policy(PoolPolicy(limit=3, max_per_job=50, shares=SHARES))
    assert run.grant.granted == 3
    time.sleep(0.1)  # two unit lengths: every unit started before the shrink has ended
    engine.concurrency.peak = 0
    time.sleep(0.5)
    assert engine.concurrency.peak == 3
    run.request_stop(StopReason.USER)
    wait_until(run.settled)
    assert scan_pool.close(5)


def test_larger_grant_takes_effect_at_once(db: Database) -> None:
    """Growing the pool puts new threads to work without waiting for units to end."""
    scan_pool = ScanPool(PoolPolicy(limit=2, max_per_job=50, shares=SHARES))
    engine = FakeEngine()
    run = make_run(engine, db, "grow", units=400, unitSeconds=0.05)
    scan_pool.add(run)
    wait_until(lambda: engine.concurrency.now == 2)
    scan_pool.set_policy(PoolPolicy(limit=5, max_per_job=50, shares=SHARES))
    wait_until(lambda: engine.concurrency.now == 5, timeout=1.0)
    run.request_stop(StopReason.USER)
    wait_until(run.settled)
    assert scan_pool.close(5)


def test_high_priority_is_served_first(pool: ScanPool, db: Database) -> None:
    """With the pool too small for both, the HIGH job holds the threads, the LOW one waits."""
    engine = FakeEngine()
    low = make_run(engine, db, "low", Priority.LOW, started=0, pool=pool, units=40, unitSeconds=0.02)
    high = make_run(engine, db, "high", Priority.HIGH, started=1, pool=pool, units=40, unitSeconds=0.02)
    pool.add(low)
    pool.add(high)
    # One thread each until open (the open is the one unit), then HIGH holds them all.
    wait_until(lambda: (high.grant.granted, low.grant.granted) == (4, 0), what="HIGH open, granted the pool")
    wait_until(high.settled)
    low_run = engine.runs.get("low")  # None: not even opened while HIGH held the pool
    assert low_run is None or low_run.progress().fields["unitsDone"] < 40
    wait_until(low.settled)  # freed threads go to the waiting job
    assert low.outcome() is Outcome.COMPLETED


def test_stop_lets_units_in_flight_finish_and_starts_none(pool: ScanPool, db: Database) -> None:
    """A stop is honoured between units: nothing is abandoned half done, nothing new starts."""
    engine = FakeEngine()
    run = make_run(engine, db, "stopme", units=1000, unitSeconds=0.05)
    pool.add(run)
    wait_until(lambda: engine.concurrency.now == 4)
    run.request_stop(StopReason.SHUTDOWN)
    started_by_then = len(engine.executed) + engine.concurrency.now
    wait_until(run.settled, timeout=2)
    assert len(engine.executed) == started_by_then
    assert run.outcome() is Outcome.INTERRUPTED
    assert run.checkpoint() == {"done": sorted(n for _, n in engine.executed)}


def test_failing_unit_fails_the_job_with_its_reason(pool: ScanPool, db: Database) -> None:
    """A unit that raises JobFailed ends the run FAILED with the message; the others drain."""
    engine = FakeEngine()
    run = make_run(engine, db, "doomed", units=50, unitSeconds=0.01, failAt=7)
    pool.add(run)
    wait_until(run.settled)
    assert run.outcome() is Outcome.FAILED
    assert run.error == "unit 7 failed on purpose"


def test_open_failure_fails_the_job(pool: ScanPool, db: Database) -> None:
    """An engine that cannot open (e.g. unreachable source) fails the job with the reason."""
    engine = FakeEngine()
    run = make_run(engine, db, "broken", units=5)
    run.ctx.spec = JobSpec("broken", "files", "/src", "/dst", {"units": "many"})
    pool.add(run)
    wait_until(run.settled)
    assert run.outcome() is Outcome.FAILED
    assert run.error is not None
    assert "many" in run.error


def test_idle_threads_exit_when_the_pool_shrinks(db: Database) -> None:
    """Thread count follows min(limit, sum of grants): surplus threads leave when idle."""
    scan_pool = ScanPool(PoolPolicy(limit=8, max_per_job=50, shares=SHARES))
    engine = FakeEngine()
    run = make_run(engine, db, "t", units=10_000, unitSeconds=0.01)
    scan_pool.add(run)
    wait_until(lambda: scan_pool.snapshot().threads == 8)
    scan_pool.set_policy(PoolPolicy(limit=2, max_per_job=50, shares=SHARES))
    wait_until(lambda: scan_pool.snapshot().threads == 2, timeout=3)
    run.request_stop(StopReason.USER)
    wait_until(run.settled)
    assert scan_pool.close(5)


def test_bandwidth_limiter_holds_the_rate_across_threads() -> None:
    """Four callers sharing 4 MB/s move 2 MB in no less than ~0.45 s (burst allowance aside)."""
    import threading  # noqa: PLC0415

    limiter = BandwidthLimiter(4_000_000)
    started = time.monotonic()

    def send() -> None:
        for _ in range(5):
            limiter.acquire(100_000)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert time.monotonic() - started >= 0.45


def test_unlimited_bandwidth_never_waits() -> None:
    """A rate of 0 means no cap."""
    limiter = BandwidthLimiter(0)
    started = time.monotonic()
    for _ in range(1000):
        limiter.acquire(10**9)
    assert time.monotonic() - started < 0.5


def test_a_run_not_open_yet_is_granted_one_thread(db: Database) -> None:
    """Opening is one unit: until a run is open it is granted one thread (not its share, which
    would show threads it cannot use), and its whole share once it is."""
    scan_pool = ScanPool(PoolPolicy(limit=4, max_per_job=50, shares=SHARES))
    engine = FakeEngine()
    run = make_run(engine, db, "slow-open", unreachableTries=1, retryDelay=0.3, units=400, unitSeconds=0.02)
    grants: list[int] = []

    def opened() -> bool:
        granted = run.grant.granted  # read first: a grant read before the run opened
        if run.opened:
            return True
        grants.append(granted)
        return False

    scan_pool.add(run)
    try:
        wait_until(opened, timeout=5, every=0.002)
        assert grants, "the run opened before its grant was read"
        assert max(grants) <= 1, grants
        wait_until(lambda: run.grant.granted == 4, what="its whole share once open")
    finally:
        scan_pool.stop("slow-open", StopReason.USER)
        wait_until(run.settled)
        assert scan_pool.close(5.0)


def test_a_stopping_run_hands_its_threads_to_the_others(pool: ScanPool, db: Database) -> None:
    """On stop, the run's grant drops to 0 at once; a waiting run gets the threads as units end."""
    engine = FakeEngine()
    first = make_run(engine, db, "first", started=0, pool=pool, units=1000, unitSeconds=0.05)
    second = make_run(engine, db, "second", started=1, pool=pool, units=1000, unitSeconds=0.05)
    pool.add(first)
    pool.add(second)
    wait_until(lambda: (first.grant.granted, second.grant.granted) == (4, 0), what="first open, granted the pool")
    wait_until(lambda: engine.concurrency.now == 4)
    pool.stop("first", StopReason.USER)
    assert first.grant.granted == 0
    assert second.grant.granted == 1  # not open yet: the open is its one unit
    wait_until(lambda: second.grant.granted == 4, what="second open, granted the pool")
    wait_until(lambda: "second" in engine.runs and engine.runs["second"].concurrency.now == 4, timeout=2)
    assert pool.peak_active <= 4
    pool.stop("second", StopReason.USER)
    wait_until(second.settled)


def test_an_engine_that_cannot_hand_out_work_fails_the_job(pool: ScanPool, db: Database) -> None:
    """A bug in an engine's next_unit ends the job FAILED with the reason, instead of a pool
    thread retrying it forever."""
    engine = FakeEngine()
    run = make_run(engine, db, "buggy", pool=pool, units=1000, unitSeconds=0.01)
    pool.add(run)
    wait_until(lambda: "buggy" in engine.runs)

    def broken() -> None:
        raise RuntimeError("next_unit exploded")

    engine.runs["buggy"].next_unit = broken  # type: ignore[method-assign,assignment]
    wait_until(run.settled, timeout=5)
    assert run.outcome() is Outcome.FAILED
    assert run.error is not None
    assert "next_unit exploded" in run.error


def test_a_run_waiting_to_open_lends_its_threads_to_others(db: Database) -> None:
    """A HIGH job whose server is unreachable at open waits with no grant and no thread while a
    LOW job gets the whole pool; once its next try opens it, it takes the threads back first."""
    scan_pool = ScanPool(PoolPolicy(limit=4, max_per_job=50, shares=SHARES))
    engine = FakeEngine()
    high = make_run(engine, db, "high", Priority.HIGH, unreachableTries=2, retryDelay=0.3, units=40, unitSeconds=0.02)
    low = make_run(engine, db, "low", Priority.LOW, started=1, units=400, unitSeconds=0.02)
    scan_pool.add(high)
    scan_pool.add(low)
    wait_until(lambda: high.notice is not None and low.grant.granted == 4)
    assert (high.notice or "").startswith("waiting for the fake server: connection refused; next try in ")
    assert high.grant.granted == 0
    wait_until(lambda: "low" in engine.runs and engine.runs["low"].concurrency.now == 4)
    wait_until(lambda: "high" in engine.runs, timeout=5)  # opened at the third try, 0.3 + 0.6 s on
    assert engine.opens["high"] == 3
    wait_until(lambda: (high.grant.granted, low.grant.granted) == (4, 0), what="HIGH open, granted the pool")
    wait_until(high.settled)
    assert (high.outcome(), high.notice) == (Outcome.COMPLETED, None)
    low.request_stop(StopReason.USER)
    wait_until(low.settled)
    assert scan_pool.close(5)
