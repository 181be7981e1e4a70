"""When to try again to open a run whose source or target could not be reached (SPEC section 3).

The migration's ``retryDelay`` first, doubling after each failed try, until ``openTimeout``
seconds after the first failure; the last try falls on that moment, and if it fails too the
run gives up.
"""

from __future__ import annotations

#: Longest wait between two tries: a server back after a long outage is found within a minute,
#: even late in a long ``openTimeout``.
LONGEST_WAIT = 60.0
#: Shortest wait, so that ``retryDelay: 0`` does not hammer a server that is down.
SHORTEST_WAIT = 0.1


def next_try(failures: int, now: float, give_up_at: float, retry_delay: float) -> float | None:
    """The time of the next try after ``failures`` failed tries in a row (1 after the first),
    or None when ``give_up_at`` has come. Times are in seconds on one monotonic clock."""
    if now >= give_up_at:
        return None
    doubled = retry_delay * 2.0 ** min(max(failures, 1) - 1, 64)
    wait = min(LONGEST_WAIT, max(SHORTEST_WAIT, doubled))
    return min(now + wait, give_up_at)
