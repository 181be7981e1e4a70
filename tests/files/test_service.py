"""files migrations through the whole service: the API, a real ``ferry serve`` process, restarts."""

from __future__ import annotations

import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.engines.files import FilesEngine
from tests.api.conftest import settings_for
from tests.files.conftest import assert_same_tree, serve_env, temp_files, write
from tests.servers import LiveServer, ServerProcess, live_server
from tests.waiting import wait_until

FERRY = Path(sys.executable).parent / "ferry"


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """ferry over HTTP with the real files engine; allowed root: tmp_path/data."""
    with live_server(settings_for(database_url, tmp_path), {"files": FilesEngine()}) as server:
        yield server


def make_tree(root: Path, files: int = 40, big: int = 0) -> None:
    for n in range(files):
        write(
            root / f"d{n % 5}" / f"sub {n % 3}" / f"file-{n}.txt", f"content {n}\n" * (n + 1), mtime=1_600_000_000 + n
        )
    for n in range(big):
        write(root / "big" / f"blob{n}.bin", os.urandom(256 * 1024) * 8)
    os.symlink("d0/missing", root / "dangling")
    (root / "empty dir").mkdir()
    write(root / "ünïcode name.txt", "é")


def test_copy_verify_and_rescan_over_http(api: LiveServer, tmp_path: Path) -> None:
    """A files migration made by POST copies the tree exactly; verify reports it clean, then
    finds what was changed behind ferry's back; addPendingRegion rescans one directory."""
    data = tmp_path / "data"
    make_tree(data / "src")
    body = {"migrationId": "tree", "kind": "files", "source": str(data / "src"), "target": str(data / "dst")}
    assert api.client.post("/migrations", json=body).status_code == 201
    done = api.wait_for("tree", {"COMPLETED"})
    assert done["progress"]["filesCopied"] == 42  # 41 files and a symlink
    assert_same_tree(data / "src", data / "dst")
    assert api.client.post("/migrations/tree/verify").status_code == 200
    report = _wait_verification(api, "tree")
    assert report["counts"]["discrepancies"] == 0
    (data / "dst" / "d1" / "sub 1" / "file-1.txt").unlink()
    (data / "dst" / "extra.txt").write_text("x")
    api.client.post("/migrations/tree/verify")
    report = _wait_verification(api, "tree")
    assert sorted((d["type"], d["path"]) for d in report["discrepancies"]) == [
        ("MISSING_ON_SOURCE", "extra.txt"),
        ("MISSING_ON_TARGET", "d1/sub 1/file-1.txt"),
    ]
    response = api.client.post("/migrations/tree/addPendingRegion", params={"path": "/d1"})
    assert response.status_code == 200
    assert api.client.post("/migrations/tree/addPendingRegion", params={"path": "/../etc"}).status_code == 422


def _wait_verification(api: LiveServer, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        report = api.client.get(f"/migrations/{job_id}/verification").json()
        if report.get("status") in ("COMPLETED", "FAILED"):
            assert report["status"] == "COMPLETED", report
            return dict(report)
        assert time.monotonic() < deadline, report
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("source", "target", "field"),
    [
        ("{data}/missing", "{data}/dst", "source"),
        ("/etc", "{data}/dst", "source"),
        ("{data}/src", "/tmp/elsewhere", "target"),
        ("{data}/src", "{data}/src/inside", "target"),
        ("{data}/src", "{data}/src", "target"),
        ("src", "{data}/dst", "source"),
    ],
)
def test_bad_paths_are_refused_at_creation(
    api: LiveServer, tmp_path: Path, source: str, target: str, field: str
) -> None:
    """Missing, outside the allowed roots, nested or relative: a 422 naming the field, nothing created."""
    data = tmp_path / "data"
    (data / "src").mkdir(parents=True)
    body = {"kind": "files", "source": source.format(data=data), "target": target.format(data=data)}
    response = api.client.post("/migrations", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(field)
    assert api.client.get("/migrations").json() == []


def landed(root: Path) -> dict[str, int]:
    """Inode of every regular file under its real name: a file copied again gets a new one."""
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if not path.is_symlink() and path.is_file() and str(path) not in temp_files(path.parent):
                found[str(path.relative_to(root))] = path.lstat().st_ino
    return found


@pytest.mark.slow
def test_sigterm_of_ferry_serve_resumes_exactly(database_url: str, tmp_path: Path) -> None:
    """SIGTERM a real ferry serve mid-copy and start it again: the migration completes with an
    exact copy, no half file ever sits under a real name, no temporary is left, and files that had
    landed before the interruption are not copied again (the drain synced them: a clean stop).
    kill -9 is test_durability's: after it, what the last checkpoint had not synced is redone."""
    data = tmp_path / "data"
    make_tree(data / "src", files=300, big=3)
    env = serve_env(database_url, data, "files-restart", FERRY_DRAIN_TIMEOUT="20")
    server = ServerProcess([str(FERRY), "serve"], env, tmp_path / "serve.log")
    try:
        # Slow the copy down so there is a middle to interrupt.
        server.client.put("/configuration/property", params={"key": "global.bandwidth.limit", "value": "4MB"})
        body = {"migrationId": "big", "kind": "files", "source": str(data / "src"), "target": str(data / "dst")}
        assert server.client.post("/migrations", json=body).status_code == 201
        server.wait_for("big", lambda m: m["progress"].get("filesCopied", 0) >= 40)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
    finally:
        server.close()
    for rel, _ in landed(data / "dst").items():
        source = data / "src" / rel
        assert source.read_bytes() == (data / "dst" / rel).read_bytes(), f"half file under its real name: {rel}"
    before = landed(data / "dst")
    server = ServerProcess([str(FERRY), "serve"], env, tmp_path / "serve.log")
    try:
        server.client.delete("/configuration/property", params={"key": "global.bandwidth.limit"})
        server.wait_for("big", lambda m: m["state"] == "COMPLETED")
    finally:
        server.close()
    assert_same_tree(data / "src", data / "dst")
    assert temp_files(data / "dst") == []
    after = landed(data / "dst")
    recopied = [rel for rel, ino in before.items() if after.get(rel) != ino]
    assert recopied == [], f"copied again after the restart: {recopied[:5]}"


def test_special_files_are_recreated_as_rsync_does(api: LiveServer, tmp_path: Path) -> None:
    """A FIFO, a unix socket and a char device are recreated on the target with the same kind,
    mode, rdev and mtime, counted in filesCopied, and a rescan skips them."""

    data = tmp_path / "data"
    write(data / "src" / "ok.txt", "fine")
    os.mkfifo(data / "src" / "pipe", 0o640)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(data / "src" / "sock"))
    os.mknod(data / "src" / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    body = {"migrationId": "odd", "kind": "files", "source": str(data / "src"), "target": str(data / "dst")}
    assert api.client.post("/migrations", json=body).status_code == 201
    done = api.wait_for("odd", {"COMPLETED"})
    sock.close()
    assert done["progress"]["filesFailed"] == 0
    assert done["progress"]["filesCopied"] == 4
    for name in ("pipe", "sock", "null"):
        a, b = os.lstat(data / "src" / name), os.lstat(data / "dst" / name)
        assert (a.st_mode, a.st_rdev, a.st_mtime_ns) == (b.st_mode, b.st_rdev, b.st_mtime_ns), name
    assert (data / "dst" / "ok.txt").read_text() == "fine"
    before = {name: os.lstat(data / "dst" / name).st_ino for name in ("pipe", "sock", "null")}
    assert api.client.post("/migrations/odd/start").status_code == 200  # an incremental pass
    api.wait_for("odd", {"COMPLETED"})
    assert wait_until(lambda: api.client.get("/migrations/odd").json()["node"] is None, 20, "the pass settled")
    again = api.client.get("/migrations/odd").json()
    assert (again["progress"]["filesCopied"], again["progress"]["filesSkipped"]) == (0, 4)
    assert {name: os.lstat(data / "dst" / name).st_ino for name in before} == before


@pytest.mark.parametrize("field", ["source", "target"])
def test_nul_and_odd_paths_are_422_not_500(api: LiveServer, tmp_path: Path, field: str) -> None:
    """A NUL byte, whitespace or a non-path in either path is a 422 naming the field."""
    data = tmp_path / "data"
    (data / "src").mkdir(parents=True)
    for odd in (f"{data}/a\x00b", "   ", "nbd://x/y"):
        body = {"kind": "files", "source": str(data / "src"), "target": str(data / "dst"), field: odd}
        response = api.client.post("/migrations", json=body)
        assert response.status_code == 422, (odd, response.text)
        assert response.json()["detail"].startswith(field)


def test_deleting_a_stopped_migration_removes_its_partial_file(api: LiveServer, tmp_path: Path) -> None:
    """A stop part way through a large file keeps its temporary (a resume continues mid-file);
    deleting the stopped migration removes it, so no half file outlives the migration."""
    src, dst = tmp_path / "data" / "src", tmp_path / "data" / "dst"
    write(src / "keep.txt", "landed")
    write(src / "big" / "disk.img", os.urandom(80 * 1024 * 1024))  # three ranges of 32 MiB
    client = api.client
    client.put("/configuration/property", params={"key": "global.bandwidth.limit", "value": "16MB"})
    # One thread: the ranges go one after another, so the stop after the first one finds the
    # second in flight (three at once all finished at about the same time, before the stop).
    client.put("/configuration/property", params={"key": "global.scan.limit", "value": "1"})
    body = {"migrationId": "half", "kind": "files", "source": str(src), "target": str(dst)}
    assert client.post("/migrations", json=body).status_code == 201
    deadline = time.monotonic() + 30
    while not temp_files(dst) or client.get("/migrations/half").json()["progress"].get("bytesCopied", 0) < 33_000_000:
        assert time.monotonic() < deadline, "no range of the large file landed in its temporary"
        time.sleep(0.1)
    assert client.post("/migrations/half/stop").status_code == 200
    api.wait_for("half", {"STOPPED"})
    wait_until(lambda: client.get("/migrations/half").json()["node"] is None, 20, "the node let go of it")
    assert temp_files(dst), "the partial file is kept while the migration may resume"
    assert client.delete("/migrations/half").status_code == 204
    assert temp_files(dst) == []
    assert (dst / "keep.txt").read_text() == "landed"


def test_a_stop_before_any_range_landed_leaves_nothing_after_delete(api: LiveServer, tmp_path: Path) -> None:
    """Stopped while the first range of its only large file is still being written (no range
    finished, so no range recorded yet): the cut range counts as interrupted in
    ferry_units_total, not failed, and DELETE leaves no temporary of ferry's in the target."""
    src, dst = tmp_path / "data" / "src", tmp_path / "data" / "dst"
    write(src / "big" / "disk.img", os.urandom(80 * 1024 * 1024))  # three ranges of 32 MiB
    client = api.client
    client.put("/configuration/property", params={"key": "global.bandwidth.limit", "value": "8MB"})
    client.put("/configuration/property", params={"key": "global.scan.limit", "value": "1"})
    body = {"migrationId": "early", "kind": "files", "source": str(src), "target": str(dst)}
    assert client.post("/migrations", json=body).status_code == 201
    wait_until(lambda: temp_files(dst), 30, "the first range writing its temporary")
    assert client.get("/migrations/early").json()["progress"].get("bytesCopied", 0) < 32 * 1024 * 1024
    assert client.post("/migrations/early/stop").status_code == 200
    api.wait_for("early", {"STOPPED"})
    wait_until(lambda: client.get("/migrations/early").json()["node"] is None, 20, "the node let go of it")
    metrics = client.get("/metrics").text
    assert 'ferry_units_total{kind="files",outcome="interrupted",unit="range"}' in metrics, metrics
    assert 'outcome="failed",unit="range"' not in metrics
    assert client.delete("/migrations/early").status_code == 204
    assert temp_files(dst) == []


def test_units_take_about_a_second_on_a_slow_link(api: LiveServer, tmp_path: Path) -> None:
    """SPEC 4: units are sized to the link's speed. At 8 MB/s shared by two threads, a 24 MiB
    file (one 3 s unit when files up to 32 MiB were copied whole) is copied by ranges cut as
    workers take them, each to about half a second at the speed measured so far, and so is a
    second file: no unit takes more than 2.5 s, so a smaller grant holds within 2 s."""
    src, dst = tmp_path / "data" / "src", tmp_path / "data" / "dst"
    write(src / "a" / "first.img", os.urandom(24 * 1024 * 1024))
    write(src / "a" / "b" / "c" / "later.img", os.urandom(6 * 1024 * 1024))
    client = api.client
    client.put("/configuration/property", params={"key": "global.bandwidth.limit", "value": "8MB"})
    client.put("/configuration/property", params={"key": "global.scan.limit", "value": "2"})
    body = {"migrationId": "paced", "kind": "files", "source": str(src), "target": str(dst)}
    assert client.post("/migrations", json=body).status_code == 201
    api.wait_for("paced", {"COMPLETED"}, timeout=30)
    assert_same_tree(src, dst)
    metrics = client.get("/metrics").text

    def count(unit: str, le: str) -> float:
        name = f'ferry_unit_duration_seconds_bucket{{kind="files",le="{le}",unit="{unit}"}} '
        lines = [line for line in metrics.splitlines() if line.startswith(name)]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    assert count("range", "+Inf") >= 8, "the files were not cut into ranges"
    for unit in ("range", "copy", "list"):
        assert count(unit, "2.5") == count(unit, "+Inf"), f"a {unit} unit took more than 2.5 s"
