"""A source or target that is down when a run opens is waited for, holding no thread (SPEC 3).

Each server is a real nbdkit on a Unix socket that the test stops and starts again on the same
socket; ``sparse-random`` with a fixed ``seed=`` serves the same disk again.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from app.pool.pool import ScanPool
from app.pool.run import RunHandle, StopReason

from .conftest import Driver, MiB, Servers, digest, wait_for

pytestmark = pytest.mark.nbd

SIZE = 16 * MiB
DISK = ("sparse-random", str(SIZE), "seed=21", "percent=50", "runlength=1048576")
#: Short backoff, long patience: the test, not the timeout, decides when the server is back.
PATIENT = {"retryDelay": 0.2, "openTimeout": 60}
NOTICE = re.compile(
    r"waiting for the (source|target) nbd\+unix:///\?socket=\S+: connect: (Connection refused|No such file or "
    r"directory); (next try in \d+ s|trying again now), giving up at \d\d:\d\d:\d\d UTC"
)


def waiting_idle(pool: ScanPool, run: RunHandle, side: str) -> None:
    """The run says what it waits for, claims no thread, and no pool thread is left for it."""
    wait_for(lambda: f"waiting for the {side}" in (run.notice or ""))
    assert NOTICE.fullmatch(run.notice or ""), run.notice
    wait_for(lambda: pool.snapshot().threads == 0)
    (stats,) = pool.snapshot().runs
    assert (stats.granted, stats.active) == (0, 0)
    assert not run.settled()


def test_source_down_at_open_is_waited_for_then_copied(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """The source is down when the run opens: the run waits with no thread and a notice, and
    copies the disk exactly once the server is back on its socket."""
    source = servers.nbdkit(*DISK)
    servers.halt(source)
    target = tmp_path / "disk.img"
    pool, run = driver.start(source, str(target), PATIENT, probe=False)
    waiting_idle(pool, run, "source")
    assert servers.revive() == 1
    done = driver.wait(pool, run)
    assert (done.outcome, done.error) == ("COMPLETED", None)
    assert run.notice is None
    assert digest(str(target), SIZE) == digest(source, SIZE)


def test_target_down_at_open_is_waited_for_then_copied(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """The same for an NBD target (nbdkit serving an image file, which keeps what it got)."""
    source = servers.nbdkit(*DISK)
    image = tmp_path / "target.img"
    image.write_bytes(b"\xaa" * SIZE)
    target = servers.nbdkit("file", str(image))
    servers.halt(target)
    pool, run = driver.start(source, target, PATIENT, probe=False)
    waiting_idle(pool, run, "target")
    assert servers.revive() == 1
    done = driver.wait(pool, run)
    assert (done.outcome, done.error) == ("COMPLETED", None)
    assert digest(str(image), SIZE) == digest(source, SIZE)


@pytest.mark.parametrize("refusal", ["no such export", "target size"])
def test_a_definite_refusal_still_fails_at_once(servers: Servers, driver: Driver, refusal: str) -> None:
    """A server that answers and refuses (no such export, a target of the wrong size) is not
    waited for: the run fails at once, naming the refusal."""
    if refusal == "no such export":
        served = servers.nbdkit("pattern", str(SIZE), "exportname=disk", "exportname-strict=true",
                                filters=("exportname",))  # fmt: skip
        source, target = served.replace(":///?", ":///other?"), servers.nbdkit("memory", str(SIZE))
        expected = "server has no export named 'other'"
    else:
        source, target = servers.nbdkit("pattern", str(SIZE)), servers.nbdkit("memory", str(2 * SIZE))
        expected = f"target size {2 * SIZE} does not match the source size {SIZE}"
    started = time.monotonic()
    done = driver.run(source, target, PATIENT, probe=False)
    assert done.outcome == "FAILED"
    assert expected in (done.error or ""), done.error
    assert time.monotonic() - started < 10, "waited for a server that had refused"


def test_after_open_timeout_the_run_fails_saying_what_it_waited_for(servers: Servers, driver: Driver,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    """A source that stays down: after openTimeout seconds of tries the run ends FAILED."""
    source = servers.nbdkit(*DISK)
    servers.halt(source)
    started = time.monotonic()
    done = driver.run(source, str(tmp_path / "disk.img"), {"retryDelay": 0.2, "openTimeout": 1.5}, probe=False)
    took = time.monotonic() - started
    assert done.outcome == "FAILED"
    assert re.fullmatch(r"gave up after 1\.5 s waiting for the source nbd\+unix:///\S+: connect: .+", done.error or "")
    assert 1.5 <= took < 15, took


def test_a_stop_while_waiting_settles_at_once(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """Race: a stop between two tries to open. The run settles STOPPED without waiting for its
    next try, and no try comes after."""
    source = servers.nbdkit(*DISK)
    servers.halt(source)
    pool, run = driver.start(source, str(tmp_path / "disk.img"), {"retryDelay": 30, "openTimeout": 60}, probe=False)
    wait_for(lambda: run.notice is not None)
    run.request_stop(StopReason.USER)
    done = driver.wait(pool, run, timeout=5)
    assert done.outcome == "STOPPED"
