"""What the coordinator writes about runs: outcomes, progress, checkpoints, heartbeats.

Each function is one short transaction. Writes are keyed on the run's ``run_number`` so a run
that drains after a reset or a fresh pass cannot overwrite what came after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.db import jobs as job_queries
from app.db.models import CopyJobRow, VerificationRow, utcnow
from app.db.session import Database
from app.policy.states import State
from app.pool.run import Outcome, RunHandle


def record_copy(db: Database, run: RunHandle, outcome: Outcome, run_number: int, progress: dict[str, Any]) -> bool:
    """Save a copy run's last progress and checkpoint, release it, and move its state.

    COMPLETED and FAILED move RUNNING jobs; a user's stop already moved it; an interrupted run
    (shutdown) stays RUNNING for the next start to take back. True when the state moved.
    """
    saved: dict[str, Any] = {"progress": progress, "owner": None}
    checkpoint = run.checkpoint()
    if checkpoint is not None:
        saved["checkpoint"] = checkpoint
    with db.session() as session:
        job_queries.save_run_state(session, run.job_id, run_number, **saved)
        now = utcnow()
        if outcome is Outcome.COMPLETED:
            return job_queries.move(
                session, run.job_id, State.RUNNING, State.COMPLETED, completed_at=now, passes=CopyJobRow.passes + 1
            )
        if outcome is Outcome.FAILED:
            return job_queries.move(session, run.job_id, State.RUNNING, State.FAILED, completed_at=now, error=run.error)
        return outcome is Outcome.STOPPED


def record_verification(db: Database, run: RunHandle, outcome: Outcome) -> None:
    """Close the job's verification report with the run's counts."""
    progress = run.progress()
    with db.session() as session:
        row = session.get(VerificationRow, run.job_id)
        if row is None:
            return
        row.completed_at = utcnow()
        row.counts = dict(progress.fields) if progress is not None else {}
        if outcome is Outcome.COMPLETED:
            row.status = "COMPLETED"
        else:
            row.status = "FAILED"
            row.error = run.error or f"verification {outcome.value.lower()}; verify again"


def save_progress(db: Database, entries: Iterable[tuple[str, int, dict[str, Any], dict[str, Any] | None]]) -> None:
    """Progress, checkpoint and a heartbeat for each running job, in one transaction."""
    with db.session() as session:
        now = utcnow()
        for job_id, run_number, progress, checkpoint in entries:
            values: dict[str, Any] = {"progress": progress, "heartbeat_at": now}
            if checkpoint is not None:
                values["checkpoint"] = checkpoint
            job_queries.save_run_state(session, job_id, run_number, **values)
