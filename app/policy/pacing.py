"""How much a unit of work may take: about a second's worth at the speed measured on its link.

SPEC section 4: a smaller grant or a stop takes effect as workers finish their current unit, so
a unit must not outlast a second or so even on a slow source. Sizing units by bytes alone fails
there: 32 MiB is a few milliseconds on a local disk and four seconds at 8 MB/s.
"""

from __future__ import annotations

import math

#: Seconds a unit keeps taking more work; past them it only waits for what it has started.
UNIT_SECONDS = 1.0
#: Seconds of work a unit takes at the measured speed: half its time, so that a speed misjudged
#: by half (a server's burst ending, a link slowing down) still ends it within about a second,
#: and a smaller grant or a stop takes effect within the 2 s SPEC section 4 allows. Measured on
#: a link giving 8 MB/s after a 2 s burst: units sized to a whole second took 1.5 s.
BUDGET_SECONDS = 0.5
#: Weight of the newest measurement in a link's running speed: a slower one counts at once
#: (the next units must shrink), a faster one is believed over a few units (one burst must not
#: grow the next ones past what the link keeps up).
SLOWER_WEIGHT = 0.7
FASTER_WEIGHT = 0.3


def unit_bytes(rate: float | None, *, smallest: int, largest: int, seconds: float = BUDGET_SECONDS) -> int:
    """Bytes a unit may take on a lane measured at ``rate`` bytes per second.

    Unmeasured (``None``, or nothing sensible) gives ``smallest``: a first unit probes with
    that much, and the speed it measures sizes the rest. Never below ``smallest`` (a unit always
    makes progress) nor above ``largest``.
    """
    if rate is None or not math.isfinite(rate) or rate <= 0 or seconds <= 0:
        return smallest
    return max(smallest, min(largest, int(rate * seconds)))


def blend(current: float | None, measured: float) -> float:
    """A link's running speed after one more measurement of it (bytes per second)."""
    if current is None:
        return measured
    weight = SLOWER_WEIGHT if measured < current else FASTER_WEIGHT
    return current + weight * (measured - current)
