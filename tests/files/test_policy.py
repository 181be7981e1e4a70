"""The pure rules, alone: compare decisions, range splitting, exclusions, region paths."""

from __future__ import annotations

import fnmatch
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.engines.files.exclude import Excluder
from app.engines.files.options import ActionPolicy
from app.engines.files.policy import Action, Kind, Meta, decide, gaps
from app.engines.files.regions import normalise_region

FILE = Meta(Kind.FILE, 10, 1000, 0o644)


@pytest.mark.parametrize(
    ("dst", "policy", "action"),
    [
        (None, ActionPolicy.OVERWRITE, Action.COPY),
        (FILE, ActionPolicy.OVERWRITE, Action.SKIP),
        (Meta(Kind.FILE, 10, 1001, 0o644), ActionPolicy.OVERWRITE, Action.COPY),
        (Meta(Kind.FILE, 11, 1000, 0o644), ActionPolicy.OVERWRITE, Action.COPY),
        (Meta(Kind.FILE, 10, 1000, 0o600), ActionPolicy.OVERWRITE, Action.FIX_MODE),
        (Meta(Kind.FILE, 10, 5, 0o644), ActionPolicy.SKIP_IF_SIZE_MATCH, Action.SKIP),
        (Meta(Kind.FILE, 9, 1000, 0o644), ActionPolicy.SKIP_IF_SIZE_MATCH, Action.COPY),
        (FILE, ActionPolicy.CHECKSUM, Action.COMPARE),
        (Meta(Kind.FILE, 9, 1000, 0o644), ActionPolicy.CHECKSUM, Action.COPY),
        (Meta(Kind.DIR, 0, 1000, 0o755), ActionPolicy.OVERWRITE, Action.REPLACE),
        (Meta(Kind.LINK, 10, 1000, 0o777), ActionPolicy.CHECKSUM, Action.REPLACE),
    ],
)
def test_decide_for_files(dst: Meta | None, policy: ActionPolicy, action: Action) -> None:
    """Each policy's rule for a regular file against what the target holds."""
    assert decide(FILE, dst, policy) is action


def test_decide_for_other_kinds() -> None:
    """Directories recurse, links compare their text, special files are recreated."""
    d = Meta(Kind.DIR, 0, 1, 0o755)
    link = Meta(Kind.LINK, 3, 1, 0o777)
    assert decide(d, d, ActionPolicy.OVERWRITE) is Action.SKIP
    assert decide(link, link, ActionPolicy.OVERWRITE) is Action.COMPARE
    assert decide(Meta(Kind.OTHER, 0, 1, 0o644), None, ActionPolicy.OVERWRITE) is Action.COPY


@given(size=st.integers(0, 10**9), data=st.data())
def test_gaps_and_done_ranges_cover_the_file_exactly(size: int, data: st.DataObject) -> None:
    """What a resumed large file still has to copy: with the ranges done, the gaps cover
    [0, size) exactly once, in order; then cutting them (at any sizes, as the link's speed
    changes) hands out every byte once."""
    cuts = sorted(data.draw(st.sets(st.integers(0, size), max_size=20)) | {0, size})
    pieces = [(a, b - a) for a, b in itertools.pairwise(cuts) if b > a]
    done = [p for p in pieces if data.draw(st.booleans())]
    todo = gaps(size, done)
    assert todo == sorted(todo)
    position = 0
    for offset, length in sorted(done + todo):
        assert (offset, length > 0) == (position, True)
        position += length
    assert position == size
    handed = 0
    while todo:
        offset, length = todo[0]
        take = min(length, data.draw(st.integers(max(1, size // 16), max(1, size))))
        todo = todo[1:] if take == length else [(offset + take, length - take), *todo[1:]]
        handed += take
    assert handed == size - sum(length for _, length in done)


NAMES = st.text(alphabet="abc.xyz-_ ", min_size=1, max_size=6).filter(lambda n: n not in (".", ".."))


@given(pattern=st.text(alphabet="abc*?.x", min_size=1, max_size=5), name=NAMES)
def test_name_patterns_agree_with_fnmatch(pattern: str, name: str) -> None:
    """A pattern without '/' matches names exactly as fnmatchcase does, at any depth."""
    excluder = Excluder([pattern])
    expected = fnmatch.fnmatchcase(name, pattern)
    assert excluder.excluded(name) is expected
    assert excluder.excluded(f"some/dir/{name}") is expected


def test_path_patterns() -> None:
    """Patterns with '/' are anchored at the root; '*' stays within a name; '**' crosses."""
    excluder = Excluder(["logs/*.log", "/build", "a/**/z", "tmp/**"])
    assert excluder.excluded("logs/x.log")
    assert not excluder.excluded("logs/sub/x.log")
    assert not excluder.excluded("other/logs/x.log")
    assert excluder.excluded("build")
    assert excluder.excluded("a/z")
    assert excluder.excluded("a/b/c/z")
    assert excluder.excluded("tmp/x/y")
    assert not excluder.excluded("tmp")


@given(parts=st.lists(NAMES, max_size=5))
def test_region_paths_normalise(parts: list[str]) -> None:
    """Leading, trailing and doubled slashes and '.' parts do not change the region."""
    clean = "/".join(p for p in parts if p != ".")
    assert normalise_region("/" + "//".join(parts) + "/") == clean
    assert normalise_region("./" + "/./".join(parts)) == clean


def test_region_paths_never_leave_the_root() -> None:
    """'..' is refused anywhere in a region path."""
    with pytest.raises(ValueError, match=r"\.\."):
        normalise_region("/a/../../etc")
