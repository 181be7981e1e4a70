"""Where the engines' helper processes come from, and the priority they copy at.

Copy work that holds Python's interpreter (small-file system calls, libnbd completion
callbacks, zero scans, digests) runs in helper processes, so the pool threads of ``ferry serve``
only wait on pipes and the web server never queues behind a copy for the GIL. Helpers are forked
from one fork server that has imported the engines' helper modules once, and they run at a lower
CPU priority (``FERRY_HELPER_NICE``, 0 to 19, default 10): on a host whose CPUs the copies saturate, the API
and the coordinator are served first, and the copies take everything else. Only a lower priority
is asked for, which needs no privilege.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import multiprocessing
import os
import sys
from multiprocessing.context import ForkServerContext

#: Modules the fork server imports once, so that a new helper starts in a few milliseconds.
PRELOAD = [
    "app.engines.files.helpers",
    "app.engines.files.smallfiles",
    "app.engines.files.units",
    "app.engines.disk.lane",
    "app.engines.disk.opening",
    "app.engines.disk.verify",
]
#: How much nicer than ``ferry serve`` its helpers run, unless FERRY_HELPER_NICE says otherwise
#: (measured in bench/stats_bench.py: 5 left a stats poll's p99 at 33 ms under two disk copies,
#: 10 at 23 ms with a tree copy too, and neither slowed the copies).
DEFAULT_NICE = 10


def context() -> ForkServerContext:
    """The fork server context every helper is started from."""
    _spare_helpers_the_main_script()
    found = multiprocessing.get_context("forkserver")
    found.set_forkserver_preload(PRELOAD)
    return found


class _Priority:
    nice = DEFAULT_NICE


def configure(nice: int) -> None:
    """Set how much nicer than the server new helpers run (``ferry serve`` passes its setting)."""
    _Priority.nice = nice


def helper_nice() -> int:
    """What a helper started now is told to add to its niceness (an argument of its start)."""
    return _Priority.nice


def lower_priority(nice: int) -> None:
    """Called first in every helper, with ``helper_nice()`` as the parent saw it."""
    with contextlib.suppress(OSError):
        os.nice(nice)


def _spare_helpers_the_main_script() -> None:
    """Keep helpers from running the parent's main script again.

    multiprocessing starts each child by importing the parent's main script anew (as
    ``__mp_main__``) unless the main module was run by name (``python -m``), and skips it for a
    package's ``__main__``. For ``ferry serve`` that script is the whole CLI (typer, rich,
    httpx): about 0.5 s of CPU and 28 MB more per helper, for nothing (helpers are sent
    functions of ``app`` modules, never of the script). So a main module run from a path is
    described as a package's ``__main__``, which the children skip.
    """
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None and hasattr(main, "__file__"):
        main.__spec__ = importlib.machinery.ModuleSpec("ferry.__main__", None)
