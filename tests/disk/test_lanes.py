"""Each lane is a helper process (the copy work stays out of the server's interpreter, at a lower
CPU priority): none outlives its run, and one killed mid-copy costs only its chunks in flight,
copied again."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from app.engines import processes
from app.engines.disk import connections

from .conftest import Driver, MiB, Servers, digest, wait_for

pytestmark = pytest.mark.nbd


def _lane_processes() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name == "ferry-disk-lane"]


def test_a_run_leaves_no_lane_process_behind(
    servers: Servers, driver: Driver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lanes were opened in helper processes, and once the run is closed every one has exited
    (with them the buffers libnbd keeps for good)."""
    opened: list[int] = []
    start = connections.Lane.__init__

    def counting(self: connections.Lane, spec: connections.LaneSpec) -> None:
        start(self, spec)
        opened.append(os.getpid())

    monkeypatch.setattr(connections.Lane, "__init__", counting)
    source = servers.nbdkit("sparse-random", str(64 * MiB), "seed=9", "percent=50", "runlength=1048576")
    finished = driver.run(source, str(tmp_path / "a.img"))
    assert finished.outcome == "COMPLETED"
    assert opened  # lanes were helper processes
    assert _lane_processes() == []
    assert digest(str(tmp_path / "a.img"), 64 * MiB) == digest(source, 64 * MiB)


def test_a_lane_killed_mid_copy_costs_only_its_chunks(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """kill -9 of a lane's helper while it copies: the unit on it fails its chunks in flight,
    they are copied again on a new lane, and the run completes with the disk exact."""
    size = 512 * MiB
    image = tmp_path / "source.img"
    with image.open("wb") as out:
        for _ in range(size // (8 * MiB)):
            out.write(os.urandom(8 * MiB))
    # qemu-nbd: nbdkit 1.32 aborts (an assertion in raw_send_socket) when a client vanishes
    # with replies due, which is what a killed helper is.
    source = servers.qemu_nbd(image, "-r", "-t", "-f", "raw", "-e", "8")
    target = tmp_path / "disk.img"
    pool, run = driver.start(source, str(target))
    wait_for(lambda: run.progress_fields()["bytesCopied"] >= 8 * MiB and bool(_lane_processes()))
    victim = _lane_processes()[0]
    assert victim.pid is not None
    # Copy work yields the CPU to the server: the helper runs nicer by the setting.
    assert os.getpriority(os.PRIO_PROCESS, victim.pid) == os.getpriority(os.PRIO_PROCESS, 0) + processes.helper_nice()
    os.kill(victim.pid, signal.SIGKILL)
    finished = driver.wait(pool, run)
    assert finished.outcome == "COMPLETED", finished.error
    assert finished.progress["retries"] >= 1
    assert digest(str(target), size) == digest(source, size)
