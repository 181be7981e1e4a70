"""The pool's allocation rule (SPEC section 4), as a pure function."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.policy.allocation import Claim, PoolPolicy, Priority, allocate, requested_threads

SHARES = {Priority.LOW: 2.0, Priority.NORMAL: 4.0, Priority.HIGH: 8.0}

policies = st.builds(
    PoolPolicy,
    limit=st.integers(1, 500),
    max_per_job=st.integers(1, 100),
    shares=st.fixed_dictionaries({p: st.floats(0.01, 100) for p in Priority}),
)
claims = st.lists(
    st.builds(
        Claim,
        job_id=st.uuids().map(str),
        priority=st.sampled_from(Priority),
        started_at=st.floats(0, 1e6),
        override=st.none() | st.floats(0.01, 100),
    ),
    max_size=30,
    unique_by=lambda claim: claim.job_id,
)


def test_spec_formula_examples() -> None:
    """requested = min(max threads, max(1, ceil(limit * pct / 100))), with the SPEC's defaults."""
    policy = PoolPolicy(limit=100, max_per_job=50, shares=SHARES)
    assert requested_threads(4, policy) == 4
    assert requested_threads(7, policy) == 7  # not 8 from float noise
    assert requested_threads(0.5, policy) == 1
    assert requested_threads(100, policy) == 50
    assert requested_threads(13, PoolPolicy(limit=50, max_per_job=50, shares=SHARES)) == 7


def test_grants_follow_priority_then_start_time() -> None:
    """HIGH is served first, then earlier starters; the last in line gets what is left."""
    policy = PoolPolicy(limit=10, max_per_job=50, shares={Priority.LOW: 50, Priority.NORMAL: 50, Priority.HIGH: 50})
    grants = allocate(
        [Claim("low", Priority.LOW, 0), Claim("high", Priority.HIGH, 5), Claim("normal", Priority.NORMAL, 1)],
        policy,
    )
    assert (grants["high"].granted, grants["normal"].granted, grants["low"].granted) == (5, 5, 0)


def test_override_replaces_priority_share() -> None:
    """migration.parallel.scan.percentage wins over the priority's share, and says so."""
    policy = PoolPolicy(limit=100, max_per_job=50, shares=SHARES)
    grant = allocate([Claim("a", Priority.LOW, 0, override=13)], policy)["a"]
    assert (grant.percentage, grant.source, grant.requested, grant.granted) == (13, "override", 13, 13)


@given(policies, claims)
def test_sum_of_grants_never_exceeds_limit(policy: PoolPolicy, bids: list[Claim]) -> None:
    """At every moment the sum of grants is at most global.scan.limit."""
    grants = allocate(bids, policy)
    assert sum(g.granted for g in grants.values()) <= policy.limit
    assert all(0 <= g.granted <= g.requested <= policy.max_per_job for g in grants.values())


@given(policies, claims)
def test_every_request_is_met_when_capacity_allows(policy: PoolPolicy, bids: list[Claim]) -> None:
    """Every claim requests at least 1, and gets all it asks when the requests fit in the pool."""
    grants = allocate(bids, policy)
    assert all(g.requested >= 1 for g in grants.values())
    if sum(g.requested for g in grants.values()) <= policy.limit:
        assert all(g.granted == g.requested for g in grants.values())


@given(policies, claims, st.data())
def test_raising_priority_never_lowers_a_grant(policy: PoolPolicy, bids: list[Claim], data: st.DataObject) -> None:
    """Monotone in priority: the same claim at a higher priority gets at least as many threads."""
    if not bids:
        return
    index = data.draw(st.integers(0, len(bids) - 1))
    claim = bids[index]
    higher = data.draw(st.sampled_from([p for p in Priority if p >= claim.priority]))
    raised = Claim(claim.job_id, higher, claim.started_at, claim.override)
    # Same share for both priorities, so only the order changes.
    same = dict(policy.shares)
    same[higher] = same[claim.priority]
    fair = PoolPolicy(policy.limit, policy.max_per_job, same)
    before = allocate(bids, fair)[claim.job_id].granted
    after = allocate([*bids[:index], raised, *bids[index + 1 :]], fair)[claim.job_id].granted
    assert after >= before


@given(policies, claims)
def test_serving_order_is_strict(policy: PoolPolicy, bids: list[Claim]) -> None:
    """A claim is short only if every claim served before it was fully granted or the pool ran dry."""
    grants = allocate(bids, policy)
    short = [c for c in bids if grants[c.job_id].granted < grants[c.job_id].requested]
    if short:
        assert sum(g.granted for g in grants.values()) == policy.limit
