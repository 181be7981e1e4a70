"""Targets report where they already read zero, so holes are zeroed only where needed."""

from __future__ import annotations

import os
from pathlib import Path

import nbd
import pytest

from app.engines.disk.sinks import FileSink, NbdSink

from .conftest import MiB, Servers

BLOCK = MiB  # ext4 and tmpfs both track holes at this granularity and finer


def test_file_sink_reports_exactly_its_holes(tmp_path: Path) -> None:
    """A sparse file with data at 2-3 MiB and 5-6 MiB: the holes inside the asked ranges,
    clipped to them, and nothing where data lies."""
    path = tmp_path / "disk.img"
    with path.open("wb") as f:
        f.truncate(8 * MiB)
    fd = os.open(path, os.O_RDWR)
    os.pwrite(fd, b"\x01" * BLOCK, 2 * MiB)
    os.pwrite(fd, b"\x02" * BLOCK, 5 * MiB)
    os.close(fd)
    sink = FileSink(path)
    try:
        asked = [(0, 4 * MiB), (MiB // 2 + 5 * MiB, 2 * MiB)]
        assert sink.zero_ranges(asked) == [(0, 2 * MiB), (3 * MiB, MiB), (6 * MiB, MiB + MiB // 2)]
        assert sink.zero_ranges([(2 * MiB, MiB)]) == []
        assert sink.zero_ranges([(7 * MiB, MiB)]) == [(7 * MiB, MiB)]
    finally:
        sink.close()


@pytest.mark.nbd
def test_nbd_sink_reports_zero_extents(servers: Servers) -> None:
    """An nbdkit memory export with one written MiB reads zero everywhere else."""
    uri = servers.nbdkit("memory", str(8 * MiB))
    handle = nbd.NBD()
    handle.add_meta_context("base:allocation")
    handle.connect_uri(uri)
    handle.pwrite(b"\x07" * MiB, 4 * MiB)
    sink = NbdSink(handle)
    try:
        assert sink.zero_ranges([(0, 8 * MiB)]) == [(0, 4 * MiB), (5 * MiB, 3 * MiB)]
        assert sink.zero_ranges([(4 * MiB, MiB)]) == []
    finally:
        sink.close()
