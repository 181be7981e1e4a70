"""How fast ``/stats/scannerPoolStats`` answers while ferry copies (issue 11's scenario).

    .venv/bin/python bench/stats_bench.py [--seconds 20] [--rate 200] [--load all|disks|tree]

A real ``ferry serve`` runs two disk copies (nbdkit sparse-random, 4 GiB, half data, each into a
new raw file) and a tree copy (20 000 small files) at once, with the default pool; each is
run again (reset, start) as soon as it completes, so the load lasts. A load generator in a process
of its own sends ``--rate`` requests a second to the stats endpoint for ``--seconds``, on a few
keep-alive connections, and reports how many were answered and the latency percentiles; the same
load against the idle server is the baseline. ``--load`` runs only the disk copies or only the
tree copy, to see which holds the server back. The nbdkit sources run on this machine, at the
server's priority, where a migration's sources would be on other hosts: they take CPU that ferry's
server and helpers then share (``FERRY_HELPER_NICE`` sets how much the helpers yield).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.disk_bench import nbdkit
from bench.serving import ferry_server

WORKERS = 4  #: connections the load generator keeps open


def _load(url: str, rate: float, seconds: float, out: Any) -> None:
    """In its own process: fire requests on a fixed schedule, never more than one per connection."""
    latencies: list[float] = []
    missed = 0
    per_worker = rate / WORKERS

    def worker(index: int, results: list[float]) -> None:
        nonlocal missed
        with httpx.Client(base_url=url, timeout=5) as client:
            start = time.perf_counter() + index / rate
            n = 0
            while True:
                due = start + n / per_worker
                if due - start > seconds:
                    return
                now = time.perf_counter()
                if now < due:
                    time.sleep(due - now)
                elif now - due > 1 / per_worker:
                    missed += 1  # the previous answer came too late for this slot
                    n += 1
                    continue
                began = time.perf_counter()
                try:
                    client.get("/stats/scannerPoolStats").raise_for_status()
                    results.append(time.perf_counter() - began)
                except httpx.HTTPError:
                    missed += 1
                n += 1

    threads = [threading.Thread(target=worker, args=(i, latencies)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.send({"latencies": latencies, "missed": missed})


def measure(url: str, rate: float, seconds: float) -> dict[str, float]:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(target=_load, args=(url, rate, seconds, sender))
    process.start()
    result = receiver.recv()
    process.join()
    latencies = sorted(result["latencies"])
    if not latencies:
        return {"served": 0, "missed": result["missed"]}
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "served": len(latencies),
        "missed": result["missed"],
        "per_second": len(latencies) / seconds,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


_passes: dict[str, int] = {}


def _keep_busy(url: str, done: threading.Event) -> None:
    """Run every migration again as soon as it completes, until ``done``."""
    with httpx.Client(base_url=url, timeout=30) as client:
        while not done.wait(0.3):
            for migration in client.get("/migrations").json():
                if migration["state"] == "COMPLETED":
                    job_id = migration["migrationId"]
                    _passes[job_id] = _passes.get(job_id, 0) + 1
                    client.post(f"/migrations/{job_id}/reset")
                    client.post(f"/migrations/{job_id}/start")


def tree(root: Path, files: int = 20_000) -> None:
    rng = random.Random(7)
    for i in range(files):
        directory = root / f"d{i % 200:03}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:06}").write_bytes(rng.randbytes(rng.randint(0, 8192)))


def report(label: str, figures: dict[str, float]) -> None:
    print(f"{label}: {json.dumps({k: round(v, 1) for k, v in figures.items()})}", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--dir", default="/var/tmp", help="where sources and targets go")
    parser.add_argument("--load", choices=("all", "disks", "tree"), default="all", help="which copies run")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ferry-stats-bench-", dir=args.dir)))
        server = stack.enter_context(ferry_server([tmp]))
        url = str(server.client.base_url)
        report("idle", measure(url, args.rate, args.seconds / 2))
        bodies: list[dict[str, Any]] = []
        if args.load in ("all", "disks"):
            for i in range(2):
                disk = stack.enter_context(nbdkit(tmp, f"d{i}", "sparse-random", "4G", f"seed={i}", "percent=50"))
                bodies.append({"kind": "disk", "source": disk, "target": str(tmp / f"disk{i}.raw")})
        if args.load in ("all", "tree"):
            tree(tmp / "tree")
            bodies.append({"kind": "files", "source": str(tmp / "tree"), "target": str(tmp / "tree-copy")})
        for i, body in enumerate(bodies):
            server.client.post("/migrations", json={"migrationId": f"load{i}", **body}).raise_for_status()
        busy = threading.Event()
        keeper = threading.Thread(target=_keep_busy, args=(url, busy), daemon=True)
        keeper.start()
        time.sleep(1.0)  # the copies are under way
        report("under copy load", measure(url, args.rate, args.seconds))
        busy.set()
        keeper.join(10)
        print(f"passes run during the load: {_passes}")


if __name__ == "__main__":
    main(sys.argv[1:])
