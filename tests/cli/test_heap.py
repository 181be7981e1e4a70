"""What ``ferry serve`` does to the interpreter's collector before it serves."""

from __future__ import annotations

import gc

from app.cli.serving import settle_the_heap


def test_settle_the_heap_takes_every_live_object_out_of_later_collections() -> None:
    """Proves that what is alive when the server starts (here: this test process's modules and
    objects) is frozen, so that a later full collection, which holds the GIL, does not scan it."""
    try:
        alive = len(gc.get_objects())
        settle_the_heap()
        assert gc.get_freeze_count() >= alive * 0.9  # the collection before may free a few
        assert len(gc.get_objects()) < alive * 0.1  # the collector no longer tracks them
    finally:
        gc.unfreeze()
