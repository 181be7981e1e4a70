"""validate(): bad definitions are refused with the offending field named (a 422 at creation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.engines.base import InvalidField
from app.engines.disk import DiskEngine
from app.engines.disk.options import parse_options

from .conftest import MiB, Servers


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"colour": "blue"}, "options.colour"),
        ({"mode": "sideways"}, "options.mode"),
        ({"mode": "INCREMENTAL"}, "options.mode"),
        ({"chunkSize": "64MiB"}, "options.chunkSize"),
        ({"chunkSize": 0}, "options.chunkSize"),
        ({"coalesceGap": "lots"}, "options.coalesceGap"),
        ({"maxRetries": -1}, "options.maxRetries"),
        ({"retryDelay": "soon"}, "options.retryDelay"),
        ({"openTimeout": -1}, "options.openTimeout"),
        ({"openTimeout": "later"}, "options.openTimeout"),
        ({"openTimeout": 86401}, "options.openTimeout"),
        ({"openTimeout": True}, "options.openTimeout"),
        ({"openTimeout": "nan"}, "options.openTimeout"),
        ({"verify": "maybe"}, "options.verify"),
        ({"parallel": 1}, "options.parallel"),
        ({"changedExtents": [{"offset": 0}]}, "options.changedExtents[0]"),
        ({"changedExtents": [{"offset": 0, "length": 0}]}, "options.changedExtents[0].length"),
        ({"changedExtents": [], "dirtyBitmap": "b"}, "options.changedExtents"),
        ({"dirtyBitmap": "", "mode": "incremental"}, "options.dirtyBitmap"),
    ],
)
def test_bad_options_name_their_field(options: dict[str, Any], field: str) -> None:
    """Each bad option is refused with InvalidField naming exactly that option."""
    with pytest.raises(InvalidField) as caught:
        parse_options(options)
    assert caught.value.field == field


def test_options_are_normalised_with_defaults() -> None:
    """Names and enum values match case-insensitively; sizes take units; defaults fill in."""
    got = parse_options({"ChunkSize": "8MiB", "MODE": "full", "VERIFY": "TRUE", "retrydelay": 2}).as_dict()
    assert got == {
        "mode": "FULL", "dirtyBitmap": None, "changedExtents": None, "coalesceGap": MiB,
        "chunkSize": 8 * MiB, "maxRetries": 3, "retryDelay": 2.0, "openTimeout": 300.0, "verify": True,
        "parallel": True,
    }  # fmt: skip
    assert parse_options(got).as_dict() == got  # stable when stored and read back
    assert parse_options({"changedExtents": [{"offset": 0, "length": 9}]}).mode == "INCREMENTAL"


@pytest.mark.nbd
def test_bad_endpoints_are_refused(servers: Servers, tmp_path: Path) -> None:
    """Unreachable servers, size mismatches, paths outside the roots (also via symlink or ..),
    extents past the end and a missing bitmap are all refused at validation, quickly."""
    engine, roots = DiskEngine(), (tmp_path / "root",)
    roots[0].mkdir()
    source = servers.nbdkit("memory", str(4 * MiB))
    small = servers.nbdkit("memory", str(2 * MiB))
    (roots[0] / "escape").symlink_to(tmp_path)
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("/not/a/uri", str(roots[0] / "a.img"), {}, "source"),
        (f"nbd+unix:///?socket={tmp_path}/none.sock", str(roots[0] / "a.img"), {}, "source"),
        ("nbd://127.0.0.1:1/x", str(roots[0] / "a.img"), {}, "source"),
        (source, small, {}, "target"),
        (source, str(tmp_path / "outside.img"), {}, "target"),
        (source, str(roots[0] / "escape" / "x.img"), {}, "target"),
        (source, str(roots[0] / ".." / "x.img"), {}, "target"),
        (source, "relative.img", {}, "target"),
        (source, str(roots[0] / "a.img"), {"changedExtents": [{"offset": 4 * MiB, "length": 1}]},
         "options.changedExtents"),
        (source, str(roots[0] / "a.img"), {"dirtyBitmap": "nope"}, "options.dirtyBitmap"),
    ]  # fmt: skip
    for src, dst, options, field in cases:
        with pytest.raises(InvalidField) as caught:
            engine.validate(src, dst, options, roots)
        assert caught.value.field == field, (src, dst, options, caught.value)
    (roots[0] / "wrong.img").write_bytes(b"x" * 1000)
    with pytest.raises(InvalidField, match="does not match"):
        engine.validate(source, str(roots[0] / "wrong.img"), {}, roots)
    assert engine.validate(source, str(roots[0] / "ok.img"), {}, roots)["mode"] == "FULL"
