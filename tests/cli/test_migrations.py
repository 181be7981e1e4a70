"""``ferry migrations ...`` over real HTTP: what operators type, what scripts read back."""

from __future__ import annotations

import json

from tests.cli.conftest import Ferry, row_of
from tests.servers import LiveServer


def test_create_watch_list_show(ferry: Ferry) -> None:
    """create starts a migration; watch follows it to COMPLETED (exit 0); list and show report it."""
    created = ferry(
        "migrations",
        "create",
        "--id",
        "m1",
        "--kind",
        "files",
        "--source",
        "/src",
        "--target",
        "/dst",
        "--priority",
        "high",
        "-o",
        "units=8",
        "-o",
        "unitSeconds=0.02",
        "-o",
        "unitBytes=1000000",
    )
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("created m1: ")

    watched = ferry("migrations", "watch", "m1", "--interval", "0.1")
    assert watched.exit_code == 0, watched.output
    assert "100.0%" in watched.stdout
    assert "8.0 MB of 8.0 MB" in watched.stdout
    assert "threads" in watched.stdout
    assert watched.stdout.rstrip().endswith("m1 COMPLETED")

    listed = ferry("migrations", "list")
    assert listed.exit_code == 0
    row = row_of(listed.stdout, "m1")
    assert row[:4] == ["m1", "files", "COMPLETED", "HIGH"]
    assert row[5] == "100.0%"

    as_json = json.loads(ferry("migrations", "list", "--state", "completed", "--json").stdout)
    assert [m["migrationId"] for m in as_json] == ["m1"]
    shown = ferry("migrations", "show", "m1")
    assert shown.exit_code == 0
    assert "/src" in shown.stdout
    assert "unitsDone" in shown.stdout
    assert json.loads(ferry("migrations", "show", "m1", "--json").stdout)["options"]["units"] == 8


def test_actions_follow_the_state_table(ferry: Ferry, server: LiveServer) -> None:
    """start, stop, resume, set, stop --all, reset and delete print the state each leads to; verify is refused
    on a kind that cannot verify."""
    created = ferry(
        "migrations",
        "create",
        "--id",
        "a1",
        "--kind",
        "files",
        "--source",
        "/s",
        "--target",
        "/t",
        "--no-start",
        "-o",
        "units=20000",  # 10 s or more at any grant: every stop comes before the end
        "-o",
        "unitSeconds=0.05",
    )
    assert "a1: NONSCHEDULED" in created.stdout
    started = ferry("migrations", "start", "a1")
    assert started.exit_code == 0
    assert started.stdout.startswith("started a1: ")
    server.wait_for("a1", {"RUNNING"})
    changed = ferry("migrations", "set", "a1", "--percentage", "13%")
    assert changed.exit_code == 0, changed.output
    assert "pool 13%" in changed.stdout
    assert ferry("migrations", "stop", "a1").stdout.startswith("stopped a1: STOPPED")
    server.wait_for("a1", {"STOPPED"})
    resumed = ferry("migrations", "resume", "a1")
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout.startswith("resumed a1: ")
    server.wait_for("a1", {"RUNNING"})
    assert "stopped a1: STOPPED" in ferry("migrations", "stop", "--all").stdout
    server.wait_for("a1", {"STOPPED"})
    assert ferry("migrations", "reset", "a1").exit_code == 0
    assert ferry("migrations", "delete", "a1").stdout.strip() == "deleted a1"
    assert ferry("migrations", "show", "a1").exit_code == 3


def test_watch_exits_non_zero_when_one_fails(ferry: Ferry) -> None:
    """watch of several migrations waits for all of them, names the failure, and exits 1."""
    for job_id, fail_at in (("ok", -1), ("bad", 2)):
        result = ferry(
            "migrations",
            "create",
            "--id",
            job_id,
            "--kind",
            "files",
            "--source",
            "/s",
            "--target",
            "/t",
            "-o",
            "units=6",
            "-o",
            "unitSeconds=0.02",
            "-o",
            f"failAt={fail_at}",
        )
        assert result.exit_code == 0, result.output
    watched = ferry("migrations", "watch", "ok", "bad", "--interval", "0.1")
    assert watched.exit_code == 1
    assert "ok COMPLETED" in watched.stdout
    assert "bad FAILED: unit 2 failed on purpose" in watched.stdout
