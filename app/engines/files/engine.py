"""``FilesEngine``: the ``files`` kind of SPEC section 3, plugged into the pool."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from app.db.session import Database
from app.engines.base import InvalidField, JobContext, JobFailed, JobRun, Purpose
from app.engines.files.copyrun import CopyRun
from app.engines.files.counters import empty_fields
from app.engines.files.failures import public
from app.engines.files.helpers import Helpers
from app.engines.files.largefiles import remove_partials
from app.engines.files.options import parse_options
from app.engines.files.paths import validate_paths
from app.engines.files.regions import record_pending_region
from app.engines.files.store import FAILED, Store
from app.engines.files.syncfs import syncfs
from app.engines.files.tuning import Tuning
from app.engines.files.verifyrun import VerifyRun


class FilesEngine:
    """Copies (or verifies) a directory tree between mounted filesystems."""

    kind = "files"

    def __init__(self, tuning: Tuning | None = None, sync: Callable[[Path], None] = syncfs) -> None:
        self.tuning = tuning or Tuning()
        self.helpers = Helpers() if self.tuning.helpers else None
        #: Flushes a target's filesystem before a checkpoint records files (``durability: checkpoint``).
        self.sync = sync

    def warm_up(self, helpers: int) -> None:
        """Start ``helpers`` helper processes in the background (a server about to take work)."""
        if self.helpers is not None:
            self.helpers.prestart(helpers)

    def validate(
        self, source: str, target: str, options: Mapping[str, Any], allowed_roots: tuple[Path, ...]
    ) -> dict[str, Any]:
        parsed = parse_options(options)
        validate_paths(source, target, allowed_roots)
        return parsed.as_dict()

    def open(self, ctx: JobContext) -> JobRun:
        try:
            options = parse_options(ctx.spec.options)
        except InvalidField as exc:
            raise JobFailed(str(exc)) from exc
        source = Path(os.path.realpath(ctx.spec.source))
        target = Path(os.path.realpath(ctx.spec.target))
        if not source.is_dir():
            raise JobFailed(f"the source {ctx.spec.source} is not a directory (any more)")
        if ctx.purpose is Purpose.VERIFY:
            verify = VerifyRun(ctx, options, source, target, self.tuning)
            verify.start()
            return verify
        run = CopyRun(ctx, options, source, target, self.tuning, self.helpers, self.sync)
        run.start()
        return run

    def empty_progress(self) -> dict[str, int | float]:
        return empty_fields()

    def discard_partials(self, db: Database, job_id: str, target: str) -> int:
        """Remove the temporaries of large files a stopped copy was part way through (kept so a
        resume continues mid-file): the job is being deleted and will not resume."""
        return remove_partials(Store(db, job_id), Path(target))

    def failures(self, db: Database, job_id: str, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """The entries the job's latest pass could not copy (as of its last checkpoint)."""
        store = Store(db, job_id)
        return store.count(FAILED), [public(relpath, record) for relpath, record in store.page(FAILED, offset, limit)]

    def add_pending_region(self, db: Database, job_id: str, path: str, run: JobRun | None) -> None:
        """Rescan one directory: now in a running copy, else at the job's next run."""
        if not (isinstance(run, CopyRun) and run.add_pending_region(path)):
            record_pending_region(db, job_id, path)  # not running, or its pass just ended
