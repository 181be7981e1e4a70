"""The tries to open a run whose server is unreachable, and the notice an operator reads."""

from __future__ import annotations

from datetime import UTC, datetime

from app.engines.base import Unreachable
from app.pool.reopen import Reopen

WHAT = "the source nbd+unix:///?socket=/run/src.sock"
#: 10:27:00 UTC on the day of the test, in seconds since the epoch.
WALL = datetime(2026, 12, 2, 10, 27, tzinfo=UTC).timestamp()


def refused(timeout: float = 300, delay: float = 1) -> Unreachable:
    return Unreachable(WHAT, "connect: Connection refused", retry_delay=delay, timeout=timeout)


def test_the_notice_says_what_it_waits_for_when_it_tries_and_when_it_gives_up() -> None:
    """Three failures at 0, 1 and 3 s: the next try is 4 s after the third, and the notice
    counts down to it; the giving-up time is the first failure's plus openTimeout."""
    reopen = Reopen()
    assert reopen.notice(0.0, trying=False) is None
    assert reopen.failed(refused(), 0.0, WALL) == 1.0
    assert reopen.failed(refused(), 1.0, WALL + 1) == 3.0
    assert reopen.failed(refused(), 3.0, WALL + 3) == 7.0
    assert reopen.notice(3.0, trying=False) == (
        f"waiting for {WHAT}: connect: Connection refused; next try in 4 s, giving up at 10:32:00 UTC"
    )
    assert "next try in 2 s" in (reopen.notice(5.5, trying=False) or "")
    assert "trying again now" in (reopen.notice(7.0, trying=True) or "")
    reopen.opened()
    assert reopen.notice(7.0, trying=False) is None


def test_it_gives_up_after_open_timeout() -> None:
    """With openTimeout 2 s the tries fall at 1 and 2 s after the first failure, then none."""
    reopen = Reopen()
    assert reopen.failed(refused(timeout=2), 0.0, WALL) == 1.0
    assert reopen.failed(refused(timeout=2), 1.0, WALL + 1) == 2.0
    assert reopen.failed(refused(timeout=2), 2.0, WALL + 2) is None
    assert Reopen.give_up(refused(timeout=2)) == f"gave up after 2 s waiting for {WHAT}: connect: Connection refused"


def test_open_timeout_zero_fails_at_the_first_refusal() -> None:
    assert Reopen().failed(refused(timeout=0), 5.0, WALL) is None
