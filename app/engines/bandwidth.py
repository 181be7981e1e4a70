"""One token bucket shared by every worker: ``global.bandwidth.limit`` applied live."""

from __future__ import annotations

import threading
import time


class BandwidthLimiter:
    """Blocks callers just long enough to keep the sum of their bytes under the rate.

    A rate of 0 means unlimited, and costs one attribute read per call.
    """

    #: How much unused allowance may accumulate, in seconds of the rate: bounds bursts.
    BURST_SECONDS = 0.25

    def __init__(self, bytes_per_second: int = 0) -> None:
        self._lock = threading.Lock()
        self._rate = bytes_per_second
        self._tokens = 0.0
        self._stamp = time.monotonic()

    @property
    def rate(self) -> int:
        return self._rate

    def set_rate(self, bytes_per_second: int) -> None:
        with self._lock:
            self._rate = bytes_per_second
            self._tokens = 0.0
            self._stamp = time.monotonic()

    def acquire(self, nbytes: int, cancelled: threading.Event | None = None) -> None:
        """Wait until ``nbytes`` may be sent; returns early if ``cancelled`` is set."""
        if self._rate <= 0 or nbytes <= 0:
            return
        with self._lock:
            rate = self._rate
            if rate <= 0:
                return
            now = time.monotonic()
            self._tokens = min(self._tokens + (now - self._stamp) * rate, rate * self.BURST_SECONDS)
            self._stamp = now
            # Take the bytes now (going into debt); the debt is the time this caller waits, so
            # concurrent callers queue up behind each other fairly.
            self._tokens -= nbytes
            wait = -self._tokens / rate if self._tokens < 0 else 0.0
        if wait > 0:
            if cancelled is not None:
                cancelled.wait(wait)
            else:
                time.sleep(wait)
