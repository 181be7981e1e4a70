"""The ``files`` engine: directory trees copied between mounted filesystems (SPEC section 3).

Modules, each one idea: :mod:`options` and :mod:`paths` (validation), :mod:`exclude` and
:mod:`policy` (pure rules), :mod:`listing` (one directory compared and acted on), :mod:`copy`
(the kernel copy, atomic landing), :mod:`frontier` and :mod:`store` (pending regions, bounded in
memory, persisted in ``work_items``), :mod:`units`, :mod:`copyrun` and :mod:`verifyrun` (the runs
the pool drives), :mod:`engine` (the entry point).
"""

from app.engines.files.engine import FilesEngine
from app.engines.files.regions import record_pending_region

__all__ = ["FilesEngine", "record_pending_region"]
