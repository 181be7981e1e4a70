"""A run's tries to open while its source or target cannot be reached (SPEC section 3).

The engine raises :class:`~app.engines.base.Unreachable` with the job's backoff and timeout;
this counts the tries, says when the next is due (:func:`app.policy.backoff.next_try`) and words
the notice an operator reads in the migration's ``error`` meanwhile. Not thread-safe: the
:class:`~app.pool.run.RunHandle` calls it under its lock.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from app.engines.base import Unreachable
from app.policy.backoff import next_try


class Reopen:
    def __init__(self) -> None:
        #: What the last try could not reach, or None once open (or never failed).
        self.unreachable: Unreachable | None = None
        #: The monotonic time of the next try, while waiting.
        self.retry_at = 0.0
        self._failures = 0
        self._give_up_at = 0.0
        self._give_up_wall = 0.0  # the same moment in seconds since the epoch, for the notice

    def failed(self, error: Unreachable, now: float, wall: float) -> float | None:
        """One more try failed at ``now`` (monotonic; ``wall`` the same moment since the epoch):
        when the next is due, or None when the run should give up."""
        if self._failures == 0:
            self._give_up_at = now + error.timeout
            self._give_up_wall = wall + error.timeout
        self._failures += 1
        at = next_try(self._failures, now, self._give_up_at, error.retry_delay)
        if at is not None:
            self.unreachable, self.retry_at = error, at
        return at

    def opened(self) -> None:
        self.unreachable = None

    def notice(self, now: float, *, trying: bool) -> str | None:
        """What the run waits for, while it cannot open; ``trying``: a try is under way now."""
        waiting = self.unreachable
        if waiting is None:
            return None
        when = "trying again now" if trying else f"next try in {max(0, math.ceil(self.retry_at - now))} s"
        until = datetime.fromtimestamp(self._give_up_wall, UTC).strftime("%H:%M:%S UTC")
        return f"waiting for {waiting.what}: {waiting.reason}; {when}, giving up at {until}"

    @staticmethod
    def give_up(error: Unreachable) -> str:
        return f"gave up after {error.timeout:g} s waiting for {error.what}: {error.reason}"
