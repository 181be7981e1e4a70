"""Benchmark the files engine against rsync and rclone (not run by the tests).

    .venv/bin/python bench/files_bench.py                 # ~20 000 small files + 3 x 16 MiB
    .venv/bin/python bench/files_bench.py --million       # also: 1M files, files/s and peak RSS

Each tool copies the same source into a fresh target, then runs again on the unchanged tree (a
no-op rescan). ferry is driven through the engine and the pool directly by :func:`run_ferry`;
when the HTTP API lands, only that function changes.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db.models import CopyJobRow
from app.db.schema import upgrade
from app.db.session import Database
from app.engines.base import JobContext, JobSpec, Purpose
from app.engines.files import FilesEngine
from app.policy.allocation import Claim, Priority
from app.policy.properties import DEFAULT_CONFIG
from app.pool.bandwidth import BandwidthLimiter
from app.pool.pool import ScanPool
from app.pool.run import Outcome, RunHandle

MiB = 1024 * 1024


def generate(root: Path, files: int, dirs: int, large: int) -> None:
    rng = random.Random(42)
    directories = [root / f"d{i // 20:03}" / f"s{i:04}" for i in range(dirs)]
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (directories[i % dirs] / f"file-{i:07}.dat").write_bytes(rng.randbytes(rng.randint(0, 8192)))
    for i in range(large):
        (root / f"large-{i}.bin").write_bytes(os.urandom(16 * MiB))


def run_ferry(source: Path, target: Path, workdir: Path, durability: str = "none") -> dict[str, Any]:
    """Copy ``source`` to ``target`` with ferry (an incremental pass if it ran before); its progress."""
    url = f"sqlite:///{workdir / 'ferry-bench.db'}"
    upgrade(url)
    db = Database(url)
    engine = FilesEngine()
    job_id = f"bench-{target.name}"
    options = engine.validate(str(source), str(target), {"durability": durability}, (workdir,))
    with db.session() as session:
        again = session.get(CopyJobRow, job_id) is not None
        if not again:
            session.add(CopyJobRow(id=job_id, kind="files", source=str(source), target=str(target),
                                   priority="NORMAL", options=options, state="RUNNING"))  # fmt: skip
    pool = ScanPool(DEFAULT_CONFIG.pool)
    spec = JobSpec(job_id, "files", str(source), str(target), options)
    ctx = JobContext(spec, Purpose.COPY, None, again, db, BandwidthLimiter(), (workdir,), wake=pool.wake)
    run = RunHandle(Claim(job_id, Priority.NORMAL, time.time()), "files", engine, ctx, engine.empty_progress())
    pool.add(run)
    last = time.monotonic()
    while not run.settled():
        time.sleep(0.02)
        if time.monotonic() - last >= 2.0:  # as the service's coordinator does
            run.checkpoint()
            last = time.monotonic()
    pool.remove(job_id)
    progress = run.progress_fields()
    run.close()
    pool.close(10)
    db.dispose()
    assert run.outcome() is Outcome.COMPLETED, run.error
    return progress


def timed(label: str, action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    seconds = time.perf_counter() - started
    print(f"  {label:<34} {seconds:8.2f} s", flush=True)
    return seconds


def compare(workdir: Path, files: int, dirs: int, large: int) -> None:
    source = workdir / "source"
    print(f"generating {files} files in {dirs} directories and {large} x 16 MiB in {source}", flush=True)
    generate(source, files, dirs, large)
    subprocess.run(["sync"], check=True)
    tools = {
        "ferry": lambda dst: run_ferry(source, dst, workdir),
        "rsync -a": lambda dst: subprocess.run(["rsync", "-a", f"{source}/", f"{dst}/"], check=True),
        "rclone copy": lambda dst: subprocess.run(
            ["rclone", "copy", "--transfers", "4", "--checkers", "8", "--links", str(source), str(dst)],
            check=True, capture_output=True,
        ),
    }  # fmt: skip
    results: dict[str, tuple[float, float]] = {}
    for name, copy in tools.items():
        target = workdir / f"target-{name.split()[0]}"
        shutil.rmtree(target, ignore_errors=True)
        first = timed(f"{name}: copy", lambda copy=copy, target=target: copy(target))
        second = timed(f"{name}: no-op rescan", lambda copy=copy, target=target: copy(target))
        results[name] = (first, second)
    ferry_copy, ferry_scan = results["ferry"]
    print("\nseconds (copy / no-op rescan) and ferry's time as a ratio of each tool's:")
    for name, (first, second) in results.items():
        ratios = f"{ferry_copy / first:5.2f} / {ferry_scan / second:5.2f}"
        print(f"  {name:<12} {first:7.2f} / {second:6.2f}   ratio {ratios}")


def million_child(workdir: Path) -> None:
    """In the child process: ferry's copy of the 1M-file tree, then a no-op scan of it."""
    source, target = workdir / "million", workdir / "million-target"
    started = time.perf_counter()
    copied = run_ferry(source, target, workdir)
    copy_s = time.perf_counter() - started
    started = time.perf_counter()
    scanned = run_ferry(source, target, workdir)
    scan_s = time.perf_counter() - started
    print(f"  copy {copy_s:.1f} s ({int(copied['filesCopied']) / copy_s:.0f} files/s)")
    print(f"  no-op scan {scan_s:.1f} s ({int(scanned['filesScanned']) / scan_s:.0f} files/s)")


def million(workdir: Path, files: int = 1_000_000) -> None:
    """1M files (directories of 1000), copied then rescanned by ferry in a child process."""
    source = workdir / "million"
    if not source.exists():
        print(f"generating {files} files ...", flush=True)
        generate(source, files, max(1, files // 1000), 0)
    shutil.rmtree(workdir / "million-target", ignore_errors=True)
    subprocess.run([sys.executable, __file__, "--million-child", "--workdir", str(workdir)], check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"  peak RSS of the ferry process: {peak:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="where trees go (default: a temp dir)")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--dirs", type=int, default=300)
    parser.add_argument("--large", type=int, default=3)
    parser.add_argument("--million", action="store_true", help="also the 1M-file run (long)")
    parser.add_argument("--million-files", type=int, default=1_000_000, help="its size, for a shorter try")
    parser.add_argument("--skip-compare", action="store_true", help="only the 1M-file run")
    parser.add_argument("--million-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.million_child:
        million_child(args.workdir.resolve())
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    try:
        if not args.skip_compare:
            compare(workdir, args.files, args.dirs, args.large)
        if args.million:
            million(workdir, args.million_files)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
