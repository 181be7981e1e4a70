"""One node per SQLite database, and no node that cannot serve takes work."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from app.db.models import CopyJobRow, NodeRow, utcnow
from app.db.session import Database
from tests.cluster.conftest import FERRY
from tests.servers import ROOT, free_port, server_process


def _env(tmp: Path, port: int, **extra: str) -> dict[str, str]:
    return {**os.environ, "FERRY_DATA_DIR": str(tmp / "data"), "FERRY_PORT": str(port), **extra}


def run_ferry(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FERRY), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_second_serve_on_one_sqlite_file_is_refused_naming_the_first(tmp_path: Path) -> None:
    """The second ``ferry serve`` on the same SQLite file exits at once and names the process
    that holds it (a lock on the database file: it dies with its holder, unlike a PID file)."""
    first_env = _env(tmp_path, free_port(), FERRY_NODE_ID="first")
    with server_process([str(FERRY), "serve"], first_env, tmp_path / "first.log") as first:
        second = run_ferry(["serve"], _env(tmp_path, free_port()))
        assert second.returncode == 2
        assert "node first" in second.stderr, second.stderr
        assert f"pid {first.proc.pid}" in second.stderr, second.stderr
        assert first.client.get("/readyz").status_code == 200
    # The holder is gone: the lock went with it, and a new serve starts.
    with server_process([str(FERRY), "serve"], _env(tmp_path, free_port()), tmp_path / "third.log") as third:
        assert third.client.get("/readyz").status_code == 200


def test_a_serve_that_cannot_bind_its_port_takes_no_migration(tmp_path: Path) -> None:
    """A second serve whose port is taken exits before it joins: a RUNNING migration of a dead
    node stays untouched, with no new node registered."""
    database_url = f"sqlite:///{tmp_path / 'data' / 'ferry.db'}"
    (tmp_path / "data").mkdir()
    subprocess.run(
        [str(FERRY), "db", "upgrade"],
        env=_env(tmp_path, 1, FERRY_DATABASE_URL=database_url),
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    database = Database(database_url)
    with database.session() as session:
        session.add(CopyJobRow(id="held", kind="files", source="/s", target="/t", priority="NORMAL", options={},
                               state="RUNNING", progress={}, owner="gone", run_purpose="copy", lease_epoch=3,
                               started_at=utcnow(), created_at=utcnow()))  # fmt: skip
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_ferry(["serve"], _env(tmp_path, port, FERRY_DATABASE_URL=database_url))
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr
    with database.session() as session:
        row = session.get(CopyJobRow, "held")
        assert row is not None
        assert (row.owner, row.lease_epoch) == ("gone", 3)
        assert session.query(NodeRow).count() == 0
    database.dispose()
