"""Benchmark the files engine against rsync and rclone (not run by the tests).

    .venv/bin/python bench/files_bench.py                 # 20 000 small files + 8 x 16 MiB, warm and cold
    .venv/bin/python bench/files_bench.py --cache cold    # cold only (root: drops the page cache)
    .venv/bin/python bench/files_bench.py --million       # also: 1M files, files/s and peak RSS

Each tool copies the same source into a fresh target, then runs again on the unchanged tree (a
no-op rescan). ferry runs as a real ``ferry serve`` with its default options (``--ferry-options``
adds some, to compare) and is driven through its HTTP API (:mod:`bench.serving`).

Two caches, each tool taking its turn in every round:

* ``warm``: the source is read into the page cache before each copy;
* ``cold``: ``sync; echo 3 > /proc/sys/vm/drop_caches`` before each copy and each rescan, as a
  migration meets its source (needs root).

Before each copy the previous target is deleted and the disk left to settle (deleting a large
tree on a filesystem mounted with ``discard`` slows the writes that follow), and the VM keeps the
memory its processes free (:func:`bench.machine.held_memory`). Figures are medians
with their ranges (min to max) over the rounds, and ferry's time over each tool's, round by round.
"""

from __future__ import annotations

import argparse
import json
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

from bench.machine import drop_caches, held_memory, settle, spread
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


def run_ferry(server: FerryServer, source: Path, target: Path, options: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Copy ``source`` to ``target`` through ferry's API (an incremental pass if it ran before).

    Returns the seconds from the request to COMPLETED, and the final progress.
    """
    body: dict[str, Any] = {"kind": "files", "source": str(source), "target": str(target)}
    if options:
        body["options"] = options
    seconds, migration = server.copy(f"bench-{target.name}", body)
    return seconds, dict(migration["progress"])


def timed(label: str, action: Callable[[], object]) -> float:
    """Seconds ``action`` took: its own count when it returns one (ferry's), else wall time."""
    started = time.perf_counter()
    result = action()
    seconds = result if isinstance(result, float) else time.perf_counter() - started
    print(f"  {label:<40} {seconds:8.2f} s", flush=True)
    return seconds


def compare(
    server: FerryServer, workdir: Path, source: Path, caches: list[str], rounds: int, options: dict[str, Any]
) -> None:
    tools = {
        "ferry": lambda dst: run_ferry(server, source, dst, options)[0],
        "rsync -a": lambda dst: subprocess.run(["rsync", "-a", f"{source}/", f"{dst}/"], check=True),
        "rclone copy": lambda dst: subprocess.run(
            ["rclone", "copy", "--transfers", "4", "--checkers", "8", "--links", str(source), str(dst)],
            check=True, capture_output=True,
        ),
    }  # fmt: skip
    # Tools take turns in a rotating order, so that a drift of the machine's speed falls on all.
    times: dict[tuple[str, str, str], list[float]] = {}
    names = list(tools)
    for round_number in range(rounds):
        for cache in caches:
            print(f"round {round_number + 1} of {rounds}, {cache} source", flush=True)
            prepare = drop_caches if cache == "cold" else lambda: warm(source)
            for name in names[round_number % len(names) :] + names[: round_number % len(names)]:
                copy, target = tools[name], workdir / f"target-{name.split()[0]}"
                shutil.rmtree(target, ignore_errors=True)
                settle()
                prepare()
                first = timed(f"{name}: copy, {cache}", lambda copy=copy, target=target: copy(target))
                if cache == "cold":
                    drop_caches()
                second = timed(f"{name}: no-op rescan, {cache}", lambda copy=copy, target=target: copy(target))
                times.setdefault((cache, name, "copy"), []).append(first)
                times.setdefault((cache, name, "rescan"), []).append(second)
    print(f"\n{rounds} rounds; seconds as median (min-max); ferry/tool ratios are taken round by round")
    print(f"ferry options: {json.dumps(options) if options else 'the defaults'}")
    for cache in caches:
        print(f"{cache} source:")
        for name in names:
            copy_s, scan_s = times[(cache, name, "copy")], times[(cache, name, "rescan")]
            line = f"  {name:<12} copy {spread(copy_s)}   no-op rescan {spread(scan_s)}"
            if name != "ferry":
                ratio_copy = [f / t for f, t in zip(times[(cache, "ferry", "copy")], copy_s, strict=True)]
                ratio_scan = [f / t for f, t in zip(times[(cache, "ferry", "rescan")], scan_s, strict=True)]
                line += f"   ferry/{name.split()[0]}: copy {spread(ratio_copy)}, rescan {spread(ratio_scan)}"
            print(line, flush=True)


def million(server: FerryServer, workdir: Path, files: int, options: dict[str, Any]) -> None:
    """1M files (directories of 1000), copied then rescanned by a ferry serve; its peak RSS."""
    source, target = workdir / "million", workdir / "million-target"
    if not source.exists():
        print(f"generating {files} files ...", flush=True)
        generate(source, files, max(1, files // 1000), 0)
    shutil.rmtree(target, ignore_errors=True)
    copy_s, copied = run_ferry(server, source, target, options)
    scan_s, scanned = run_ferry(server, source, target, options)
    print(f"  copy {copy_s:.1f} s ({int(copied['filesCopied']) / copy_s:.0f} files/s)")
    print(f"  no-op scan {scan_s:.1f} s ({int(scanned['filesScanned']) / scan_s:.0f} files/s)")
    print(f"  peak RSS of ferry serve: {server.peak_rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="where trees go (default: a temp dir)")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--dirs", type=int, default=300)
    parser.add_argument("--large", type=int, default=8, help="files of 16 MiB")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the comparison")
    parser.add_argument("--cache", choices=["warm", "cold", "both"], default="both")
    parser.add_argument("--ferry-options", type=json.loads, default={}, help='JSON, e.g. \'{"durability": "none"}\'')
    parser.add_argument("--million", action="store_true", help="also the 1M-file run (long)")
    parser.add_argument("--million-files", type=int, default=1_000_000, help="its size, for a shorter try")
    parser.add_argument("--skip-compare", action="store_true", help="only the 1M-file run")
    args = parser.parse_args()
    caches = ["warm", "cold"] if args.cache == "both" else [args.cache]
    if "cold" in caches and os.geteuid() != 0:
        parser.error("a cold source needs root (to drop the page cache); run as root or with --cache warm")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    try:
        with held_memory(), ferry_server([workdir]) as server:
            if not args.skip_compare:
                source = workdir / "source"
                if not source.exists():
                    print(f"generating {args.files} files in {args.dirs} directories and {args.large} x 16 MiB")
                    generate(source, args.files, args.dirs, args.large)
                compare(server, workdir, source, caches, args.rounds, args.ferry_options)
            if args.million:
                million(server, workdir, args.million_files, args.ferry_options)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
