"""The measured speed of one lane of a disk job's link, which sizes its units (SPEC section 4).

Every lane of a job talks to the same servers over the same link, so one running figure serves
them all; each unit adds what it read and how long it took. See :mod:`app.policy.pacing`.
"""

from __future__ import annotations

import threading

from app.policy.pacing import blend

#: A unit that read less than this says more about noise than about the link.
MIN_BYTES = 64 * 1024


class LinkPace:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rate: float | None = None

    @property
    def rate(self) -> float | None:
        """Bytes per second one lane reads, or None before any unit measured it."""
        with self._lock:
            return self._rate

    def observe(self, nbytes: int, seconds: float) -> None:
        """One unit read ``nbytes`` of data in ``seconds`` (zero chunks read nothing)."""
        if nbytes < MIN_BYTES or seconds <= 0:
            return
        with self._lock:
            self._rate = blend(self._rate, nbytes / seconds)


def live_rate(nbytes: int, seconds: float) -> float | None:
    """What a unit in progress measured so far, or None while it is too little to go by."""
    if nbytes < MIN_BYTES or seconds <= 0:
        return None
    return nbytes / seconds
