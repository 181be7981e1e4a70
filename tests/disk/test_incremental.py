"""Incremental passes: changed extents (CBT style) and QEMU dirty bitmaps read over NBD."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import Driver, MiB, Servers, digest, read_all

pytestmark = pytest.mark.nbd

SIZE = 16 * MiB


def test_changed_extents_copy_only_those_ranges(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """Only the listed ranges change on the target (holes in them become zeroes); the rest stays."""
    old = servers.nbdkit("sparse-random", str(SIZE), "seed=2", "percent=60", "runlength=524288")
    target = tmp_path / "disk.img"
    assert driver.run(old, str(target)).outcome == "COMPLETED"
    before = target.read_bytes()
    source = servers.nbdkit("sparse-random", str(SIZE), "seed=9", "percent=60", "runlength=524288")
    # 4 KiB aligned, as CBT reports them (sparse-random's content shifts on unaligned reads).
    changed = [(1 * MiB + 4096, 69_632), (5 * MiB, 3 * MiB), (15 * MiB, MiB)]
    options = {"changedExtents": [{"offset": o, "length": n} for o, n in changed], "coalesceGap": 0}
    done = driver.run(source, str(target), options)
    assert (done.outcome, done.error) == ("COMPLETED", None)
    expected = bytearray(before)
    new = read_all(source, SIZE)
    for offset, length in changed:
        expected[offset : offset + length] = new[offset : offset + length]
    assert target.read_bytes() == bytes(expected)
    assert done.progress["bytesTotal"] == sum(n for _, n in changed)


def qemu_io(image: Path, *commands: str) -> None:
    args = [arg for command in commands for arg in ("-c", command)]
    subprocess.run(["qemu-io", "-f", "qcow2", *args, str(image)], check=True, capture_output=True)


def test_dirty_bitmap_copies_what_it_marks(servers: Servers, driver: Driver, tmp_path: Path) -> None:
    """After a full copy, a pass driven by a QEMU dirty bitmap makes the target identical again,
    moving only the dirty bytes (including a range zeroed since)."""
    image = tmp_path / "vm.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(image), str(SIZE)], check=True, capture_output=True)
    qemu_io(image, "write -P 0x11 0 6M", "write -P 0x12 9M 4M")
    target = tmp_path / "vm.img"
    first = servers.qemu_nbd(image, "-r", "-t", "-f", "qcow2", "-e", "8")
    assert driver.run(first, str(target)).outcome == "COMPLETED"
    servers.stop()
    subprocess.run(["qemu-img", "bitmap", "--add", "--enable", str(image), "bm0"], check=True)
    qemu_io(image, "write -P 0x22 1M 64k", "write -P 0x33 10M 512k", "write -z 3M 1M")
    source = servers.qemu_nbd(image, "-r", "-t", "-f", "qcow2", "-e", "8", "-B", "bm0")
    done = driver.run(source, str(target), {"dirtyBitmap": "bm0"})
    assert (done.outcome, done.error) == ("COMPLETED", None)
    assert digest(str(target), SIZE) == digest(source, SIZE)
    assert done.progress["bytesTotal"] <= 4 * MiB  # the dirty clusters, not the 16 MiB disk
    assert done.progress["bytesZeroed"] >= MiB
