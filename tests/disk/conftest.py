"""Real servers and the real pool for the disk engine's tests.

``require_real()`` skips a test when nbdkit, qemu-nbd or libnbd is missing, unless
``FERRY_REQUIRE_REAL=1``: then a missing tool is a failure, so CI cannot pass by skipping.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.db.ledger import JobLedger
from app.db.models import CopyJobRow, VerificationRow
from app.db.session import Database
from app.engines.bandwidth import BandwidthLimiter
from app.engines.base import JobContext, JobSpec, Purpose
from app.engines.disk import DiskEngine
from app.engines.disk.options import parse_options
from app.policy.allocation import Claim, Priority
from app.policy.properties import DEFAULT_CONFIG
from app.pool.pool import ScanPool
from app.pool.run import RunHandle
from tests.conftest import need_real
from tests.files.conftest import HARNESS, harness_lease
from tests.waiting import wait_until

MiB = 1024 * 1024
#: Seconds any test waits for a server or a run before it gives up.
WAIT = 60.0


def require_real(*tools: str) -> None:
    """Skip (or, with FERRY_REQUIRE_REAL=1, fail) when a real tool is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if importlib.util.find_spec("nbd") is None:
        missing.append("python3-libnbd")
    need_real(not missing, ", ".join(missing))


@pytest.fixture(autouse=True)
def _real_tools(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("nbd") is not None:
        require_real("nbdkit", "qemu-nbd", "qemu-img", "qemu-io", "nbdcopy")


def listening(path: Path) -> bool:
    """True once a server accepts connections on the Unix socket (the file appears earlier)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@dataclass
class Servers:
    """Starts NBD servers on Unix sockets in ``tmp``; all are stopped at the end of the test."""

    tmp: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    counter: Iterator[int] = field(default_factory=itertools.count)

    def nbdkit(self, *args: str, filters: tuple[str, ...] = ()) -> str:
        sock = self.tmp / f"nbdkit{next(self.counter)}.sock"
        cmd = ["nbdkit", "-f", "-U", str(sock), *(f"--filter={f}" for f in filters), *args]
        return self._start(cmd, sock)

    def qemu_nbd(self, image: Path, *args: str) -> str:
        """qemu-nbd, forked once it listens (a probe would use up a one-client server)."""
        n = next(self.counter)
        sock, pidfile = self.tmp / f"qemu{n}.sock", self.tmp / f"qemu{n}.pid"
        cmd = ["qemu-nbd", "--fork", "--pid-file", str(pidfile), "-k", str(sock), *args, str(image)]
        subprocess.run(cmd, check=True, timeout=WAIT, stdin=subprocess.DEVNULL)
        self.pids.append(int(pidfile.read_text()))
        return f"nbd+unix:///?socket={sock}"

    def revive(self) -> int:
        """Start again, on its socket, every nbdkit that died; how many did.

        nbdkit 1.32 can abort when a client vanishes with replies pending (a kill -9 of ferry
        mid-copy is exactly that); a real operator restarts it, and so does a test.
        """
        revived = 0
        for index, proc in enumerate(self.procs):
            if proc.poll() is not None and proc.args[0] == "nbdkit":
                sock = Path(proc.args[proc.args.index("-U") + 1])
                sock.unlink(missing_ok=True)
                self.procs[index] = self._spawn(list(proc.args), sock)
                revived += 1
        return revived

    def halt(self, uri: str) -> None:
        """Stop the nbdkit serving ``uri``, as a server goes down; :meth:`revive` brings it
        back on the same socket, serving the same disk (given the same ``seed=``)."""
        sock = uri.split("socket=", 1)[1]
        for proc in self.procs:
            if proc.args[0] == "nbdkit" and proc.args[proc.args.index("-U") + 1] == sock:
                proc.terminate()
                proc.wait(WAIT)

    def _start(self, cmd: list[str], sock: Path) -> str:
        self.procs.append(self._spawn(cmd, sock))
        return f"nbd+unix:///?socket={sock}"

    def _spawn(self, cmd: list[str], sock: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not listening(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[0]} did not start: {' '.join(cmd)}")
            time.sleep(0.02)
        return proc

    def stop(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    found = Servers(tmp_path)
    yield found
    found.stop()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A database at head on each backend (SQLite, and PostgreSQL when configured)."""
    database = Database(database_url)
    yield database
    database.dispose()


@dataclass
class Finished:
    outcome: str
    error: str | None
    progress: dict[str, Any]
    checkpoint: dict[str, Any] | None


@dataclass
class Driver:
    """Runs a disk job through the real ScanPool and RunHandle, as the coordinator would."""

    db: Database
    roots: tuple[Path, ...]
    jobs: Iterator[int] = field(default_factory=itertools.count)

    def start(self, source: str, target: str, options: dict[str, Any] | None = None, *,
              purpose: Purpose = Purpose.COPY, checkpoint: dict[str, Any] | None = None,
              job_id: str | None = None, probe: bool = True) -> tuple[ScanPool, RunHandle]:  # fmt: skip
        """``probe=False`` skips the servers' checks at creation (a server that is down)."""
        engine = DiskEngine()
        job_id = job_id or f"disk-{next(self.jobs)}"
        if probe:
            normalised = engine.validate(source, target, options or {}, self.roots)
        else:
            normalised = parse_options(options).as_dict()
        self._record(job_id, source, target, normalised, purpose)
        spec = JobSpec(job_id, "disk", source, target, normalised)
        pool = ScanPool(DEFAULT_CONFIG.pool)
        lease = harness_lease(job_id, purpose)
        ledger = JobLedger(self.db)
        ctx = JobContext(spec, purpose, checkpoint, False, ledger.fenced(lease), BandwidthLimiter(), self.roots)
        ctx.findings = lambda found: ledger.findings(lease, found)
        ctx.wake = pool.wake
        claim = Claim(job_id, Priority.NORMAL, time.time())
        run = RunHandle(claim, "disk", engine, ctx, engine.empty_progress())
        pool.add(run)
        return pool, run

    def _record(self, job_id: str, source: str, target: str, options: dict[str, Any], purpose: Purpose) -> None:
        with self.db.session() as session:
            if session.get(CopyJobRow, job_id) is None:
                session.add(CopyJobRow(id=job_id, kind="disk", source=source, target=target,
                                       priority="NORMAL", options=options, state="RUNNING",
                                       owner=HARNESS.node_id, lease_epoch=HARNESS.epoch))  # fmt: skip
            if purpose is Purpose.VERIFY and session.get(VerificationRow, job_id) is None:
                session.add(VerificationRow(job_id=job_id, status="RUNNING"))

    def wait(self, pool: ScanPool, run: RunHandle, timeout: float = WAIT) -> Finished:
        wait_for(run.settled, timeout)
        finished = Finished(run.outcome().value, run.error, run.progress_fields(), run.checkpoint())
        run.close()
        pool.remove(run.job_id)
        assert pool.close(10)
        return finished

    def run(self, source: str, target: str, options: dict[str, Any] | None = None, **kw: Any) -> Finished:
        pool, run = self.start(source, target, options, **kw)
        return self.wait(pool, run)


@pytest.fixture
def driver(db: Database, tmp_path: Path) -> Driver:
    return Driver(db, (tmp_path,))


def wait_for(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """The shared wait (tests/waiting.py), polling often: disk runs move fast."""
    wait_until(condition, timeout, "disk run condition", every=0.01)


def read_all(uri_or_path: str, size: int) -> bytes:
    """The whole disk's content, read with libnbd (or from the file)."""
    if not uri_or_path.startswith("nbd"):
        return Path(uri_or_path).read_bytes()
    nbd = importlib.import_module("nbd")  # only now: the module imports without libnbd
    handle = nbd.NBD()
    handle.connect_uri(uri_or_path)
    try:
        return b"".join(bytes(handle.pread(min(16 * MiB, size - o), o)) for o in range(0, size, 16 * MiB))
    finally:
        handle.shutdown()


def digest(uri_or_path: str, size: int) -> str:
    return hashlib.sha256(read_all(uri_or_path, size)).hexdigest()
