"""A fake engine of our own interface (app.engines.base): units that only take time.

Options: ``units`` (how many), ``unitSeconds`` (how long each sleeps), ``unitBytes`` (bytes each
"copies"), ``failAt`` (a unit number that raises JobFailed), ``openSeconds``. It records the
most units it ever saw running at once, per job and in all, so tests can check the pool's limits.
Given only when set: ``unreachableTries`` (how many opens of each job raise Unreachable first),
with ``retryDelay`` and ``openTimeout`` for the pool's backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engines.base import InvalidField, JobContext, JobFailed, Progress, Unreachable, WorkerSlot

_DEFAULTS: dict[str, Any] = {"units": 20, "unitSeconds": 0.05, "unitBytes": 1000, "failAt": -1, "openSeconds": 0.0}
_OPTIONAL = {"unreachableTries", "retryDelay", "openTimeout"}


class Concurrency:
    """How many units run at once, and the most ever."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


@dataclass(frozen=True, slots=True)
class SleepUnit:
    owner: FakeRun
    number: int
    name: str = "sleep"

    def run(self, slot: WorkerSlot) -> None:
        self.owner.execute(self)


class FakeRun:
    def __init__(self, engine: FakeEngine, ctx: JobContext) -> None:
        self.engine = engine
        self.ctx = ctx
        options = {**_DEFAULTS, **ctx.spec.options}
        self.total = int(options["units"])
        self.seconds = float(options["unitSeconds"])
        self.unit_bytes = int(options["unitBytes"])
        self.fail_at = int(options["failAt"])
        checkpoint = ctx.checkpoint or {}
        self._lock = threading.Lock()
        self.done: set[int] = set(checkpoint.get("done", []))
        self._todo = [n for n in range(self.total) if n not in self.done]
        self._inflight = 0
        self.concurrency = Concurrency()
        time.sleep(float(options["openSeconds"]))

    def next_unit(self) -> SleepUnit | None:
        with self._lock:
            if not self._todo:
                return None
            self._inflight += 1
            return SleepUnit(self, self._todo.pop(0))

    def execute(self, unit: SleepUnit) -> None:
        self.concurrency.enter()
        self.engine.concurrency.enter()
        try:
            if unit.number == self.fail_at:
                raise JobFailed(f"unit {unit.number} failed on purpose")
            time.sleep(self.seconds)
        finally:
            self.engine.concurrency.leave()
            self.concurrency.leave()

    def unit_finished(self, unit: SleepUnit, error: BaseException | None) -> None:
        with self._lock:
            self._inflight -= 1
            if error is None:
                self.done.add(unit.number)
                self.engine.executed.append((self.ctx.spec.job_id, unit.number))
            else:
                self._todo.append(unit.number)

    def is_done(self) -> bool:
        with self._lock:
            return not self._todo and self._inflight == 0

    def finish(self) -> None:
        self.engine.finished.append(self.ctx.spec.job_id)

    def progress(self) -> Progress:
        with self._lock:
            done = len(self.done)
        fields: dict[str, int | float] = {
            "unitsDone": done,
            "bytesCopied": done * self.unit_bytes,
            "bytesTotal": self.total * self.unit_bytes,
        }
        return Progress(fields, done * self.unit_bytes, self.total * self.unit_bytes)

    def checkpoint(self) -> dict[str, Any]:
        with self._lock:
            return {"done": sorted(self.done)}

    def close(self) -> None:
        self.engine.closed.append(self.ctx.spec.job_id)


class FakeEngine:
    def __init__(self, kind: str = "files") -> None:
        self.kind = kind
        self.concurrency = Concurrency()
        self.executed: list[tuple[str, int]] = []
        self.finished: list[str] = []
        self.closed: list[str] = []
        self.runs: dict[str, FakeRun] = {}
        self.opens: dict[str, int] = {}

    def validate(
        self, source: str, target: str, options: Mapping[str, Any], allowed_roots: tuple[Path, ...]
    ) -> dict[str, Any]:
        unknown = set(options) - set(_DEFAULTS) - _OPTIONAL
        if unknown:
            raise InvalidField(f"options.{sorted(unknown)[0]}", "unknown option")
        for name, value in options.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value < -1 or value > 10**6:
                raise InvalidField(f"options.{name}", "expected a number from -1 to 1000000")
        if not source.startswith("/"):
            raise InvalidField("source", "must be an absolute path")
        return {**_DEFAULTS, **options}

    def open(self, ctx: JobContext) -> FakeRun:
        job_id, options = ctx.spec.job_id, ctx.spec.options
        self.opens[job_id] = self.opens.get(job_id, 0) + 1
        if self.opens[job_id] <= int(options.get("unreachableTries", 0)):
            delay, timeout = float(options.get("retryDelay", 0.2)), float(options.get("openTimeout", 60))
            raise Unreachable("the fake server", "connection refused", retry_delay=delay, timeout=timeout)
        run = FakeRun(self, ctx)
        self.runs[ctx.spec.job_id] = run
        return run

    def empty_progress(self) -> dict[str, int | float]:
        return {"unitsDone": 0, "bytesCopied": 0, "bytesTotal": 0}
