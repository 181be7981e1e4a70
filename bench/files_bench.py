"""Benchmark the files engine against rsync and rclone (not run by the tests).

    .venv/bin/python bench/files_bench.py                 # ~20 000 small files + 3 x 16 MiB
    .venv/bin/python bench/files_bench.py --million       # also: 1M files, files/s and peak RSS

Each tool copies the same source into a fresh target, then runs again on the unchanged tree (a
no-op rescan). ferry runs as a real ``ferry serve`` and is driven through its HTTP API (:mod:`bench.serving`).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serving import FerryServer, ferry_server

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


def warm(root: Path) -> None:
    """Read every file under ``root`` so that its data is in the page cache.

    rclone drops the source's pages from the cache as it reads them (``fadvise(DONTNEED)``), so
    without this the tool that follows it in a round reads the whole source from disk.
    """
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as f:
                while f.read(MiB):
                    pass


def run_ferry(
    server: FerryServer, source: Path, target: Path, durability: str = "none"
) -> tuple[float, dict[str, Any]]:
    """Copy ``source`` to ``target`` through ferry's API (an incremental pass if it ran before).

    Returns the seconds from the request to COMPLETED, and the final progress.
    """
    body = {"kind": "files", "source": str(source), "target": str(target), "options": {"durability": durability}}
    seconds, migration = server.copy(f"bench-{target.name}", body)
    return seconds, dict(migration["progress"])


def timed(label: str, action: Callable[[], object]) -> float:
    """Seconds ``action`` took: its own count when it returns one (ferry's), else wall time."""
    started = time.perf_counter()
    result = action()
    seconds = result if isinstance(result, float) else time.perf_counter() - started
    print(f"  {label:<34} {seconds:8.2f} s", flush=True)
    return seconds


def compare(server: FerryServer, workdir: Path, files: int, dirs: int, large: int, rounds: int) -> None:
    source = workdir / "source"
    print(f"generating {files} files in {dirs} directories and {large} x 16 MiB in {source}", flush=True)
    generate(source, files, dirs, large)
    subprocess.run(["sync"], check=True)
    tools = {
        "ferry": lambda dst: run_ferry(server, source, dst)[0],
        "rsync -a": lambda dst: subprocess.run(["rsync", "-a", f"{source}/", f"{dst}/"], check=True),
        "rclone copy": lambda dst: subprocess.run(
            ["rclone", "copy", "--transfers", "4", "--checkers", "8", "--links", str(source), str(dst)],
            check=True, capture_output=True,
        ),
    }  # fmt: skip
    # This machine's filesystem speed drifts a lot (deleting a tree makes the next writes slow):
    # tools take turns, in a rotating order, and each keeps its best round. Each copy starts with
    # the source in the page cache, whatever the tool before it did to the cache.
    results: dict[str, tuple[float, float]] = {}
    names = list(tools)
    for round_number in range(rounds):
        print(f"round {round_number + 1} of {rounds}", flush=True)
        for name in names[round_number % len(names) :] + names[: round_number % len(names)]:
            copy, target = tools[name], workdir / f"target-{name.split()[0]}"
            shutil.rmtree(target, ignore_errors=True)
            subprocess.run(["sync"], check=True)
            warm(source)
            first = timed(f"{name}: copy", lambda copy=copy, target=target: copy(target))
            second = timed(f"{name}: no-op rescan", lambda copy=copy, target=target: copy(target))
            best = results.get(name, (first, second))
            results[name] = (min(best[0], first), min(best[1], second))
    ferry_copy, ferry_scan = results["ferry"]
    print(f"\nbest of {rounds}, seconds (copy / no-op rescan), and ferry's time as a ratio of each tool's:")
    for name, (first, second) in results.items():
        ratios = f"{ferry_copy / first:5.2f} / {ferry_scan / second:5.2f}"
        print(f"  {name:<12} {first:7.2f} / {second:6.2f}   ratio {ratios}")


def million(server: FerryServer, workdir: Path, files: int = 1_000_000) -> None:
    """1M files (directories of 1000), copied then rescanned by a ferry serve; its peak RSS."""
    source, target = workdir / "million", workdir / "million-target"
    if not source.exists():
        print(f"generating {files} files ...", flush=True)
        generate(source, files, max(1, files // 1000), 0)
    shutil.rmtree(target, ignore_errors=True)
    copy_s, copied = run_ferry(server, source, target)
    scan_s, scanned = run_ferry(server, source, target)
    print(f"  copy {copy_s:.1f} s ({int(copied['filesCopied']) / copy_s:.0f} files/s)")
    print(f"  no-op scan {scan_s:.1f} s ({int(scanned['filesScanned']) / scan_s:.0f} files/s)")
    print(f"  peak RSS of ferry serve: {server.peak_rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="where trees go (default: a temp dir)")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--dirs", type=int, default=300)
    parser.add_argument("--large", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the comparison; each tool's best counts")
    parser.add_argument("--million", action="store_true", help="also the 1M-file run (long)")
    parser.add_argument("--million-files", type=int, default=1_000_000, help="its size, for a shorter try")
    parser.add_argument("--skip-compare", action="store_true", help="only the 1M-file run")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    try:
        with ferry_server([workdir]) as server:
            if not args.skip_compare:
                compare(server, workdir, args.files, args.dirs, args.large, args.rounds)
            if args.million:
                million(server, workdir, args.million_files)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
