"""How fast ``/stats/scannerPoolStats`` answers while ferry copies (issue 11's scenario).

    .venv/bin/python bench/stats_bench.py [--seconds 20] [--rounds 3] [--rate 200] [--load all|disks|tree]

A real ``ferry serve`` runs two disk copies (nbdkit sparse-random, 4 GiB, half data, each into a
new raw file) and a tree copy (20 000 small files) at once, with the default pool; each is
run again (reset, start) as soon as it completes, so the load lasts. A load generator in a process
of its own sends ``--rate`` requests a second to the stats endpoint for ``--seconds``, on a few
keep-alive connections, and reports how many were answered and the latency percentiles, for
``--rounds`` measurements one after another (with their medians and ranges); the same load
against the idle server is the baseline. Before each of ferry's rounds the same client measures
the machine's floor under the same copy load: a server on ferry's HTTP stack (uvicorn, uvloop,
httptools) in a process of its own that only answers fixed bytes, the size of ferry's answer.
What ferry's p99 has above the floor's is ferry's; the floor is this machine's. The client speaks
HTTP on raw sockets, so that little of what it times is its own work; the server's own clock (its
request-duration histogram, from ``/metrics``) says which share of the answers it gave within 5
and 10 ms, the rest of a latency being time spent waiting for a CPU, in either process.
``--load`` runs only the disk copies or only the tree copy, to see which holds the server
back. The nbdkit sources run on this machine, at the server's priority, where a migration's
sources would be on other hosts: they take CPU that ferry's server and helpers then share
(``FERRY_HELPER_NICE`` sets how much the helpers yield).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.disk_bench import nbdkit
from bench.machine import held_memory, spread
from bench.serving import _free_port, ferry_server

WORKERS = 4  #: connections the load generator keeps open


class _Poller:
    """One keep-alive HTTP/1.1 connection that GETs one path, with as little client work as a
    request can have (a raw socket, no HTTP library), so that what is timed is the server."""

    def __init__(self, url: str, path: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.address = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.request = f"GET {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n\r\n".encode()
        self.sock = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def get(self) -> None:
        """One request and its whole answer; OSError on a failure or a status other than 200."""
        try:
            self.sock.sendall(self.request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += self._recv()
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            if not lines[0].startswith(b"HTTP/1.1 200"):
                raise OSError(f"answered {lines[0]!r}")
            length = next(
                int(v) for k, _, v in (line.partition(b":") for line in lines[1:]) if k.lower() == b"content-length"
            )
            while len(body) < length:
                body += self._recv()
        except OSError:
            self.sock.close()
            self.sock = self._connect()
            raise

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise OSError("the server closed the connection")
        return chunk


def _load(url: str, rate: float, seconds: float, out: Any) -> None:
    """In its own process: fire requests on a fixed schedule, never more than one per connection."""
    latencies: list[float] = []
    missed = 0
    per_worker = rate / WORKERS

    def worker(index: int, results: list[float]) -> None:
        nonlocal missed
        poller = _Poller(url, "/stats/scannerPoolStats")
        start = time.perf_counter() + index / rate
        n = 0
        while True:
            due = start + n / per_worker
            if due - start > seconds:
                break
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            elif now - due > 1 / per_worker:
                missed += 1  # the previous answer came too late for this slot
                n += 1
                continue
            began = time.perf_counter()
            try:
                poller.get()
                results.append(time.perf_counter() - began)
            except OSError:
                missed += 1
            n += 1
        poller.sock.close()

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


def _serve_fixed(port: int, body: bytes) -> None:
    """In its own process: the least a server on ferry's HTTP stack can do, answer ``body``."""
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", loop="uvloop", http="httptools")


@contextmanager
def floor_server(body: bytes) -> Iterator[str]:
    """A fixed-answer server (:func:`_serve_fixed`) while the block runs; yields its URL."""
    port = _free_port()
    process = multiprocessing.get_context("spawn").Process(target=_serve_fixed, args=(port, body), daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or not process.is_alive():
                    raise RuntimeError("the floor server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(10)


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


def _stats_buckets(client: httpx.Client) -> dict[str, float]:
    """The server's request-duration histogram for the stats route: count per upper bound."""
    prefix = "ferry_http_request_duration_seconds_bucket{"
    buckets = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix) and 'route="/stats/scannerPoolStats"' in line:
            bound = line.split('le="')[1].split('"')[0]
            buckets[bound] = float(line.rsplit(" ", 1)[1])
    return buckets


def server_side(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Of the answers between two readings, the percentage the server gave within 5 and 10 ms."""
    total = after["+Inf"] - before.get("+Inf", 0)
    return {
        f"server_within_{ms}ms_%": 100 * (after[bound] - before.get(bound, 0)) / total
        for ms, bound in ((5, "0.005"), (10, "0.01"))
    }


def report(label: str, figures: dict[str, float]) -> None:
    print(f"{label}: {json.dumps({k: round(v, 2 if k.endswith('%') else 1) for k, v in figures.items()})}", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--dir", default="/var/tmp", help="where sources and targets go")
    parser.add_argument("--load", choices=("all", "disks", "tree"), default="all", help="which copies run")
    parser.add_argument("--rounds", type=int, default=3, help="measurements under load, one after another")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        stack.enter_context(held_memory())
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
        floor_url = stack.enter_context(floor_server(server.client.get("/stats/scannerPoolStats").content))
        rounds, floors = [], []
        for number in range(args.rounds):
            floors.append(measure(floor_url, args.rate, args.seconds))
            report(f"machine floor, round {number + 1}", floors[-1])
            before = _stats_buckets(server.client)
            figures = measure(url, args.rate, args.seconds) | server_side(before, _stats_buckets(server.client))
            report(f"ferry under copy load, round {number + 1}", figures)
            rounds.append(figures)
        print("over the rounds, median (min-max):")
        for key in ("missed", "p50_ms", "p99_ms", "max_ms", "server_within_10ms_%"):
            print(f"  {key:<22} {spread([r[key] for r in rounds])}")
        for key in ("p50_ms", "p99_ms"):
            print(f"  floor {key:<16} {spread([r[key] for r in floors])}")
        busy.set()
        keeper.join(10)
        print(f"passes run during the load: {_passes}")


if __name__ == "__main__":
    main(sys.argv[1:])
