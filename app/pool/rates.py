"""Speed from samples of a growing counter: a sliding window, no threads of its own."""

from __future__ import annotations

from collections import deque


class RateWindow:
    """Samples ``(time, value)`` of a monotone counter and answers rate over the last seconds."""

    def __init__(self, horizon: float = 300.0) -> None:
        self._horizon = horizon
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> None:
        self._samples.append((now, value))
        while self._samples and now - self._samples[0][0] > self._horizon:
            self._samples.popleft()

    def increase(self, seconds: float) -> float:
        """How much the counter grew over the last ``seconds`` (what the window holds of them)."""
        if not self._samples:
            return 0.0
        now, latest = self._samples[-1]
        base = latest
        for stamp, value in reversed(self._samples):
            if now - stamp > seconds:
                break
            base = value
        return max(0.0, latest - base)

    #: A rate is never taken over less time than this: the first moments of a copy (a burst the
    #: bandwidth limiter allows, a chunk landing just before a sample) would read far above the
    #: speed the copy keeps. It reads low for its first seconds instead.
    SETTLE_SECONDS = 2.0

    def rate(self, seconds: float = 10.0) -> float:
        """Units per second over the last ``seconds`` (at least ``SETTLE_SECONDS``, however
        little time the samples span yet); 0 until there are two samples."""
        if len(self._samples) < 2:
            return 0.0
        now, latest = self._samples[-1]
        start_time, start_value = self._samples[-1]
        for stamp, value in reversed(self._samples):
            if now - stamp > seconds:
                break
            start_time, start_value = stamp, value
        elapsed = max(now - start_time, min(seconds, self.SETTLE_SECONDS))
        return (latest - start_value) / elapsed if elapsed > 0 else 0.0
