"""ferry as a cluster: several real ``ferry serve`` nodes on one PostgreSQL act as one service.

Every test runs real processes over real HTTP, real nbdkit sources limited per connection, and
real file targets, and is bounded in time (the node lease here is 4 s; the default is 15).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.db import leading
from app.db.ledger import INBOX
from app.db.models import CopyJobRow, WorkItemRow, utcnow
from app.db.nodes import NodeRegistry
from app.db.session import Database
from app.policy.properties import DEFAULT_CONFIG
from tests.cluster.conftest import LEASE, Cluster, Servers, same_disk, slow_disk
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.nbd, pytest.mark.timeout(180)]

SIZE = 16  #: MiB per disk (half of it data)
BIG = 64  #: MiB of the disks that must still be copying when a node goes


def create_disk(cluster: Cluster, node: int, job_id: str, source: str, **extra: Any) -> Path:
    target = cluster.data / f"{job_id}.raw"
    body = {"migrationId": job_id, "kind": "disk", "source": source, "target": str(target), **extra}
    response = list(cluster.nodes.values())[node].client.post("/migrations", json=body)
    assert response.status_code == 201, response.text
    return target


def set_property(cluster: Cluster, key: str, value: str) -> None:
    response = cluster.api().put("/configuration/property", params={"key": key, "value": value})
    assert response.status_code == 200, response.text


def local_active(cluster: Cluster) -> dict[str, int]:
    """Threads at work on each node, each read from that node itself (its own runs)."""
    found = {}
    for node_id, node in cluster.nodes.items():
        if node.proc.poll() is None:
            stats = node.client.get("/stats/scannerPoolStats").json()
            found[node_id] = sum(m["active"] for m in stats["migrations"] if m["node"] == node_id)
    return found


def test_one_pool_across_nodes_never_exceeds_the_limit(cluster: Cluster, disks: Servers) -> None:
    """Four disk migrations on three nodes: they spread over the nodes, every node lists the
    cluster's nodes, and the threads at work, summed over what each node reports of itself, never
    exceed ``global.scan.limit`` — also while the limit shrinks from 6 to 2."""
    for name in ("a", "b", "c"):
        cluster.start(name)
    set_property(cluster, "global.scan.limit", "6")
    set_property(cluster, "migration.priority.pool.allocations", "50%,50%,50%")
    # 4 x 16 MiB of data at 1 MB/s per connection: at 6 threads, more than the 6 s sampled below
    # (each connection starts with a 2 s burst: nbdkit's rate filter's default burstiness).
    sources = {f"m{i}": slow_disk(disks, 2 * SIZE, seed=i, mb_per_s=1) for i in range(4)}
    targets = {job: create_disk(cluster, i % 3, job, source) for i, (job, source) in enumerate(sources.items())}
    wait_until(lambda: len({cluster.migration(j)["node"] for j in sources} - {None}) >= 2, 20, "placed on 2+ nodes")
    nodes = cluster.api().get("/nodes").json()
    assert sorted(n["nodeId"] for n in nodes) == ["a", "b", "c"]
    # Sample for 6 s at least, and on until the runs have opened and taken up their grants (a
    # loaded machine can take longer to open four NBD connections per node).
    peak, started = 0, time.monotonic()
    while time.monotonic() - started < 6 or (peak == 0 and time.monotonic() - started < 30):
        peak = max(peak, sum(local_active(cluster).values()))
        assert peak <= 6, f"{peak} threads at work with global.scan.limit=6"
    assert peak >= 1, "the migrations were at work"
    set_property(cluster, "global.scan.limit", "2")
    time.sleep(3.0)  # units in flight finish within about a second; then the new limit holds
    for _ in range(40):
        assert sum(local_active(cluster).values()) <= 2
    cluster.api().delete("/configuration/property", params={"key": "global.scan.limit"})
    cluster.api().delete("/configuration/property", params={"key": "migration.priority.pool.allocations"})
    for job, target in targets.items():
        wait_until(lambda job=job: cluster.migration(job)["state"] == "COMPLETED", 90, f"{job} completed")
        assert same_disk(sources[job], target, 2 * SIZE), job
    copied = sum(cluster.migration(job)["progress"]["bytesCopied"] for job in sources)
    for node_id, node in cluster.nodes.items():  # any node describes the whole cluster, once
        # it has read the others' last progress (they save it every few seconds)

        def counted(node: Any = node) -> bool:
            return bool(node.client.get("/stats/throughputSummary").json()["windows"][-1]["bytes"] >= copied * 0.99)

        wait_until(counted, 15, f"{node_id} counting every node's bytes")
        metrics = node.client.get("/metrics").text
        assert all(f'ferry_node_heartbeat_age_seconds{{node="{other}"}}' in metrics for other in cluster.nodes)


def test_a_stop_sent_to_one_node_stops_the_copy_on_another(cluster: Cluster, disks: Servers) -> None:
    """An action takes effect where the migration runs: stop on node a, the copy on b stops."""
    a, b = cluster.start("a"), cluster.start("b")
    create_disk(cluster, 1, "far", slow_disk(disks, 4 * SIZE, seed=7, mb_per_s=4))
    running = wait_until(lambda: (m := cluster.migration("far"))["pool"]["active"] > 0 and m, 20, "running")
    other = a if running["node"] == "b" else b
    stopped = other.client.post("/migrations/far/stop").json()
    assert stopped["state"] == "STOPPED"
    assert stopped["pool"]["granted"] == 0, "a stopping run is granted nothing"
    owner = cluster.nodes[running["node"]]

    def granted_on_owner() -> int:
        stats = owner.client.get("/stats/scannerPoolStats").json()
        return sum(m["granted"] for m in stats["migrations"] if m["migrationId"] == "far")

    wait_until(lambda: granted_on_owner() == 0, 1.5, "the owner stopped handing out units within a second")
    # Units in flight finish (a chunk at 1 MB/s takes up to 4 s), then the owner lets go.
    wait_until(lambda: owner.migration("far")["node"] is None, 20, "the owner let go")
    assert owner.migration("far")["pool"]["active"] == 0


def test_kill_9_of_a_node_hands_its_migrations_to_the_others(cluster: Cluster, disks: Servers) -> None:
    """kill -9 of a node mid-copy: within 30 s its migrations run on the other node, from their
    checkpoints, and every target ends exact."""
    cluster.start("a")
    cluster.start("b")
    sources = {job: slow_disk(disks, BIG, seed=i + 10, mb_per_s=1) for i, job in enumerate(("k1", "k2"))}
    targets = {job: create_disk(cluster, 0, job, source) for job, source in sources.items()}
    wait_until(lambda: all(cluster.migration(j)["progress"]["bytesCopied"] > 2 * 1024**2 for j in sources), 30)
    dead = cluster.migration("k1")["node"]
    victim = cluster.nodes[dead]
    b = next(node for node in cluster.nodes.values() if node is not victim)
    time.sleep(2.5)  # a checkpoint lands (every 2 s)
    theirs = {job: b.migration(job)["progress"]["bytesCopied"] for job in sources if b.migration(job)["node"] == dead}
    victim.proc.kill()
    killed = time.monotonic()

    def taken_over(job: str) -> bool:
        disks.revive()  # nbdkit 1.32 can abort when a client vanishes mid-request; restart it as an operator would
        found = b.migration(job)
        return found["node"] not in (None, dead) or found["state"] == "COMPLETED"

    for job in theirs:
        wait_until(lambda job=job: taken_over(job), 30, f"{job} taken over")
    assert time.monotonic() - killed < 30
    for job, before in theirs.items():
        resumed = b.migration(job)["progress"]["bytesCopied"]
        assert resumed > 0, "continued from its checkpoint, not from zero"
        assert resumed >= before - 8 * 1024**2, "reread at most what was in flight and unsaved"
    for job, target in targets.items():
        assert wait_until(lambda job=job: _ended(disks, b, job), 90, f"{job} ended")["state"] == "COMPLETED"
        assert same_disk(sources[job], target, BIG), job


def copying_on_a(cluster: Cluster, disks: Servers, job_id: str, seed: int) -> tuple[Any, Any, str, Path]:
    """Node a copying a slow disk part way, and node b started beside it: (a, b, source, target)."""
    a = cluster.start("a")
    source = slow_disk(disks, BIG, seed=seed, mb_per_s=1)
    target = create_disk(cluster, 0, job_id, source)
    wait_until(lambda: a.migration(job_id)["progress"]["bytesCopied"] > 2 * 1024**2, 30, "copying")
    return a, cluster.start("b"), source, target


def test_sigterm_hands_migrations_over_at_once(cluster: Cluster, disks: Servers) -> None:
    """SIGTERM drains the node and lets go of its migrations: the other node runs them well
    before the node lease could have run out, and they complete exactly, never FAILED."""
    a, b, source, target = copying_on_a(cluster, disks, "term", seed=21)
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(30) == 0
    stopped = time.monotonic()
    wait_until(lambda: b.migration("term")["node"] == "b", LEASE, "taken over before the lease ran out")
    assert time.monotonic() - stopped < LEASE
    done = wait_until(lambda: _ended(disks, b, "term"), 90, "term ended")
    assert done["state"] == "COMPLETED", done
    assert same_disk(source, target, BIG)


def test_a_paused_node_stops_and_its_late_writes_are_refused(cluster: Cluster, disks: Servers) -> None:
    """SIGSTOP the running node past its lease: the other node takes over; SIGCONT: the paused
    node notices it lost the lease, stops its run and writes nothing; the target is exact and the
    migration completes once."""
    a, b, source, target = copying_on_a(cluster, disks, "paused", seed=31)
    a.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: b.migration("paused")["node"] == "b", LEASE * 3, "taken over from the paused node")
    finally:
        a.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: "lease_lost" in cluster.log("a") or "node_fenced" in cluster.log("a"), 10, "a noticed")
    done = wait_until(lambda: _ended(disks, b, "paused"), 90, "paused ended")
    assert done["state"] == "COMPLETED", done
    assert same_disk(source, target, BIG)
    database = Database(cluster.url)
    with database.session() as session:
        row = session.get(CopyJobRow, "paused")
        assert row is not None
        assert row.passes == 1, "completed once"
    database.dispose()
    log_a = cluster.log("a")
    assert '"recorded": true' not in log_a.split("lease_lost")[-1], "the paused node recorded nothing after"


def test_two_leaders_racing_to_admit_admit_once(pg_url: str) -> None:
    """Race: two nodes run the leader's round at the same instant with one SCHEDULED migration
    and ``max.running.migrations=1``. Exactly one node leads and the migration is admitted once,
    to one node; the other round changes nothing."""
    database = Database(pg_url)
    with database.session() as session:
        for job_id in ("first", "second"):
            session.add(
                CopyJobRow(
                    id=job_id,
                    kind="disk",
                    source="nbd://x",
                    target="/t",
                    priority="NORMAL",
                    options={},
                    state="SCHEDULED",
                    progress={},
                    created_at=utcnow(),
                )
            )
    registries = [NodeRegistry(database, name, 15.0) for name in ("x", "y")]
    for registry in registries:
        registry.register()
    barrier = threading.Barrier(2)
    outcomes: list[tuple[int | None, dict[str, str]]] = []

    def lead(registry: NodeRegistry) -> None:
        barrier.wait()
        epoch, report = leading.lead(database, registry, None, timedelta(seconds=5), DEFAULT_CONFIG.pool, 1)
        outcomes.append((epoch, report.admitted))

    threads = [threading.Thread(target=lead, args=(registry,)) for registry in registries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    leaders = [epoch for epoch, _ in outcomes if epoch is not None]
    assert len(leaders) == 1
    admitted = [report for _, report in outcomes if report]
    assert admitted == [{"first": admitted[0]["first"]}]
    with database.session() as session:
        states = {row.id: (row.state, row.owner) for row in session.query(CopyJobRow)}
    assert states["first"][0] == "RUNNING"
    assert states["first"][1] in ("x", "y")
    assert states["second"] == ("SCHEDULED", None)
    database.dispose()


def _id(cluster: Cluster, node: Any) -> str:
    return next(name for name, found in cluster.nodes.items() if found is node)


def _ended(disks: Servers, node: Any, job_id: str) -> dict[str, Any] | None:
    """The migration once it ended; meanwhile restart any nbdkit that aborted under a vanished client."""
    disks.revive()
    found = node.migration(job_id)
    return found if found["state"] in ("COMPLETED", "FAILED") else None


def test_a_rescan_asked_on_one_node_reaches_the_copy_on_another(cluster: Cluster) -> None:
    """addPendingRegion sent to the node that does not run the migration reaches the one that
    does: a file added to an already listed directory is copied in the same pass."""
    a = cluster.start("a")
    # In force on both nodes before the copy starts: b reads it when it starts (a node running
    # the copy at full speed before its next reload of the properties ends the pass at once).
    set_property(cluster, "global.bandwidth.limit", "2MB")
    b = cluster.start("b")
    source, target = cluster.data / "src", cluster.data / "dst"
    (source / "early").mkdir(parents=True)
    (source / "early" / "first.txt").write_text("listed first")
    deep = source / "late" / "deeper" / "still"
    deep.mkdir(parents=True)
    # 50 MB at 2 MB/s, found two listings after early's file: copied after it, and still going
    # when early's file lands even if its helper (at a lower priority) comes late on a busy
    # machine (seen once in CI with 25 MB). The limit goes once the rescan is taken.
    for i in range(12):
        (deep / f"blob{i}.bin").write_bytes(os.urandom(4 * 1024**2))
    body = {"migrationId": "tree", "kind": "files", "source": str(source), "target": str(target)}
    assert a.client.post("/migrations", json=body).status_code == 201
    wait_until((target / "early" / "first.txt").exists, 30, "the early directory copied")
    (source / "early" / "added.txt").write_text("added after its directory was listed")
    running_on = cluster.migration("tree")["node"]
    other = a if running_on == "b" else b
    asked = other.client.post("/migrations/tree/addPendingRegion", params={"path": "/early"})
    assert asked.status_code == 200
    assert asked.json()["state"] == "RUNNING", "the pass ended before the rescan was asked: no race tested"
    wait_until(lambda: not _posted(cluster.url), 10, "the running node took the request")
    cluster.api().delete("/configuration/property", params={"key": "global.bandwidth.limit"})
    done = wait_until(lambda: (m := cluster.migration("tree"))["state"] in ("COMPLETED", "FAILED") and m, 60)
    assert done["state"] == "COMPLETED", done
    assert (target / "early" / "added.txt").read_text() == "added after its directory was listed"


def _posted(url: str) -> int:
    """Rescan requests still waiting in jobs' inboxes for their nodes."""
    database = Database(url)
    try:
        with database.session() as session:
            return session.query(WorkItemRow).filter(WorkItemRow.bucket == INBOX).count()
    finally:
        database.dispose()
