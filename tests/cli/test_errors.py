"""Server errors reach the operator as one line on stderr and an exit code a script can test."""

from __future__ import annotations

from tests.cli.conftest import Ferry
from tests.servers import LiveServer, free_port


def one_line(text: str) -> str:
    assert text.count("\n") == 1, text
    return text.strip()


def test_not_found_is_3(ferry: Ferry) -> None:
    """An unknown migration: exit 3 and the server's problem detail; watch fails before drawing a bar."""
    result = ferry("migrations", "show", "nope")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert one_line(result.stderr) == "ferry: 404 Not found: migrationId: no migration 'nope'"
    watched = ferry("migrations", "watch", "nope")
    assert (watched.exit_code, watched.stdout) == (3, "")


def test_bad_value_is_2(ferry: Ferry) -> None:
    """A value the server refuses (422) and a malformed option here both exit 2, like click's usage errors."""
    refused = ferry("config", "set", "global.scan.limit", "lots")
    assert refused.exit_code == 2
    assert one_line(refused.stderr).startswith("ferry: 422 ")
    assert "global.scan.limit" in refused.stderr
    malformed = ferry("migrations", "create", "--kind", "files", "--source", "/s", "--target", "/t", "-o", "units")
    assert malformed.exit_code == 2
    assert one_line(malformed.stderr) == "ferry: --option 'units': expected NAME=VALUE"


def test_conflict_is_4(ferry: Ferry, server: LiveServer) -> None:
    """Deleting a RUNNING migration is refused by the state table: exit 4."""
    ferry(
        "migrations",
        "create",
        "--id",
        "busy",
        "--kind",
        "files",
        "--source",
        "/s",
        "--target",
        "/t",
        "-o",
        "units=400",
        "-o",
        "unitSeconds=0.05",
    )
    server.wait_for("busy", {"RUNNING"})
    result = ferry("migrations", "delete", "busy")
    assert result.exit_code == 4
    assert one_line(result.stderr).startswith("ferry: 409 Conflict: ")
    ferry("migrations", "stop", "busy")


def test_auth_is_5(secured: LiveServer) -> None:
    """With FERRY_TOKENS set: no token (401) and too weak a role (403) both exit 5; FERRY_TOKEN is sent."""
    ferry = Ferry(secured.url)
    missing = ferry("stats")
    assert missing.exit_code == 5
    assert one_line(missing.stderr).startswith("ferry: 401 Unauthorized: ")
    weak = ferry("config", "set", "global.scan.limit", "50", token="viewer-secret")
    assert weak.exit_code == 5
    assert "403 Forbidden" in weak.stderr
    allowed = ferry("config", "set", "global.scan.limit", "50", token="admin-secret")
    assert allowed.exit_code == 0, allowed.output


def test_unreachable_is_6() -> None:
    """Nothing listening: exit 6 with the URL tried."""
    url = f"http://127.0.0.1:{free_port()}"
    result = Ferry(url)("migrations", "list")
    assert result.exit_code == 6
    assert one_line(result.stderr).startswith(f"ferry: cannot reach {url}")
