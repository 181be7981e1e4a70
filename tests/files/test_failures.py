"""Entries that cannot be copied are an outcome: listed, tried again, FAILED, and resumed.

The target directory that refuses writes is made with ``chattr +i`` (immutable: even root may
not create, rename or remove entries in it), which is the typical case the SPEC names.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.engines.files import FilesEngine
from app.engines.files.listing import Listing, Roots
from app.engines.files.options import parse_options
from tests.api.conftest import settings_for
from tests.files.conftest import assert_same_tree, write
from tests.servers import LiveServer, live_server

FERRY = str(Path(sys.executable).parent / "ferry")
pytestmark = pytest.mark.skipif(shutil.which("chattr") is None, reason="chattr (e2fsprogs) not installed")


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(settings_for(database_url, tmp_path), {"files": FilesEngine()}) as server:
        yield server


@contextmanager
def immutable(directory: Path) -> Iterator[None]:
    """``directory`` refuses every change while the block runs (and is writable again after,
    whatever happens, so that the test's tree can be removed)."""
    subprocess.run(["chattr", "+i", str(directory)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def inodes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_ino for p in root.rglob("*") if p.is_file()}


def test_entries_not_written_fail_the_pass_and_resume_copies_only_them(api: LiveServer, tmp_path: Path) -> None:
    """In an immutable target directory two files and a subdirectory cannot be created and the
    directory's own times cannot be set: each of the four is tried twice (the retry at the end
    of the pass), the migration ends FAILED saying how many, and GET .../failures lists them in
    path order, paginated, with reason, attempts and time. Once the directory is writable,
    resume copies exactly them (the files copied before keep their inodes: not rewritten) and
    the migration COMPLETES, listing none."""
    data = tmp_path / "data"
    src, dst = data / "src", data / "dst"
    for n in range(6):
        write(src / "ok" / f"f{n}.txt", f"fine {n}\n", mtime=1_600_000_000 + n)
    write(src / "locked" / "x.txt", "x", mtime=1_600_000_000)
    write(src / "locked" / "y.txt", "y", mtime=1_600_000_000)
    write(src / "locked" / "sub" / "z.txt", "z", mtime=1_600_000_000)
    (dst / "locked").mkdir(parents=True)
    body = {"migrationId": "tree", "kind": "files", "source": str(src), "target": str(dst)}
    with immutable(dst / "locked"):
        assert api.client.post("/migrations", json=body).status_code == 201
        failed = api.wait_for("tree", {"FAILED", "COMPLETED"}, timeout=30)
        assert failed["state"] == "FAILED"
        assert failed["error"].startswith("4 entries could not be copied"), failed["error"]
        assert "/migrations/tree/failures" in failed["error"]
        assert failed["progress"]["filesFailed"] == 4
        assert failed["progress"]["filesCopied"] == 6

        page = api.client.get("/migrations/tree/failures").json()
        assert (page["migrationId"], page["total"], page["offset"], page["limit"]) == ("tree", 4, 0, 100)
        paths = [f["path"] for f in page["failures"]]
        assert paths == ["/locked", "/locked/sub", "/locked/x.txt", "/locked/y.txt"], page
        assert [f["attempts"] for f in page["failures"]] == [2, 2, 2, 2], page["failures"]
        assert all(f["reason"] and f["time"] for f in page["failures"]), page
        second = api.client.get("/migrations/tree/failures", params={"offset": 3, "limit": 2}).json()
        assert [f["path"] for f in second["failures"]] == ["/locked/y.txt"]
        assert api.client.get("/migrations/tree/failures", params={"limit": 0}).status_code == 422
        cli = subprocess.run([FERRY, "migrations", "failures", "tree", "--all", "--json", "--url", api.url],
                             capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        assert [f["path"] for f in json.loads(cli.stdout)] == paths
        copied = inodes(dst)
        assert sorted(copied) == [f"ok/f{n}.txt" for n in range(6)]

    assert api.client.post("/migrations/tree/resume").status_code == 200
    done = api.wait_for("tree", {"FAILED", "COMPLETED"}, timeout=30)
    assert (done["state"], done["error"]) == ("COMPLETED", None), api.client.get("/migrations/tree/failures").text
    assert done["progress"]["filesFailed"] == 0
    # Only the failed subdirectory was listed for the first time: /, ok and locked were not
    # listed again as new (locked was relisted for its files, which does not count).
    assert done["progress"]["directoriesScanned"] == failed["progress"]["directoriesScanned"] + 1
    assert_same_tree(src, dst)
    after = inodes(dst)
    assert {path: after[path] for path in copied} == copied, "files copied by the failed pass were rewritten"
    assert api.client.get("/migrations/tree/failures").json()["total"] == 0


def test_failures_of_unknown_migration_are_404(api: LiveServer) -> None:
    """The failures of a migration that does not exist: 404 as problem+json."""
    response = api.client.get("/migrations/nope/failures")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_directory_made_by_its_own_listing_meanwhile_is_no_failure(tmp_path: Path) -> None:
    """Race covered: when a pass tries failed entries again, the relist of /locked and the whole
    listing of /locked/sub run at once and both create the target /locked/sub. A relist that read
    its target before the other made the directory finds it made: no failure, not 'fresh'."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "locked" / "sub" / "z.txt", "z")
    (dst / "locked").mkdir(parents=True)
    options = parse_options({})
    listing = Listing(Roots(src, dst, options, options.excluder), "locked", fresh=False, relist=True, keep=frozenset())
    listing.step(0)  # opened: the target read, no entry handled yet
    (dst / "locked" / "sub").mkdir()  # the other listing
    result = listing.step(100)
    assert (result.done, result.failures) == (True, [])
