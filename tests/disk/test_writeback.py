"""File targets are written back as the copy goes: exact bytes, little left in the page cache."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.engines.disk.buffers import ChunkBuffer
from app.engines.disk.sinks import FileSink
from app.engines.disk.writeback import WINDOW, Writeback

MiB = 1024 * 1024
CHUNK = 4 * MiB


def _resident_bytes(path: Path) -> int:
    """Bytes of ``path`` in the page cache, as util-linux's fincore counts them."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return int(out.split()[0])


def test_file_sink_writes_exactly_and_keeps_only_the_window_cached(tmp_path: Path) -> None:
    """64 MiB written out of order land byte for byte, and all but the last window of them have
    left the page cache before the final flush (a copy does not flood the host's cache)."""
    target = tmp_path / "disk.img"
    size = 64 * MiB
    with target.open("wb") as f:
        f.truncate(size)
    offsets = list(range(0, size, CHUNK))
    offsets = offsets[1::2] + offsets[::2]
    sink = FileSink(target)
    errors: list[int] = []
    buffer = ChunkBuffer(CHUNK)
    try:
        for offset in offsets:
            buffer.data[:] = bytes([offset // CHUNK + 1]) * CHUNK
            sink.write(buffer, 0, CHUNK, offset, errors.append)
        assert errors == [0] * len(offsets)
        assert _resident_bytes(target) <= WINDOW + CHUNK
        sink.flush()
    finally:
        sink.close()
    data = target.read_bytes()
    assert all(data[o : o + CHUNK] == bytes([o // CHUNK + 1]) * CHUNK for o in offsets)


def test_descriptor_refusing_writeback_is_written_all_the_same() -> None:
    """A descriptor that takes neither sync_file_range nor advice (a pipe) is not an error."""
    read_end, write_end = os.pipe()
    try:
        writeback = Writeback(write_end, window=8)
        for offset in range(0, 64, 8):
            os.write(write_end, b"x" * 8)
            writeback.wrote(offset, 8)
        writeback.forget()
        assert os.read(read_end, 100) == b"x" * 64
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("window", [CHUNK, 3 * CHUNK])
def test_writeback_follows_at_most_its_window(tmp_path: Path, window: int) -> None:
    """However much is written, no more than ``window`` bytes wait to be retired."""
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        writeback = Writeback(fd, window=window)
        for index in range(8):
            os.pwrite(fd, b"y" * CHUNK, index * CHUNK)
            writeback.wrote(index * CHUNK, CHUNK)
            assert writeback.pending_bytes <= window
        writeback.forget()
        assert writeback.pending_bytes == 0
    finally:
        os.close(fd)
