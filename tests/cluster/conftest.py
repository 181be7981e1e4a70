"""Several real ``ferry serve`` processes on one real PostgreSQL database: a cluster.

Each test gets its own database (cloned from the migrated template) and starts its nodes with a
short node lease (``FERRY_NODE_LEASE``), so takeovers happen within seconds and every test stays
bounded in time. Sources are real nbdkit disks limited per connection, so a copy has a middle to
interrupt; targets are real files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import postgres_database
from tests.disk.conftest import Servers, read_all, require_real
from tests.disk.conftest import servers as disks  # noqa: F401 - the same NBD servers fixture
from tests.servers import ROOT, ServerProcess, free_port

FERRY = ROOT / ".venv" / "bin" / "ferry"
MiB = 1024 * 1024
#: Seconds of silence after which a node is dead, in these tests (the default is 15).
LEASE = 4.0


@pytest.fixture
def pg_url(postgres_template: str) -> Iterator[str]:
    with postgres_database(postgres_template, "ferry_cluster") as url:
        yield url


class Cluster:
    """Nodes started on demand, all killed at the end of the test."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.data = tmp / "data"
        self.data.mkdir(exist_ok=True)
        self.nodes: dict[str, ServerProcess] = {}

    def start(self, node_id: str, **env: str) -> ServerProcess:
        environment = {
            **os.environ,
            "FERRY_DATABASE_URL": self.url,
            "FERRY_DATA_DIR": str(self.data),
            "FERRY_PORT": str(free_port()),
            "FERRY_NODE_ID": node_id,
            "FERRY_NODE_LEASE": str(LEASE),
            "FERRY_DRAIN_TIMEOUT": "10",
            **env,
        }
        node = ServerProcess([str(FERRY), "serve"], environment, self.tmp / f"{node_id}.log")
        self.nodes[node_id] = node
        return node

    def log(self, node_id: str) -> str:
        return (self.tmp / f"{node_id}.log").read_text(errors="replace")

    def alive(self) -> list[ServerProcess]:
        return [node for node in self.nodes.values() if node.proc.poll() is None]

    def api(self) -> httpx.Client:
        return self.alive()[0].client

    def migration(self, job_id: str) -> dict[str, Any]:
        return dict(self.api().get(f"/migrations/{job_id}").json())

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    require_real("nbdkit")
    found = Cluster(pg_url, tmp_path)
    try:
        yield found
    finally:
        found.close()


#: The unthrottled twin of each slow disk, to read what a target must hold.
_REFERENCES: dict[str, str] = {}


def slow_disk(servers: Servers, size_mib: int, seed: int, mb_per_s: int = 2) -> str:
    """A sparse-random disk (the same for the same seed) served at ``mb_per_s`` per connection."""
    args = ("sparse-random", f"{size_mib}M", f"seed={seed}", "percent=50")
    bits = mb_per_s * 8  # nbdkit's rate filter counts bits per second
    uri = servers.nbdkit(*args, f"connection-rate={bits}M", filters=("rate",))
    _REFERENCES[uri] = servers.nbdkit(*args)
    return uri


def same_disk(source: str, target: Path, size_mib: int) -> bool:
    """The target holds exactly the source's bytes (read from its unthrottled twin)."""
    want = hashlib.sha256(read_all(_REFERENCES.get(source, source), size_mib * MiB)).hexdigest()
    return want == hashlib.sha256(target.read_bytes()).hexdigest()
