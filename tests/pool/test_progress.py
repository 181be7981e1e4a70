"""Speed is of bytes transferred, ETA of work done: the two rates a run samples (SPEC 5)."""

from __future__ import annotations

from app.engines.base import Progress
from app.pool.run import derived_progress


def test_speed_is_transfer_and_eta_is_work_left_over_the_rate_of_work() -> None:
    """600 of 1000 bytes done, 100 of them transferred: at 10 B/s of transfer and 50 B/s of work
    done, the speed reads 10 B/s and the 400 bytes left take 8 s."""
    progress = Progress({}, done_bytes=600, total_bytes=1000, transferred_bytes=100)
    fields = derived_progress(progress, bytes_per_second=10.0, done_per_second=50.0)
    assert (fields["bytesPerSecond"], fields["etaSeconds"], fields["percentComplete"]) == (10, 8, 60.0)


def test_an_engine_that_transfers_all_it_does_needs_no_second_figure() -> None:
    """Without transferred_bytes (a verification reads every byte it checks) the two are one."""
    assert Progress({}, done_bytes=600, total_bytes=1000).transferred == 600
    assert Progress({}, done_bytes=600, total_bytes=1000, transferred_bytes=0).transferred == 0
