"""How much a unit of work may take: about a second's worth at the speed measured on its link.

SPEC section 4: a smaller grant or a stop takes effect as workers finish their current unit, so
a unit must not outlast a second or so even on a slow source. Sizing units by bytes alone fails
there: 32 MiB is a few milliseconds on a local disk and four seconds at 8 MB/s.
"""

from __future__ import annotations

import math

#: Seconds of work one unit aims at; with a unit's last replies still to come, a smaller grant
#: or a stop then takes effect well within the 2 s that SPEC section 4 allows.
UNIT_SECONDS = 1.0
#: Weight of the newest measurement in a link's running speed: a slowed link shows within a
#: few units, one unlucky unit does not halve the next ones.
NEWEST_WEIGHT = 0.3


def unit_bytes(rate: float | None, *, smallest: int, largest: int, seconds: float = UNIT_SECONDS) -> int:
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
    return current + NEWEST_WEIGHT * (measured - current)
