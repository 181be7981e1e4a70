"""Benchmark the disk engine against nbdcopy on the same sources, in the same run.

    .venv/bin/python bench/disk_bench.py --size 4G

Scenarios (each: nbdkit sparse-random, percent=50, fixed seed):
  1. to a new sparse file;        2. to an nbdkit memory export;
  3. source behind --filter=delay rdelay=1ms;
  4. source behind --filter=rate connection-rate=1200M (150 MB/s per connection),
     plus ferry restricted to one connection (parallel: false);
  5. incremental: 1% of the disk changed (changedExtents), into the file of scenario 1.

Ferry runs as a real ``ferry serve`` driven through its HTTP API, with the default pool: a
NORMAL migration is granted 4 threads (4% of 100), each with its own connections.

Each round runs every tool once, in turns that rotate from round to round, each into a fresh
target; before a run to a file the disk settles (the deleted target of the run before is
discarded, which slows the writes that follow). Figures are medians with their ranges over the
rounds, and ferry's time over nbdcopy's is taken round by round. While it runs, this VM keeps the
memory its processes free instead of giving it back to the host, and a first copy warms it up,
uncounted (:mod:`bench.machine` says why: it decided 3 s or 9 s at random, for either tool).
"""

from __future__ import annotations

import argparse
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.policy.units import parse_size
from bench.machine import held_memory, settle, spread
from bench.serving import FerryServer, ferry_server

MB = 1_000_000
SCENARIOS = ("file", "memory", "delay", "rate", "incremental")


def listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@contextmanager
def nbdkit(tmp: Path, name: str, *args: str) -> Iterator[str]:
    sock = tmp / f"{name}.sock"
    proc = subprocess.Popen(["nbdkit", "-f", "-U", str(sock), *args], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not listening(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nbdkit {' '.join(args)} did not start")
            time.sleep(0.02)
        yield f"nbd+unix:///?socket={sock}"
    finally:
        proc.terminate()
        proc.wait(30)


class Ferry:
    """The ferry serve the scenarios share (set in :func:`main`)."""

    server: FerryServer | None = None


def run_ferry(source: str, target: str, options: dict[str, Any], work: Path) -> float:
    """Copy with ferry through its HTTP API; the seconds from the request to COMPLETED."""
    assert Ferry.server is not None
    body = {"kind": "disk", "source": source, "target": target, "options": options}
    seconds, _ = Ferry.server.copy(f"bench-{time.monotonic_ns()}", body)
    return seconds


def run_nbdcopy(source: str, target: str) -> None:
    # --flush: ferry flushes (fsync or NBD flush) before COMPLETED, so nbdcopy must too.
    subprocess.run(["nbdcopy", "--flush", source, target], check=True)


def timed(label: str, size: int, fn: Any, *args: Any) -> float:
    """Seconds ``fn`` took: what it returns when that is a float (ferry's own count), else wall time."""
    started = time.perf_counter()
    result = fn(*args)
    seconds = result if isinstance(result, float) else time.perf_counter() - started
    print(f"  {label:<28} {seconds:7.2f} s  {size / seconds / MB:8.1f} MB/s", flush=True)
    return seconds


def report(name: str, times: dict[str, list[float]], tool: str = "ferry") -> None:
    """Print ``tool``'s and nbdcopy's times, and their ratio round by round, as median (min-max)."""
    ratios = [f / n for f, n in zip(times[tool], times["nbdcopy"], strict=True)]
    print(
        f"  => {name}: {tool} {spread(times[tool])} s, nbdcopy {spread(times['nbdcopy'])} s,"
        f" {tool}/nbdcopy {spread(ratios)}",
        flush=True,
    )


def scenario(
    tmp: Path,
    name: str,
    size: int,
    filters: tuple[str, ...],
    params: tuple[str, ...],
    to_memory: bool,
    single: bool = False,
    repeat: int = 1,
) -> dict[str, list[float]]:
    """``repeat`` rounds, each tool once per round into a fresh target, tools taking turns."""
    print(f"[{name}]", flush=True)
    plugin = ("sparse-random", str(size), "seed=42", "percent=50")
    source_args = (*(f"--filter={f}" for f in filters), *plugin, *params)
    times: dict[str, list[float]] = {}
    with nbdkit(tmp, f"src-{name}", *source_args) as source:
        # Read the new source once, not counted: its first reader paid for the server's warm-up
        # (ferry, first in round 1, took 4.48 s where its other rounds took 3.71-3.78 s).
        subprocess.run(["nbdcopy", source, "null:"], check=True)
        tools = ["ferry", "nbdcopy", *(["ferry-1conn"] if single else [])]
        for attempt in range(repeat):
            # Take turns, starting with a different tool each round: the disk's speed drifts.
            shift = attempt % len(tools)
            for tool in tools[shift:] + tools[:shift]:
                seconds = _fresh_target(tmp, f"{name}-{tool}-{attempt}", tool, source, size, to_memory)
                times.setdefault(tool, []).append(seconds)
    report(name, times)
    if single:
        report(f"{name} (ferry one connection)", times, "ferry-1conn")
    return times


def _fresh_target(tmp: Path, label: str, tool: str, source: str, size: int, to_memory: bool) -> float:
    if to_memory:
        with nbdkit(tmp, f"dst-{label}", "memory", str(size)) as target:
            return _one(tool, source, target, size, tmp)
    target = tmp / f"{label}.img"
    settle()  # the target of the run before was deleted: its discards must not slow this one
    seconds = _one(tool, source, str(target), size, tmp)
    if label.startswith("file-ferry-0"):
        target.rename(tmp / "file-ferry.img")  # the incremental scenario starts from it
    else:
        target.unlink()
    return seconds


def _one(tool: str, source: str, target: str, size: int, tmp: Path) -> float:
    if tool == "nbdcopy":
        return timed("nbdcopy", size, run_nbdcopy, source, target)
    options = {"parallel": False} if tool == "ferry-1conn" else {}
    return timed(tool, size, run_ferry, source, target, options, tmp)


def incremental(tmp: Path, size: int, full_seconds: float | None) -> None:
    print("[incremental 1%]", flush=True)
    rng = random.Random(1)
    piece = 640 * 1024
    count = max(1, size // 100 // piece)
    offsets = sorted(rng.sample(range(0, size - piece, piece), count))
    extents = [{"offset": o, "length": piece} for o in offsets]
    target = tmp / "file-ferry.img"
    with nbdkit(tmp, "src-incr", "sparse-random", str(size), "seed=42", "percent=50") as source:
        seconds = timed(
            "ferry changedExtents", count * piece, run_ferry, source, str(target), {"changedExtents": extents}, tmp
        )
    if full_seconds:
        share = seconds / full_seconds
        print(f"  => dirty {count * piece / size:.1%} of the disk took {share:.1%} of the full copy's time")


def warm_up(tmp: Path, size: int) -> None:
    """Copy once to a memory export and once to a file, not counted: the first run after the
    machine's memory went back to its host pays for touching it again (see :mod:`bench.machine`)."""
    print("[warm-up, not counted]", flush=True)
    with nbdkit(tmp, "src-warm", "sparse-random", str(size), "seed=7", "percent=50") as source:
        with nbdkit(tmp, "dst-warm", "memory", str(size)) as target:
            timed("nbdcopy to memory", size, run_nbdcopy, source, target)
        timed("nbdcopy to a file", size, run_nbdcopy, source, str(tmp / "warm.img"))
        (tmp / "warm.img").unlink()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="4GiB", help="virtual disk size, e.g. 512MiB, 4G (default 4GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each tool runs once per round (default 3)")
    parser.add_argument("--dir", default="/var/tmp", help="where target files go (default /var/tmp)")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable; default all)"
    )
    args = parser.parse_args(argv)
    size = parse_size(re.sub(r"([KMGT])$", r"\1iB", args.size))[0]
    with (
        held_memory(),
        tempfile.TemporaryDirectory(prefix="ferry-bench-", dir=args.dir) as tmpdir,
        ferry_server([Path(tmpdir)]) as server,
    ):
        Ferry.server = server
        tmp = Path(tmpdir)
        warm_up(tmp, size)
        n, only = args.repeat, set(args.only or SCENARIOS)
        full = None
        if "file" in only or "incremental" in only:
            full = statistics.median(scenario(tmp, "file", size, (), (), to_memory=False, repeat=n)["ferry"])
        if "memory" in only:
            scenario(tmp, "memory", size, (), (), to_memory=True, repeat=n)
        if "delay" in only:
            scenario(tmp, "delay", size, ("delay",), ("rdelay=1ms",), to_memory=False, repeat=n)
        if "rate" in only:
            rate = ("connection-rate=1200M",)
            scenario(tmp, "rate", size, ("rate",), rate, to_memory=False, single=True, repeat=n)
        if "incremental" in only:
            incremental(tmp, size, full)


if __name__ == "__main__":
    main(sys.argv[1:])
