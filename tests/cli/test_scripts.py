"""``ferry`` as scripts run it: a real process whose stdout is a pipe, against a real server.

The server is the in-process one of ``conftest`` (uvicorn on a free port, fake engines); the
command is ``.venv/bin/ferry`` itself, started with stdout and stderr as pipes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import Query

from tests.servers import ROOT, LiveServer

FERRY = str(Path(sys.executable).with_name("ferry"))
#: Server-side packages a client command has no use for; importing them made --help take 0.95 s.
#: (pydantic is not among them: typer 0.29 imports it itself for a command's parameters.)
SERVER_SIDE = ("fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "structlog", "httpx", "prometheus_client")


def run(server: LiveServer, *args: str, shell: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "COLUMNS"))}
    env.update(FERRY_URL=server.url, PATH=f"{Path(FERRY).parent}:{env.get('PATH', '')}")
    command: list[str] = ["sh", "-c", shell] if shell else [FERRY, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def create(server: LiveServer, job_id: str, **options: Any) -> None:
    body = {"migrationId": job_id, "kind": "files", "source": "/s", "target": "/t", "options": options}
    response = server.client.post("/migrations", json=body)
    assert response.status_code == 201, response.text


def test_piped_tables_are_never_cut(server: LiveServer) -> None:
    """Piped into grep, list shows every row and every long id whole: grep -c COMPLETED counts them."""
    ids = [f"project-{n}-{'x' * 70}" for n in range(3)]
    for job_id in ids:
        create(server, job_id, units=1, unitSeconds=0)
    for job_id in ids:
        server.wait_for(job_id, {"COMPLETED"})
    counted = run(server, shell="ferry migrations list | grep -c COMPLETED")
    assert counted.stdout.strip() == "3", counted
    listed = run(server, "migrations", "list")
    assert listed.returncode == 0
    assert all(job_id in listed.stdout for job_id in ids)
    assert "…" not in listed.stdout


def test_help_imports_no_server_side_package() -> None:
    """--help of ferry and of client commands, in a fresh interpreter, leaves FastAPI, SQLAlchemy,
    Alembic and httpx unimported (what made it take 0.95 s); the server's own commands import them
    when they run."""
    script = (
        "import sys\n"
        "from app.cli.main import cli\n"
        "for args in (['--help'], ['migrations', 'list', '--help'], ['migrations', 'create', '--help']):\n"
        "    try:\n"
        "        cli(args, prog_name='ferry')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert "typer" in loaded
    assert [name for name in SERVER_SIDE if name in loaded] == []


def test_help_shows_metavars_not_python_types(server: LiveServer) -> None:
    """Every command's help names its values (ID, PATH|URI, NAME=VALUE) rather than <str>, <bool> or
    <list[str]>."""
    commands = [
        ["--help"],
        *(["migrations", name, "--help"] for name in ("create", "list", "set", "stop", "watch", "failures")),
        ["migrations", "verification", "--help"],
        ["config", "set", "--help"],
        ["stats", "--help"],
        ["serve", "--help"],
    ]
    for args in commands:
        result = run(server, *args)
        assert result.returncode == 0, result
        assert re.findall(r"<[a-z_\[\]|, ]+>", result.stdout) == [], (args, result.stdout)
    create_help = run(server, "migrations", "create", "--help").stdout
    for metavar in ("--source PATH|URI", "-o, --option NAME=VALUE", "--kind files|disk", "--id ID"):
        assert metavar in create_help


def test_relative_paths_are_refused_before_any_request(server: LiveServer) -> None:
    """A relative --source or --target is a usage error (2) that says why; nothing is created."""
    for source, target in (("data/projects", "/t"), ("/s", "./copy")):
        result = run(server, "migrations", "create", "--kind", "files", "--source", source, "--target", target)
        assert result.returncode == 2, result
        assert "give an absolute path or an NBD URI" in result.stderr
        assert result.stdout == ""
    assert server.client.get("/migrations").json() == []
    absolute = run(server, "migrations", "create", "--id", "ok", "--kind", "files", "--source", "/s", "--target", "/t")
    assert absolute.returncode == 0, absolute


def test_watch_prints_its_last_lines_once_and_fails_when_one_failed(server: LiveServer) -> None:
    """Piped, watch of a completing and a failing migration ends with one line each, once, and exits 1."""
    create(server, "good", units=4, unitSeconds=0.02)
    create(server, "bad", units=6, unitSeconds=0.02, failAt=2)
    watched = run(server, "migrations", "watch", "good", "bad", "--interval", "0.1")
    assert watched.returncode == 1, watched
    lines = watched.stdout.splitlines()
    assert lines.count("good COMPLETED") == 1
    assert lines.count("bad FAILED: unit 2 failed on purpose") == 1
    assert lines[-2:] == ["good COMPLETED", "bad FAILED: unit 2 failed on purpose"]
    create(server, "fine", units=2, unitSeconds=0.01)
    assert run(server, "migrations", "watch", "fine", "--interval", "0.1").returncode == 0


FAILURES = [
    {
        "path": f"dir/file-{n:03d} with a long name.bin",
        "reason": "EACCES",
        "attempts": 2,
        "time": "2026-12-02T06:00:00Z",
    }
    for n in range(7)
]
DISCREPANCIES = [{"type": "contentMismatch", "path": f"f{n}", "detail": None} for n in range(5)]


@pytest.fixture
def reports(server: LiveServer) -> LiveServer:
    """A page of failures and a verification report with discrepancies, as test routes of the shape SPEC
    section 3 gives, ahead of the real ones: the fake engine records neither (tests/files/test_failures.py
    runs the command against the real endpoint)."""

    @server.app.get("/migrations/{job_id}/failures")
    def failures(job_id: str, offset: int = Query(0), limit: int = Query(100)) -> dict[str, Any]:
        page = FAILURES[offset : offset + limit]
        return {"migrationId": job_id, "total": len(FAILURES), "offset": offset, "limit": limit, "failures": page}

    @server.app.get("/migrations/{job_id}/verification")
    def verification(job_id: str, offset: int = Query(0), limit: int = Query(100)) -> dict[str, Any]:
        counts = {"filesChecked": 40, "discrepancies": len(DISCREPANCIES)}
        page = DISCREPANCIES[offset : offset + limit]
        return {"migrationId": job_id, "status": "COMPLETED", "startedTime": "2026-12-02T06:00:00Z",
                "completedTime": "2026-12-02T06:00:09Z", "counts": counts, "error": None, "offset": offset,
                "limit": limit, "discrepancies": page}  # fmt: skip

    routes = server.app.router.routes
    for _ in range(2):
        routes.insert(0, routes.pop())  # ahead of the real verification route
    return server


def test_failures_lists_a_page_or_every_page(reports: LiveServer) -> None:
    """failures prints path, reason, attempts and time per entry; --limit pages (and says where the next
    starts), --all follows every page, --json gives the server's JSON."""
    page = run(reports, "migrations", "failures", "m", "--limit", "3")
    assert page.returncode == 0, page
    assert next(line for line in page.stdout.splitlines() if "EACCES" in line).split("│")[1:4] == [
        " dir/file-000 with a long name.bin ",
        " EACCES ",
        " 2        ",
    ]
    assert page.stdout.count("EACCES") == 3
    assert "--offset 3" in page.stderr
    every = run(reports, "migrations", "failures", "m", "--all", "--limit", "3")
    assert every.stdout.count("EACCES") == 7
    assert "file-006 with a long name.bin" in every.stdout
    as_json = json.loads(run(reports, "migrations", "failures", "m", "--all", "--limit", "3", "--json").stdout)
    assert as_json == FAILURES


def test_verification_shows_the_report_and_its_discrepancies(reports: LiveServer) -> None:
    """verification prints the report's status and counts, then its discrepancies, page by page, and
    exits 1 because it found some."""
    shown = run(reports, "migrations", "verification", "m", "--limit", "2")
    assert shown.returncode == 1, shown  # discrepancies found
    assert "COMPLETED" in shown.stdout
    assert "filesChecked" in shown.stdout
    assert shown.stdout.count("contentMismatch") == 2
    every = run(reports, "migrations", "verification", "m", "--all", "--limit", "2", "--json")
    assert [d["path"] for d in json.loads(every.stdout)["discrepancies"]] == ["f0", "f1", "f2", "f3", "f4"]


@pytest.mark.parametrize(("variable", "value"), [("FERRY_HELPER_NICE", "25"), ("FERRY_NODE_LEASE", "soon")])
def test_serve_refuses_a_bad_setting_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    """A setting out of range or of the wrong type stops ``ferry serve`` before it opens anything:
    exit 2 and one line naming the variable and what is wrong, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    data = tmp_path / "data"
    data.mkdir()
    env.update({variable: value, "FERRY_DATA_DIR": str(data)})
    done = subprocess.run([FERRY, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done
    assert done.stderr.startswith(f"ferry: {variable}={value}: "), done.stderr
    assert "Traceback" not in done.stderr
    assert list(data.iterdir()) == []  # no database was created
