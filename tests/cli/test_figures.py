"""``ferry migrations watch`` labels its byte figures: what was copied apart from what moved no data."""

from __future__ import annotations

from app.cli.watch import _figures


def test_a_sparse_disk_shows_its_skipped_holes_beside_copied_bytes() -> None:
    """Not "0 B of 1.1 GB": the holes skipped and zeroes written are figures of their own."""
    progress = {"bytesCopied": 0, "bytesZeroed": 20_000_000, "bytesSkipped": 970_000_000, "bytesTotal": 1_100_000_000}
    assert _figures(progress) == "copied 0 bytes, zeroed 20.0 MB, skipped 970.0 MB, of 1.1 GB"


def test_an_incremental_files_pass_shows_its_unchanged_files() -> None:
    """Not "19.5 kB of 1.5 GB": the files found equal are counted beside the bytes copied."""
    progress = {"bytesCopied": 19_500, "filesSkipped": 1200, "bytesTotal": 1_500_000_000}
    assert _figures(progress) == "copied 19.5 kB, skipped 1200 files, of 1.5 GB"


def test_a_plain_copy_reads_as_before() -> None:
    """Nothing skipped: "copied X of Y"; no total yet: "copied X"."""
    assert _figures({"bytesCopied": 8_000_000, "bytesTotal": 8_000_000}) == "copied 8.0 MB of 8.0 MB"
    assert _figures({"bytesCopied": 19_500}) == "copied 19.5 kB"
