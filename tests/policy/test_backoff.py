"""When a run that could not reach its server tries again (SPEC section 3), as a pure function."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.policy.backoff import LONGEST_WAIT, SHORTEST_WAIT, next_try

failures = st.integers(1, 10_000)
times = st.floats(0, 1e7)
delays = st.floats(0, 3600)
timeouts = st.floats(0, 86400)


@given(failures, times, timeouts, delays)
def test_tries_come_after_now_and_never_past_the_timeout(n: int, now: float, timeout: float, delay: float) -> None:
    """The next try is later than now, within the longest wait, and never after giving up."""
    give_up_at = now + timeout
    at = next_try(n, now, give_up_at, delay)
    if give_up_at <= now:
        assert at is None
        return
    assert at is not None
    assert now < at <= give_up_at
    assert at - now <= LONGEST_WAIT * (1 + 1e-9)  # float rounding of now + wait


@given(failures, delays)
def test_the_delay_doubles_from_retry_delay(n: int, delay: float) -> None:
    """Far from the timeout, the n-th wait is retryDelay * 2^(n-1), within the bounds."""
    at = next_try(n, 0.0, 1e9, delay)
    assert at is not None
    assert at == min(LONGEST_WAIT, max(SHORTEST_WAIT, delay * 2.0 ** min(n - 1, 64)))


@given(failures, failures, delays)
def test_later_failures_never_wait_less(a: int, b: int, delay: float) -> None:
    fewer, more = sorted((a, b))
    assert next_try(fewer, 0.0, 1e9, delay) <= next_try(more, 0.0, 1e9, delay)  # type: ignore[operator]


def test_the_last_try_falls_on_the_timeout_and_then_it_gives_up() -> None:
    """retryDelay 1 s, openTimeout 10 s from the first failure at 0: tries at 1, 3, 7, 10, then none."""
    give_up_at, now, tries = 10.0, 0.0, []
    for n in range(1, 10):
        at = next_try(n, now, give_up_at, 1.0)
        if at is None:
            break
        tries.append(at)
        now = at
    assert tries == [1.0, 3.0, 7.0, 10.0]
