"""Durability ``checkpoint`` (the default): a checkpoint records files as done only once a sync
of the target made them durable, and a restart after an unclean stop copies again what the last
checkpoint's sync may not have covered."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.db.models import CopyJobRow
from app.db.session import Database
from app.engines.base import InvalidField
from app.engines.files import FilesEngine
from app.engines.files.durable import CLOCK_SLACK_NS
from app.engines.files.options import Durability, parse_options
from app.engines.files.store import ACTIVE, META, PENDING, SPILL, Ops, Store
from app.pool.run import Outcome
from tests.servers import ServerProcess

from .conftest import TEST_TUNING, Harness, assert_same_tree, serve_env, write

FERRY = Path(sys.executable).parent / "ferry"


def landed(src: Path, dst: Path) -> set[str]:
    """Source files whose copy sits under its real name with the whole content."""
    found = set()
    for dirpath, _, names in os.walk(src):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            copy = dst / rel
            if copy.is_file() and copy.read_bytes() == (src / rel).read_bytes():
                found.add(rel)
    return found


def test_a_checkpoint_records_files_as_done_only_after_the_sync(
    harness: Harness, src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Race covered: a file landing between the drain of finished work and the write must not
    be recorded unsynced. Our sync (the engine's seam) notes which files had landed when it ran;
    every checkpoint write that records work is preceded by a sync, and every directory the
    database shows as done (listed, no longer pending or active) had all its files landed at the
    last sync before that write."""
    for d in range(6):
        for f in range(8):
            write(src / f"d{d}" / f"f{f}", os.urandom(10_000))
    syncs: list[tuple[Path, set[str]]] = []
    harness.engine = FilesEngine(TEST_TUNING, sync=lambda target: syncs.append((target, landed(src, dst))))
    seen: set[str] = set()
    checked: list[str] = []
    violations: list[str] = []
    writes = 0
    real_apply = Store.apply

    def apply(self: Store, ops: Ops) -> None:
        # Failures are collected, not raised: the run logs and retries a checkpoint that raises.
        nonlocal writes
        records_work = any(key != (META, "state") for key in ops)
        real_apply(self, ops)
        if records_work:
            writes += 1
            if len(syncs) < writes:
                violations.append(f"write {writes} recorded work after only {len(syncs)} syncs")
        rows = {key for bucket in (PENDING, ACTIVE, SPILL) for key in self.load(bucket)}
        seen.update(rows)
        at_sync = syncs[-1][1] if syncs else set()
        for region in seen - rows:
            files = [f"{region}/f{f}" for f in range(8)] if region else []
            if not all(rel in at_sync for rel in files):
                violations.append(f"{region} recorded done before its files were synced")
            checked.append(region)

    monkeypatch.setattr(Store, "apply", apply)
    harness.limiter.set_rate(300_000)
    result = harness.run(harness.job(src, dst))
    assert result.outcome is Outcome.COMPLETED, result.error
    assert_same_tree(src, dst)
    assert violations == []
    assert {target for target, _ in syncs} == {dst}
    assert writes >= 2, "the copy never wrote a checkpoint while running"
    assert {f"d{d}" for d in range(6)} <= set(checked)


def test_a_pass_that_changes_nothing_syncs_nothing(harness: Harness, src: Path, dst: Path) -> None:
    """syncfs flushes the whole filesystem, other writers' data too: a no-op rescan must not pay
    for it. A pass that changes one file syncs before it completes."""
    for d in range(4):
        write(src / f"d{d}" / "f", os.urandom(1000))
    syncs: list[Path] = []
    harness.engine = FilesEngine(TEST_TUNING, sync=syncs.append)
    job = harness.job(src, dst)
    assert harness.run(job).outcome is Outcome.COMPLETED
    assert syncs
    syncs.clear()
    assert harness.run(job, incremental=True).outcome is Outcome.COMPLETED
    assert syncs == []
    write(src / "d2" / "f", os.urandom(1000))
    assert harness.run(job, incremental=True).outcome is Outcome.COMPLETED
    assert syncs
    assert_same_tree(src, dst)


def test_durability_values_are_validated() -> None:
    """``checkpoint`` is the default; the three values are accepted in any case; any other is
    refused naming the option."""
    assert parse_options({}).durability is Durability.CHECKPOINT
    for value, expected in (
        ("FILE", Durability.FILE),
        ("None", Durability.NONE),
        ("Checkpoint", Durability.CHECKPOINT),
    ):
        assert parse_options({"durability": value}).durability is expected
    with pytest.raises(InvalidField, match=r"options\.durability.*checkpoint, file, none"):
        parse_options({"durability": "fsync"})


def _durable_state(database_url: str, job_id: str) -> dict[str, Any] | None:
    db = Database(database_url)
    try:
        with db.session() as session:
            saved = session.scalar(select(CopyJobRow.checkpoint).where(CopyJobRow.id == job_id))
        state = Store(db, job_id).load(META).get("state")
    finally:
        db.dispose()
    if saved is None or not isinstance(state, dict) or not isinstance(state.get("durable"), dict):
        return None
    durable: dict[str, Any] = state["durable"]
    return durable


def _landed_after_last_sync(database_url: str, target: Path) -> bool:
    """A durable checkpoint was written, a file landed well before its sync and one after it."""
    durable = _durable_state(database_url, "cut")
    if durable is None:
        return False
    ctimes = [path.stat().st_ctime_ns for path in target.rglob("f*")]
    synced_at = durable["syncedAt"]
    return min(ctimes) < synced_at - CLOCK_SLACK_NS and max(ctimes) > synced_at


@pytest.mark.slow
def test_kill_9_then_a_power_cut_copies_again_what_the_last_sync_did_not_cover(
    database_url: str, tmp_path: Path
) -> None:
    """kill -9 of a real ferry serve mid-copy (no half file is left under a real name); then the
    damage a power cut may do to files that
    landed after the last checkpoint's sync (their data never written back: the right size and
    mtime, zeroes inside). The restart copies those again and ends with an exact target, and
    files that landed before that sync (minus the clock slack) are not copied again."""
    data = tmp_path / "data"
    for d in range(20):
        for f in range(30):
            write(data / "src" / f"d{d:02}" / f"f{f:02}", os.urandom(20_000), mtime=1_600_000_000 + f)
    env = serve_env(database_url, data, "files-power-cut")
    server = ServerProcess([str(FERRY), "serve"], env, tmp_path / "serve.log")
    try:
        server.client.put("/configuration/property", params={"key": "global.bandwidth.limit", "value": "2MB"})
        body = {"migrationId": "cut", "kind": "files", "source": str(data / "src"), "target": str(data / "dst")}
        assert server.client.post("/migrations", json=body).status_code == 201
        server.wait_for("cut", lambda m: m["progress"].get("filesCopied", 0) >= 150)
        deadline = time.monotonic() + 30
        while not _landed_after_last_sync(database_url, data / "dst"):
            assert time.monotonic() < deadline, "no file landed after a durable checkpoint"
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)
        assert server.proc.wait(30) == -signal.SIGKILL
    finally:
        server.close()
    durable = _durable_state(database_url, "cut")
    assert durable is not None
    assert durable["clean"] is False
    synced_at = durable["syncedAt"]
    for path in (data / "dst").rglob("f*"):
        assert path.read_bytes() == (data / "src" / path.relative_to(data / "dst")).read_bytes(), "a half file"
    kept, damaged = {}, []
    for path in (data / "dst").rglob("f*"):
        st = path.stat()
        if st.st_ctime_ns < synced_at - CLOCK_SLACK_NS:
            kept[path] = st.st_ino
        elif st.st_ctime_ns >= synced_at:
            path.write_bytes(b"\0" * st.st_size)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
            damaged.append(path)
    assert kept, "nothing had landed before the last sync"
    assert damaged, "nothing had landed after the last sync"
    server = ServerProcess([str(FERRY), "serve"], env, tmp_path / "serve.log")
    try:
        server.client.delete("/configuration/property", params={"key": "global.bandwidth.limit"})
        server.wait_for("cut", lambda m: m["state"] == "COMPLETED")
    finally:
        server.close()
    assert_same_tree(data / "src", data / "dst")
    recopied = [str(path) for path, ino in kept.items() if path.stat().st_ino != ino]
    assert recopied == [], f"copied again though synced before the last checkpoint: {recopied[:5]}"
