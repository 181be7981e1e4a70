"""The measured speed of one worker's share of a job's link, which sizes its units (SPEC 4).

Every worker of a job talks to the same source and target over the same link, so one running
figure serves them all; each unit adds what it moved and how long it took. The disk engine's
lanes and the files engine's large-file ranges and batches use it. See :mod:`app.policy.pacing`.
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
        """Bytes per second one worker moves, or None before any unit measured it."""
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
