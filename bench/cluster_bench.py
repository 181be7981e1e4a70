"""Benchmark ferry as a cluster: one pool over 1, 2 and 3 nodes, and a takeover after kill -9.

    .venv/bin/python bench/cluster_bench.py [--size 256M] [--limit 24] [--rate 8]

Twelve disk migrations (nbdkit sparse-random, percent=50, each source limited to ``--rate`` MB/s
per connection) run at once at one pool limit, on 1, 2 and 3 real ``ferry serve`` nodes sharing one
PostgreSQL database (``FERRY_BENCH_DATABASE_URL``, default the local server). Reported: the
aggregate throughput (data bytes copied over the wall time from the first request to the last
COMPLETED), and, with two or more nodes, the time from a kill -9 of the node running the most
migrations to every migration running again on a live node (node lease: the default, 15 s).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db import schema
from app.policy.units import parse_size
from bench.disk_bench import nbdkit
from bench.serving import FERRY, _free_port

MIGRATIONS = 12
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def database(admin_url: str) -> Iterator[str]:
    name = f"ferry_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    schema.upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Node:
    def __init__(self, url: str, node_id: str, roots: Path, log: Path) -> None:
        port = _free_port()
        env = {
            **os.environ,
            "FERRY_DATABASE_URL": url,
            "FERRY_NODE_ID": node_id,
            "FERRY_PORT": str(port),
            "FERRY_DATA_DIR": str(roots),
            "FERRY_LOG_LEVEL": "WARNING",
        }
        self.node_id = node_id
        self.output = log.open("ab")
        self.proc = subprocess.Popen([str(FERRY), "serve"], env=env, stdout=self.output, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{node_id} did not start; see {log}")
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.client.close()
        self.output.close()


def migrations(client: httpx.Client) -> list[dict[str, Any]]:
    return list(client.get("/migrations").json())


def wait_all(client: httpx.Client, timeout: float = 900) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = migrations(client)
        if all(m["state"] in ("COMPLETED", "FAILED", "STOPPED") for m in found):
            failed = [m for m in found if m["state"] != "COMPLETED"]
            if failed:
                raise RuntimeError(f"not completed: {[(m['migrationId'], m['state'], m['error']) for m in failed]}")
            return found
        time.sleep(0.2)
    raise TimeoutError("migrations did not end")


def round_of(n: int, url: str, sources: list[str], work: Path, limit: int, kill: bool) -> dict[str, float]:
    targets = work / f"targets-{n}-{int(kill)}"
    targets.mkdir()
    with ExitStack() as stack:
        nodes = [Node(url, f"bench-{n}-{i}", work, work / f"node-{n}-{i}.log") for i in range(n)]
        for node in nodes:
            stack.callback(node.close)
        api = nodes[0].client
        for job in migrations(api):
            api.delete(f"/migrations/{job['migrationId']}")
        for key, value in (
            ("global.scan.limit", str(limit)),
            ("migration.max.running.migrations", str(MIGRATIONS)),
            ("migration.priority.pool.allocations", f"1%,{100 / MIGRATIONS:.4g}%,100%"),
        ):
            api.put("/configuration/property", params={"key": key, "value": value}).raise_for_status()
        started = time.time()
        for i, source in enumerate(sources):
            body = {"migrationId": f"d{i}", "kind": "disk", "source": source, "target": str(targets / f"d{i}.raw")}
            api.post("/migrations", json=body).raise_for_status()
        result: dict[str, float] = {}
        if kill:
            time.sleep(5)
            held = [m["node"] for m in migrations(api) if m["node"]]
            victim = max(nodes, key=lambda node: held.count(node.node_id))
            survivor = next(node for node in nodes if node is not victim)
            victim.proc.kill()
            killed = time.monotonic()
            while True:
                found = migrations(survivor.client)
                moved = all(m["node"] not in (None, victim.node_id) for m in found if m["state"] == "RUNNING")
                if moved:
                    break
                time.sleep(0.1)
            result["takeover_seconds"] = time.monotonic() - killed
            api = survivor.client
        done = wait_all(api)
        ended = max(datetime.fromisoformat(m["completeTime"]).timestamp() for m in done)
        copied = sum(int(m["progress"]["bytesCopied"]) for m in done)
        result["seconds"] = ended - started
        result["mb_per_s"] = copied / 1e6 / result["seconds"]
    subprocess.run(["rm", "-rf", str(targets)], check=True)
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="256M", help="each disk's size (half of it is data)")
    parser.add_argument("--limit", type=int, default=24, help="global.scan.limit for every round")
    parser.add_argument("--rate", type=int, default=8, help="MB/s each source serves per connection")
    args = parser.parse_args(argv)
    size = parse_size(re.sub(r"([KMGT])$", r"\1iB", args.size))[0]
    admin = os.environ.get("FERRY_BENCH_DATABASE_URL", DEFAULT_URL)
    work = Path(tempfile.mkdtemp(prefix="ferry-cluster-bench-"))
    with ExitStack() as stack:
        url = stack.enter_context(database(admin))
        sources = [
            stack.enter_context(
                nbdkit(
                    work,
                    f"src{i}",
                    "--filter=rate",
                    "sparse-random",
                    str(size),
                    f"seed={i}",
                    "percent=50",
                    f"connection-rate={args.rate * 8}M",  # the rate filter counts bits
                )
            )
            for i in range(MIGRATIONS)
        ]
        print(f"{MIGRATIONS} disks of {args.size} at {args.rate} MB/s per connection, global.scan.limit={args.limit}")
        for n in (1, 2, 3):
            figures = round_of(n, url, sources, work, args.limit, kill=False)
            print(f"{n} node(s): {figures['seconds']:.1f} s, {figures['mb_per_s']:.0f} MB/s in all", flush=True)
        for n in (2, 3):
            figures = round_of(n, url, sources, work, args.limit, kill=True)
            print(
                f"{n} nodes, kill -9 of the busiest after 5 s: every migration running again after "
                f"{figures['takeover_seconds']:.1f} s; all done in {figures['seconds']:.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
