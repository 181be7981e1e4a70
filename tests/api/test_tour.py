"""The README's tour, run as written: its shell blocks against a real ``ferry serve`` with
``make run``'s defaults, real files and a real nbdkit disk.

The blocks between ``<!-- tour:begin -->`` and ``<!-- tour:end -->`` run in one ``bash -e`` in a
fresh directory standing for the checkout (its ``.venv`` is this one), where ``ferry serve``
runs with no ``FERRY_*`` settings, so its data directory and only allowed root is ``./var``. Two
things differ from a reader's terminal, both so that the test can run beside others: the port
(``18080`` in the text becomes a free one, and ``FERRY_URL`` says so to the CLI), and ``curl``,
which fails the script on an HTTP error (``--fail-with-body``) instead of printing it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import need_real
from tests.servers import ROOT, free_port

README = ROOT / "README.md"
#: Makes the script stop at the first HTTP error, as a reader would stop at an error's JSON.
CURL = 'curl() { command curl --fail-with-body -sS "$@"; echo; }\n'


def tour_blocks() -> list[str]:
    text = README.read_text()
    parts = re.findall(r"<!-- tour:begin -->(.*?)<!-- tour:end -->", text, flags=re.S)
    return [block for part in parts for block in re.findall(r"```sh\n(.*?)```", part, flags=re.S)]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory standing for a fresh checkout after ``make setup``: nothing but its ``.venv``."""
    root = tmp_path / "ferry"
    root.mkdir()
    (root / ".venv").symlink_to(ROOT / ".venv")
    return root


@pytest.fixture
def served(checkout: Path, database_url: str) -> Iterator[tuple[str, Path]]:
    """``ferry serve`` in the checkout with its defaults, but the port (and, for PostgreSQL, the
    database, given with a password that the log must not show); yields its URL and its log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(FERRY_PORT=str(port), FERRY_LOG_FORMAT="json")
    if database_url.startswith("postgresql"):
        env["FERRY_DATABASE_URL"] = make_url(database_url).set(password="tour-secret").render_as_string(False)
    log = checkout / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([".venv/bin/ferry", "serve"], cwd=checkout, env=env, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield url, log
    finally:
        stop_nbdkit(checkout / "var" / "tour" / "nbdkit.pid")
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"ferry serve not ready in 30 s: {log.read_text()}"
        time.sleep(0.1)


def stop_nbdkit(pidfile: Path) -> None:
    """The tour kills its nbdkit at its end; a tour that failed before that leaves it to us."""
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


def start_line(log: Path) -> dict[str, Any]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    started = [line for line in lines if line.get("action") == "startup"]
    assert len(started) == 1, lines
    return started[0]


def test_the_readme_tour_runs_as_written(checkout: Path, served: tuple[str, Path], database_url: str) -> None:
    """Every command of the tour succeeds in order: a files migration copies the tree and verifies clean,
    a disk from nbdkit over a Unix socket (its URI percent-encoded in a PUT query) is copied to an image
    and verifies clean, the SPEC's property commands and the stats answer; the server logged one start-up
    line naming its version, node, database (password hidden) and ./var as its allowed root."""
    need_real(bool(shutil.which("nbdkit") and shutil.which("curl")), "nbdkit and curl")
    url, log = served
    blocks = tour_blocks()
    assert len(blocks) >= 5
    script = "set -euo pipefail\n" + CURL + "\n".join(blocks).replace("http://127.0.0.1:18080", url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=checkout,
        env={**env, "FERRY_URL": url},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"

    var = checkout / "var"
    assert (var / "tour" / "copy" / "docs" / "readme.txt").read_text() == "hello\n"
    assert (var / "tour" / "copy" / "src" / "blob.bin").read_bytes() == (
        var / "tour" / "projects" / "src" / "blob.bin"
    ).read_bytes()
    assert (var / "tour" / "vm42.raw").stat().st_size == 64 * 1024 * 1024
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/migrations/vm42").json()["state"] == "COMPLETED"
        assert client.get("/migrations/projects").json()["properties"] == {"migration.parallel.scan.percentage": "13%"}

    line = start_line(log)
    assert line["version"] == "0.1.0"
    assert line["node"]
    assert line["allowed_roots"] == [str(var.resolve())]
    if database_url.startswith("postgresql"):
        assert line["database"] == make_url(database_url).set(password="tour-secret").render_as_string(True)
        assert ":***@" in line["database"]
        assert "tour-secret" not in log.read_text()
    else:
        assert line["database"] == f"sqlite:///{(var / 'ferry.db').resolve()}"
