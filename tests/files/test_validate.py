"""Bad definitions are refused at creation with InvalidField naming the field (a 422)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from app.engines.base import InvalidField
from app.engines.files import FilesEngine

ENGINE = FilesEngine()


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, ...]:
    (tmp_path / "allowed" / "src").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return (tmp_path / "allowed",)


def refuse(source: Any, target: Any, roots: tuple[Path, ...], options: Any = None) -> InvalidField:
    with pytest.raises(InvalidField) as info:
        ENGINE.validate(str(source), str(target), options or {}, roots)
    return info.value


def test_valid_definition_returns_normalised_options(roots: tuple[Path, ...]) -> None:
    """Option names and values are matched case-insensitively; defaults fill the rest; a target
    that does not exist yet under an existing directory is accepted."""
    root = roots[0]
    options = ENGINE.validate(str(root / "src"), str(root / "new-target"),
                              {"SCANTYPE": "depth_first", "targetmatch": "true"}, roots)  # fmt: skip
    assert options == {"scanType": "DEPTH_FIRST", "actionPolicy": "OVERWRITE", "targetMatch": True,
                       "exclusions": [], "durability": "checkpoint", "verifyContent": False}  # fmt: skip


@pytest.mark.parametrize(
    ("source", "target", "field"),
    [
        ("src", "{root}/t", "source"),  # relative
        ("{root}/missing", "{root}/t", "source"),
        ("{root}/file", "{root}/t", "source"),
        ("{root}/src", "relative/t", "target"),
        ("{root}/src", "{root}/no/such/parent", "target"),
        ("{root}/src", "{root}/file", "target"),
        ("{root}/src", "{root}/src", "target"),
        ("{root}/src", "{root}/src/inside", "target"),
        ("{root}/src/sub", "{root}/src", "target"),
        ("{root}/src", "{root}/../outside/t", "target"),  # '..' leaves the roots
        ("{root}/escape", "{root}/t", "source"),  # a symlink out of the roots
        ("", "{root}/t", "source"),
    ],
)
def test_bad_paths(roots: tuple[Path, ...], source: str, target: str, field: str) -> None:
    """Missing, not a directory, relative, outside the allowed roots (after resolving symlinks
    and '..'), the same, or nested: each names the field at fault."""
    root = roots[0]
    (root / "file").write_text("x")
    (root / "src" / "sub").mkdir(exist_ok=True)
    if not (root / "escape").is_symlink():
        os.symlink(root.parent / "outside", root / "escape")
    error = refuse(source.format(root=root), target.format(root=root), roots)
    assert error.field == field


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"scanTyp": "PARALLEL"}, "options.scanTyp"),
        ({"scanType": "SIDEWAYS"}, "options.scanType"),
        ({"actionPolicy": 3}, "options.actionPolicy"),
        ({"targetMatch": "yes"}, "options.targetMatch"),
        ({"exclusions": "*.tmp"}, None),  # a single pattern is accepted as a list of one
        ({"exclusions": [""]}, "options.exclusions"),
        ({"exclusions": ["[abc"]}, "options.exclusions"),
        ({"exclusions": {"a": 1}}, "options.exclusions"),
        ({"durability": "always"}, "options.durability"),
        ({"verifyContent": 1}, "options.verifyContent"),
    ],
)
def test_bad_options(roots: tuple[Path, ...], options: dict[str, Any], field: str | None) -> None:
    """Unknown option names and bad values are refused, naming ``options.<name>``."""
    root = roots[0]
    if field is None:
        ENGINE.validate(str(root / "src"), str(root / "t"), options, roots)
        return
    assert refuse(root / "src", root / "t", roots, options).field == field
