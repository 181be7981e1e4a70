"""A job's rows in ``work_items``: the persistent half of the frontier and of the copy state.

Buckets (the ``bucket`` column; verification runs use their own, prefixed ``v``):

* ``pending``  directories still to list (key: relative path, ``""`` for the root);
* ``spill``    pending directories kept out of memory because the frontier grew past its bound;
* ``active``   directories listed whose files are not all copied: relisted (children not
  queued again) on resume;
* ``partial``  large files being copied range by range (payload: temporary name, size, mtime,
  finished offsets);
* ``failed``   entries the copy could not copy (payload: reason, attempts, time, the region that
  tries them again): kept when the pass ends FAILED, so a resume tries them again;
* ``meta``     one row ``state``: counters and recent failures, written with the rest.

Every method is one short transaction; none is called with file I/O in progress.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, insert, select

from app.db.models import WorkItemRow
from app.db.session import Database

PENDING, SPILL, ACTIVE, PARTIAL, FAILED, META = "pending", "spill", "active", "partial", "failed", "meta"
#: Rows per statement, under SQLite's bound-parameter limit.
BATCH = 400
#: The value that deletes a row in :meth:`Store.apply`.
DELETE: Any = object()

Ops = Mapping[tuple[str, str], Any]


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


class Store:
    def __init__(self, db: Database, job_id: str, prefix: str = "") -> None:
        self.db = db
        self.job_id = job_id
        self.prefix = prefix

    def _b(self, bucket: str) -> str:
        return self.prefix + bucket

    def load(self, bucket: str) -> dict[str, Any]:
        with self.db.session() as session:
            rows = session.execute(
                select(WorkItemRow.key, WorkItemRow.payload).where(
                    WorkItemRow.job_id == self.job_id, WorkItemRow.bucket == self._b(bucket)
                )
            )
            return {row.key: row.payload for row in rows}

    def count(self, bucket: str) -> int:
        with self.db.session() as session:
            return (
                session.scalar(
                    select(func.count()).where(WorkItemRow.job_id == self.job_id, WorkItemRow.bucket == self._b(bucket))
                )
                or 0
            )

    def page(self, bucket: str, offset: int, limit: int) -> list[tuple[str, Any]]:
        """Rows of ``bucket`` in key order, ``limit`` of them from ``offset``."""
        with self.db.session() as session:
            rows = session.execute(
                select(WorkItemRow.key, WorkItemRow.payload)
                .where(WorkItemRow.job_id == self.job_id, WorkItemRow.bucket == self._b(bucket))
                .order_by(WorkItemRow.key)
                .offset(offset)
                .limit(limit)
            )
            return [(row.key, row.payload) for row in rows]

    def _delete(self, session: Any, bucket: str, keys: list[str]) -> None:
        for chunk in _chunks(keys):
            session.execute(
                delete(WorkItemRow).where(
                    WorkItemRow.job_id == self.job_id,
                    WorkItemRow.bucket == self._b(bucket),
                    WorkItemRow.key.in_(chunk),
                )
            )

    def _put(self, session: Any, bucket: str, items: dict[str, Any]) -> None:
        self._delete(session, bucket, list(items))
        rows = [
            {"job_id": self.job_id, "bucket": self._b(bucket), "key": key, "payload": payload}
            for key, payload in items.items()
        ]
        for chunk in _chunks(rows):
            session.execute(insert(WorkItemRow), chunk)

    def apply(self, ops: Ops) -> None:
        """Write puts and deletes (``DELETE``) keyed by ``(bucket, key)`` in one transaction."""
        if not ops:
            return
        puts: dict[str, dict[str, Any]] = {}
        deletes: dict[str, list[str]] = {}
        for (bucket, key), payload in ops.items():
            if payload is DELETE:
                deletes.setdefault(bucket, []).append(key)
            else:
                puts.setdefault(bucket, {})[key] = payload
        with self.db.session() as session:
            for bucket, keys in deletes.items():
                self._delete(session, bucket, keys)
            for bucket, items in puts.items():
                self._put(session, bucket, items)

    def spill(self, keys: list[str]) -> None:
        """Move pending directories out of memory: into ``spill``, out of ``pending``."""
        with self.db.session() as session:
            self._delete(session, PENDING, keys)
            self._put(session, SPILL, dict.fromkeys(keys))

    def refill(self, limit: int) -> list[str]:
        """Take up to ``limit`` spilled directories back: out of ``spill``, into ``pending``."""
        with self.db.session() as session:
            keys = list(
                session.scalars(
                    select(WorkItemRow.key)
                    .where(WorkItemRow.job_id == self.job_id, WorkItemRow.bucket == self._b(SPILL))
                    .order_by(WorkItemRow.key)
                    .limit(limit)
                )
            )
            self._delete(session, SPILL, keys)
            self._put(session, PENDING, dict.fromkeys(keys))
            return keys

    def clear(self, buckets: Iterable[str] | None = None) -> None:
        """Forget this job's rows (of ``buckets``, or of this store's whole prefix)."""
        with self.db.session() as session:
            query = delete(WorkItemRow).where(WorkItemRow.job_id == self.job_id)
            if buckets is not None:
                query = query.where(WorkItemRow.bucket.in_([self._b(b) for b in buckets]))
            elif self.prefix:
                query = query.where(WorkItemRow.bucket.startswith(self.prefix))
            else:
                query = query.where(~WorkItemRow.bucket.startswith("v"))
            session.execute(query)
