"""The speed shown for a run: a sliding window over samples of its byte counter."""

from __future__ import annotations

from app.pool.rates import RateWindow


def test_a_first_burst_does_not_read_as_speed() -> None:
    """4 MB landing in the first 0.2 s of a copy kept at 8 MB/s: measured over 0.2 s that reads
    20 MB/s; the window counts at least 2 s, so the burst adds at most a quarter to the speed."""
    window = RateWindow(horizon=60.0)
    window.add(0.0, 0)
    window.add(0.2, 4e6)
    assert window.rate(10.0) <= 8e6
    for tick in range(1, 50):
        now = 0.2 + tick * 0.2
        window.add(now, 4e6 + 8e6 * (now - 0.2))
        assert window.rate(10.0) <= 8e6 * 1.26  # the 4 MB burst spread over the span so far


def test_a_steady_counter_reads_its_rate() -> None:
    """Past the settling time the window reads the counter's true rate, and 0 once it stops."""
    window = RateWindow(horizon=60.0)
    for tick in range(60):
        window.add(tick * 0.5, 1000.0 * tick * 0.5)
    assert abs(window.rate(10.0) - 1000.0) < 1e-6
    for tick in range(60, 90):
        window.add(tick * 0.5, 1000.0 * 29.5)
    assert window.rate(10.0) == 0.0
