"""Drive the files engine through the real pool, database and filesystem.

``harness.run(job)`` plays the coordinator's part: it adds a ``RunHandle`` to a ``ScanPool``,
asks for the checkpoint summary every 0.2 s (the run writes checkpoints itself: every 0.2 s with
the tests' tuning, 2 s by default) and waits, with a deadline, until the run is settled; then it
takes the last summary, closes the run and returns what happened.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.db.leases import COPY, VERIFY, Lease
from app.db.ledger import JobLedger
from app.db.models import CopyJobRow, VerificationRow
from app.db.session import Database
from app.engines.bandwidth import BandwidthLimiter
from app.engines.base import JobContext, JobSpec, Purpose
from app.engines.files import FilesEngine
from app.engines.files.copy import is_temp
from app.engines.files.tuning import Tuning
from app.policy.allocation import Claim, PoolPolicy, Priority
from app.pool.pool import ScanPool
from app.pool.run import Outcome, RunHandle, StopReason, derived_progress
from tests.servers import free_port

#: Small sizes so that tests exercise batches, ranges, multi-step listings and spills. Batches run
#: on the pool threads, where tests can watch them (test_helpers.py covers helper processes).
TEST_TUNING = Tuning(list_step=7, inline_files=3, inline_bytes=128 * 1024, batch_files=5, batch_bytes=256 * 1024,
                     range_size=64 * 1024,
                     queue_bound=50, frontier_bound=6, refill=4, checkpoint_every=0.2, helpers=False)  # fmt: skip


#: The lease the harness holds on its jobs, as a node would: engine writes are fenced by it.
HARNESS = Lease("", "harness", 1, 0, COPY)


def harness_lease(job_id: str, purpose: Purpose) -> Lease:
    return Lease(job_id, HARNESS.node_id, HARNESS.epoch, 0, COPY if purpose is Purpose.COPY else VERIFY)


@dataclass
class Job:
    job_id: str
    source: Path
    target: Path
    options: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None


@dataclass
class Result:
    outcome: Outcome
    progress: dict[str, Any]
    checkpoint: dict[str, Any] | None
    error: str | None
    peak_active: int = 0


class Harness:
    def __init__(self, db: Database, roots: tuple[Path, ...], threads: int = 4) -> None:
        self.db = db
        self.roots = roots
        self.engine = FilesEngine(TEST_TUNING)
        self.limiter = BandwidthLimiter()
        shares = dict.fromkeys(Priority, 100.0)
        self.pool = ScanPool(PoolPolicy(limit=threads, max_per_job=threads, shares=shares))

    def job(self, source: Path, target: Path, job_id: str = "job", **options: Any) -> Job:
        normalised = self.engine.validate(str(source), str(target), options, self.roots)
        with self.db.session() as session:
            if session.get(CopyJobRow, job_id) is None:
                session.add(CopyJobRow(id=job_id, kind="files", source=str(source), target=str(target),
                                       priority="NORMAL", options=normalised, state="RUNNING",
                                       owner=HARNESS.node_id, lease_epoch=HARNESS.epoch))  # fmt: skip
        return Job(job_id, source, target, normalised)

    def run(
        self,
        job: Job,
        *,
        purpose: Purpose = Purpose.COPY,
        incremental: bool = False,
        stop_when: Callable[[dict[str, Any]], bool] | None = None,
        during: Callable[[RunHandle], None] | None = None,
        timeout: float = 40.0,
    ) -> Result:
        spec = JobSpec(job.job_id, "files", str(job.source), str(job.target), job.options)
        lease = harness_lease(job.job_id, purpose)
        if purpose is Purpose.VERIFY:  # the ledger opens a report when a node takes a verification
            with self.db.session() as session:
                if session.get(VerificationRow, job.job_id) is None:
                    session.add(VerificationRow(job_id=job.job_id, status="RUNNING", counts={}))
        ctx = JobContext(spec, purpose, job.checkpoint, incremental, JobLedger(self.db).fenced(lease), self.limiter,
                         self.roots, wake=self.pool.wake,
                         findings=lambda found: JobLedger(self.db).findings(lease, found))  # fmt: skip
        claim = Claim(job.job_id, Priority.NORMAL, time.time())
        run = RunHandle(claim, "files", self.engine, ctx, self.engine.empty_progress())
        self.pool.add(run)
        deadline = time.monotonic() + timeout
        next_checkpoint = 0.0
        try:
            while not run.settled():
                now = time.monotonic()
                assert now < deadline, f"run not settled in {timeout}s: {run.progress_fields()}"
                if stop_when is not None and run.engine_run is not None and stop_when(run.progress_fields()):
                    run.request_stop(StopReason.USER)
                if during is not None and run.engine_run is not None:
                    during(run)
                if purpose is Purpose.COPY and run.engine_run is not None and now >= next_checkpoint:
                    job.checkpoint = run.checkpoint()
                    next_checkpoint = now + 0.2
                time.sleep(0.01)
        finally:
            self.pool.remove(job.job_id)
        progress = run.progress()
        fields = derived_progress(progress, 0.0) if progress else {}
        checkpoint = run.checkpoint()
        run.close()
        if purpose is Purpose.COPY and checkpoint is not None:
            job.checkpoint = checkpoint
        return Result(run.outcome(), fields, checkpoint, run.error, self.pool.peak_active)

    def close(self) -> None:
        assert self.pool.close(10.0)


def serve_env(database_url: str, data: Path, node: str, **extra: str) -> dict[str, str]:
    """The environment of a real ``ferry serve`` over ``data`` (its data dir and allowed root)."""
    return {
        **os.environ,
        "FERRY_DATABASE_URL": database_url,
        "FERRY_DATA_DIR": str(data),
        "FERRY_PORT": str(free_port()),
        "FERRY_NODE_ID": node,
        **extra,
    }


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A database at head on each backend (SQLite, and PostgreSQL when configured)."""
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def harness(db: Database, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(db, (tmp_path,))
    yield h
    h.close()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.mkdir()
    return path


@pytest.fixture
def dst(tmp_path: Path) -> Path:
    return tmp_path / "dst"


# -- trees ---------------------------------------------------------------------------------------


def write(path: Path, data: bytes | str = b"", mtime: int | None = None, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        path.chmod(mode)
    if mtime is not None:
        os.utime(path, ns=(mtime, mtime))
    return path


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``root``: kind, mode, mtime and content (or link text)."""
    entries: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                entries[rel] = ("link", os.readlink(path), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                entries[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, path.read_bytes())
    st = root.lstat()
    entries["."] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return entries


def assert_same_tree(src: Path, dst: Path, ignore: Callable[[str], bool] = lambda rel: False) -> None:
    want = {k: v for k, v in snapshot(src).items() if not ignore(k)}
    got = {k: v for k, v in snapshot(dst).items() if not ignore(k)}
    assert sorted(got) == sorted(want)
    for rel, entry in want.items():
        assert got[rel] == entry, rel


def temp_files(root: Path) -> list[str]:
    return [os.path.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs if is_temp(n)]
