"""The configuration registry: parsing, normalising, refusing (SPEC section 2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.policy import properties as registry
from app.policy.allocation import Priority
from app.policy.percent import parse_percent
from app.policy.units import parse_size

DEFAULTS = registry.effective({})


@pytest.mark.parametrize(
    ("key", "text", "stored"),
    [
        ("global.scan.limit", "50", "50"),
        ("global.scan.limit", " 007 ", "7"),
        ("migration.priority.pool.allocations", "7%,36%,49%", "7%,36%,49%"),
        ("migration.priority.pool.allocations", "7,36,49", "7%,36%,49%"),
        ("migration.priority.pool.allocations", "1.5%, 4%, 100", "1.5%,4%,100%"),
        ("migration.max.running.migrations", "0", "0"),
        ("global.bandwidth.limit", "500MB", "500MB"),
        ("global.bandwidth.limit", "1gib", "1GiB"),
        ("global.bandwidth.limit", "0", "0"),
    ],
)
def test_accepted_values_are_normalised(key: str, text: str, stored: str) -> None:
    """Values are stored as the operator wrote them, normalised."""
    assert registry.validate(key, text, DEFAULTS) == stored


@pytest.mark.parametrize(
    ("key", "text", "says"),
    [
        ("global.scan.limit", "0", "integer >= 1"),
        ("global.scan.limit", "-3", "integer >= 1"),
        ("global.scan.limit", "ten", "integer >= 1"),
        ("global.scan.limit", "10001", "global.scan.pool.max"),
        ("global.scan.pool.max", "99", "global.scan.limit"),
        ("migration.priority.pool.allocations", "2%,4%", "three percentages"),
        ("migration.priority.pool.allocations", "0%,4%,8%", "0 < p <= 100"),
        ("migration.priority.pool.allocations", "2%,4%,101%", "0 < p <= 100"),
        ("migration.max.scan.threads", "0", "integer >= 1"),
        ("global.bandwidth.limit", "fast", "B, KB, MB"),
        ("global.bandwidth.limit", "1.5", "whole number"),
    ],
)
def test_refused_values_say_the_accepted_form(key: str, text: str, says: str) -> None:
    """A bad value is refused with a message naming the accepted form."""
    with pytest.raises(ValueError, match=says):
        registry.validate(key, text, DEFAULTS)


def test_runtime_config_of_defaults() -> None:
    """The SPEC's defaults: pool 100 of max 10000, 2/4/8 %, 50 threads each, 10 running, no cap."""
    config = registry.runtime_config({})
    assert (config.pool.limit, config.pool_max, config.pool.max_per_job, config.max_running) == (100, 10000, 50, 10)
    assert config.pool.shares == {Priority.LOW: 2, Priority.NORMAL: 4, Priority.HIGH: 8}
    assert config.bandwidth_limit == 0


@given(st.integers(1, 10**6), st.sampled_from(["", "B", "KB", "MB", "GB", "KiB", "MiB", "GiB"]))
def test_sizes_round_trip(number: int, unit: str) -> None:
    """A normalised size parses to the same number of bytes."""
    value, normal = parse_size(f"{number}{unit.lower()}")
    assert parse_size(normal)[0] == value


@given(st.floats(0.01, 100).map(lambda x: round(x, 2)))
def test_percent_parses_with_or_without_sign(value: float) -> None:
    """'%' is optional."""
    assert parse_percent(f"{value}") == parse_percent(f"{value}%")
