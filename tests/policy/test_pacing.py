"""Units sized by time at the measured speed (SPEC section 4), as pure functions."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from app.policy.pacing import blend, unit_bytes

MiB = 1024 * 1024
rates = st.floats(1.0, 1e11, allow_nan=False)
bounds = st.tuples(st.integers(4096, 32 * MiB), st.integers(32 * MiB, 1 << 34))
seconds = st.floats(0.05, 10.0)


@given(rates, bounds, seconds)
def test_a_unit_is_its_time_at_the_measured_speed_within_bounds(rate: float, limits: tuple[int, int], t: float) -> None:
    """Between the bounds, a unit takes what the link moves in ``t`` seconds: at that speed it
    lasts ``t`` seconds, never longer, unless one smallest piece alone takes longer."""
    smallest, largest = limits
    size = unit_bytes(rate, smallest=smallest, largest=largest, seconds=t)
    assert smallest <= size <= largest
    if size > smallest:
        assert size / rate <= t * (1 + 1e-9)
    if size < largest:
        assert size >= min(largest, math.floor(rate * t)) - 1


@given(rates, rates, bounds)
def test_a_faster_link_never_gets_smaller_units(a: float, b: float, limits: tuple[int, int]) -> None:
    """Monotonic in the speed: measuring a faster link never shrinks its units."""
    smallest, largest = limits
    slow, fast = sorted((a, b))
    assert unit_bytes(slow, smallest=smallest, largest=largest) <= unit_bytes(fast, smallest=smallest, largest=largest)


@given(st.none() | st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf]), bounds)
def test_an_unmeasured_link_gets_the_smallest_unit(rate: float | None, limits: tuple[int, int]) -> None:
    """Before any measurement (or a nonsensical one) a unit probes with the smallest size."""
    smallest, largest = limits
    assert unit_bytes(rate, smallest=smallest, largest=largest) == smallest


def test_eight_megabytes_a_second_gives_half_a_second_of_work() -> None:
    """The case of issue 10: at 8 MB/s a unit takes one 4 MiB chunk (half a second), not a
    32 MiB batch (4 s there); with 1 MiB chunks and a whole second, 8 MB."""
    assert unit_bytes(8e6, smallest=4 * MiB, largest=1 << 32) == 4 * MiB
    assert unit_bytes(8e6, smallest=MiB, largest=1 << 32, seconds=1.0) == 8_000_000


@given(st.none() | rates, rates)
def test_the_running_speed_moves_toward_each_measurement(current: float | None, measured: float) -> None:
    """A new measurement moves the running figure toward it, never past it."""
    after = blend(current, measured)
    if current is None:
        assert after == measured
    else:
        low, high = sorted((current, measured))
        assert low * (1 - 1e-12) <= after <= high * (1 + 1e-12)
