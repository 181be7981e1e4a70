"""``python -m tests.fakes.serve``: a real ferry server process whose engines are the fake one.

Settings come from the environment like ``ferry serve``. Each finished unit is appended to the
file named by ``FERRY_FAKE_LOG`` (when set) so a test can tell what ran, across restarts.
"""

from __future__ import annotations

import os
import threading

from app.api.app import create_app
from app.cli.serving import run_server
from app.db import schema
from app.observability.logging import configure
from app.settings import Settings
from tests.fakes.engine import FakeEngine


class LoggingFakeEngine(FakeEngine):
    def __init__(self, kind: str, log_path: str) -> None:
        super().__init__(kind)
        self._log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
        self._lock = threading.Lock()
        self.executed = _Recorder(self._log, self._lock)  # type: ignore[assignment]


class _Recorder(list[tuple[str, int]]):
    def __init__(self, log: object, lock: threading.Lock) -> None:
        super().__init__()
        self._log = log
        self._lock = lock

    def append(self, item: tuple[str, int]) -> None:
        with self._lock:
            self._log.write(f"{item[0]} {item[1]}\n")  # type: ignore[attr-defined]
        super().append(item)


def main() -> None:
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    schema.upgrade(settings.effective_database_url)
    log_path = os.environ.get("FERRY_FAKE_LOG")
    engines = {kind: LoggingFakeEngine(kind, log_path) if log_path else FakeEngine(kind) for kind in ("files", "disk")}
    app = create_app(settings, engines)
    run_server(app, settings.host, settings.port)


if __name__ == "__main__":
    main()
