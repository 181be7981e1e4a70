"""Incremental passes, deletions, exclusions and compare policies."""

from __future__ import annotations

import os
from pathlib import Path

from app.pool.run import Outcome

from .conftest import Harness, assert_same_tree, temp_files, write

T0 = 1_600_000_000_000_000_000


def tree(src: Path) -> None:
    for d in range(4):
        for f in range(6):
            write(src / f"d{d}" / f"f{f}.txt", f"{d}-{f}" * 50, mtime=T0)
    write(src / "top.txt", "top", mtime=T0)


def test_incremental_pass_copies_only_changes(harness: Harness, src: Path, dst: Path) -> None:
    """A second pass on an unchanged tree copies nothing; after edits it copies exactly the
    changed and new files, and (without targetMatch) leaves deleted files on the target."""
    tree(src)
    job = harness.job(src, dst)
    assert harness.run(job).outcome is Outcome.COMPLETED
    again = harness.run(job, incremental=True)
    assert again.progress["filesCopied"] == 0
    assert again.progress["filesSkipped"] == 25
    assert again.progress["percentComplete"] == 100.0

    write(src / "d1" / "f0.txt", "changed content, other size", mtime=T0)
    write(src / "d2" / "f1.txt", "2-1" * 50, mtime=T0 + 1)  # same size, newer mtime
    write(src / "d9" / "new.txt", "new")
    (src / "d3" / "f5.txt").unlink()
    result = harness.run(job, incremental=True)
    assert result.outcome is Outcome.COMPLETED
    assert result.progress["filesCopied"] == 3
    assert result.progress["filesDeleted"] == 0
    assert (dst / "d3" / "f5.txt").exists()
    assert_same_tree(src, dst, ignore=lambda rel: rel in ("d3/f5.txt", "d3"))


def test_target_match_deletes_what_the_source_lacks(harness: Harness, src: Path, dst: Path) -> None:
    """With targetMatch, target entries absent from the source go (files, links, whole
    directories), entries matched by an exclusion stay, and kind changes are replaced; a removed
    directory tree counts its directories in directoriesDeleted and only its other entries in
    filesDeleted."""
    tree(src)
    job = harness.job(src, dst, targetMatch=True, exclusions=["*.keep", "logs/**"])
    assert harness.run(job).outcome is Outcome.COMPLETED
    write(dst / "extra.txt", "only on target")
    write(dst / "d0" / "junk" / "deeper" / "x", "x")
    os.symlink("nowhere", dst / "d1" / "oldlink")
    write(dst / "d2" / "precious.keep", "kept: excluded")
    write(dst / "logs" / "today.log", "kept: excluded")
    (src / "d3" / "f0.txt").unlink()
    (src / "d3" / "f0.txt").mkdir()  # a file became a directory
    write(src / "d3" / "f0.txt" / "inside", "i")
    result = harness.run(job, incremental=True)
    assert result.outcome is Outcome.COMPLETED, result.error
    assert not (dst / "extra.txt").exists()
    assert not (dst / "d0" / "junk").exists()
    assert not (dst / "d1" / "oldlink").is_symlink()
    assert (dst / "d2" / "precious.keep").read_text() == "kept: excluded"
    assert (dst / "logs" / "today.log").exists()
    assert (dst / "d3" / "f0.txt" / "inside").read_text() == "i"
    assert result.progress["filesDeleted"] == 1 + 1 + 1 + 1  # extra, junk/deeper/x, link, old file
    assert result.progress["directoriesDeleted"] == 2  # junk/ and junk/deeper/
    assert_same_tree(src, dst, ignore=lambda rel: rel.startswith("logs") or rel.endswith(".keep"))


def test_exclusions_are_not_copied(harness: Harness, src: Path, dst: Path) -> None:
    """Excluded names (any depth) and paths (anchored, with **) are neither copied nor counted."""
    tree(src)
    write(src / "d0" / "cache.tmp", "x")
    write(src / "d1" / ".git" / "HEAD", "ref")
    write(src / "build" / "out" / "a.o", "o")
    write(src / "build" / "keep.txt", "k")
    job = harness.job(src, dst, exclusions=["*.tmp", ".git", "build/out"])
    result = harness.run(job)
    assert result.outcome is Outcome.COMPLETED
    assert not (dst / "d0" / "cache.tmp").exists()
    assert not (dst / "d1" / ".git").exists()
    assert not (dst / "build" / "out").exists()
    assert (dst / "build" / "keep.txt").read_text() == "k"
    assert result.progress["filesScanned"] == 26


def test_skip_if_size_match_ignores_mtime(harness: Harness, src: Path, dst: Path) -> None:
    """SKIP_IF_SIZE_MATCH copies a file only when its size differs."""
    write(src / "same-size", "aaaa", mtime=T0)
    write(src / "other-size", "bbbb", mtime=T0)
    job = harness.job(src, dst, actionPolicy="skip_if_size_match")
    harness.run(job)
    write(src / "same-size", "AAAA", mtime=T0 + 5)
    write(src / "other-size", "BBBBBB", mtime=T0 + 5)
    result = harness.run(job, incremental=True)
    assert result.progress["filesCopied"] == 1
    assert (dst / "same-size").read_text() == "aaaa"
    assert (dst / "other-size").read_text() == "BBBBBB"


def test_checksum_policy_compares_content(harness: Harness, src: Path, dst: Path) -> None:
    """CHECKSUM copies a same-size file whose content differs even with equal mtimes, and skips
    one whose content is equal even with different mtimes; small files and ranged large ones."""
    big = os.urandom(200_000)
    write(src / "small", "same size A", mtime=T0)
    write(src / "small-eq", "equal", mtime=T0)
    write(src / "large", big, mtime=T0)
    write(src / "large-eq", big, mtime=T0)
    job = harness.job(src, dst, actionPolicy="CHECKSUM")
    assert harness.run(job).outcome is Outcome.COMPLETED
    write(dst / "small", "same size B", mtime=T0)
    write(dst / "large", big[:150_000] + b"x" + big[150_001:], mtime=T0)
    os.utime(dst / "small-eq", ns=(T0 + 9, T0 + 9))
    os.utime(dst / "large-eq", ns=(T0 + 9, T0 + 9))
    result = harness.run(job, incremental=True)
    assert result.outcome is Outcome.COMPLETED, result.error
    assert result.progress["filesCopied"] == 2
    assert result.progress["filesSkipped"] == 2
    assert_same_tree(src, dst)
    assert temp_files(dst) == []
