"""The cluster's grant publication keeps threads at work within the limit, whatever the order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.policy.cluster import Held, NodeLoad, place, publishable

jobs = st.lists(st.sampled_from("abcdefgh"), unique=True, min_size=1, max_size=8)


@st.composite
def situations(draw: st.DrawFn) -> tuple[list[str], dict[str, int], dict[str, Held], int]:
    order = draw(jobs)
    limit = draw(st.integers(1, 40))
    targets = {job: draw(st.integers(0, 20)) for job in order}
    held: dict[str, Held] = {}
    budget = limit
    for job in draw(st.lists(st.sampled_from("abcdefgh"), unique=True)):
        published = draw(st.integers(0, budget))
        applied = draw(st.integers(0, budget))
        active = draw(st.integers(0, max(published, applied)))
        held[job] = Held(published, applied, active)
        budget -= max(published, applied, active)
    return order, targets, held, limit


@given(situations())
def test_published_holds_stay_within_the_limit(case: tuple[list[str], dict[str, int], dict[str, Held], int]) -> None:
    """Starting from holds within the limit, what is published never lets them exceed it."""
    order, targets, held, limit = case
    published = publishable(order, targets, held, limit)
    total = sum(
        max(published.get(job, 0), held.get(job, Held(0, 0, 0)).applied, held.get(job, Held(0, 0, 0)).active)
        for job in {*published, *held}
    )
    assert total <= limit


@given(situations())
def test_decreases_are_published_at_once_and_nothing_exceeds_its_target(
    case: tuple[list[str], dict[str, int], dict[str, Held], int],
) -> None:
    """A shrink never waits; a grant never exceeds what the pool policy wants for it."""
    order, targets, held, limit = case
    published = publishable(order, targets, held, limit)
    for job, value in published.items():
        assert value <= targets.get(job, 0)
        if job in held and targets.get(job, 0) <= held[job].published:
            assert value == targets.get(job, 0)


def test_a_raise_waits_until_the_shrinking_job_has_let_go() -> None:
    """Job a shrinks 8 -> 2 while its node still applies 8: b's raise waits for the ack."""
    held = {"a": Held(8, 8, 8), "b": Held(0, 0, 0)}
    first = publishable(["a", "b"], {"a": 2, "b": 8}, held, 10)
    assert first == {"a": 2, "b": 2}
    acked = {"a": Held(2, 2, 2), "b": Held(2, 2, 0)}
    assert publishable(["a", "b"], {"a": 2, "b": 8}, acked, 10) == {"a": 2, "b": 8}


def test_with_room_every_target_is_published() -> None:
    assert publishable(["a", "b"], {"a": 3, "b": 4}, {}, 10) == {"a": 3, "b": 4}


@given(st.lists(st.integers(0, 5), min_size=1, max_size=5), st.integers(0, 12))
def test_placement_spreads_work_evenly(running: list[int], count: int) -> None:
    """Each new migration goes to a node with the fewest; the spread never grows past one."""
    nodes = [NodeLoad(f"n{i}", r, 0) for i, r in enumerate(running)]
    placed = place([f"j{i}" for i in range(count)], nodes)
    assert len(placed) == count
    after = {node.node_id: node.running for node in nodes}
    for node_id in placed.values():
        after[node_id] += 1
    before_spread = max(running) - min(running)
    assert max(after.values()) - min(after.values()) <= max(1, before_spread)
