"""``ferry serve`` with the fake engine, as its own process: what the log tests read the output of.

Run as ``python -m tests.observability.fake_server``; settings come from FERRY_* like the real one.
"""

from __future__ import annotations

import uvicorn

from app.api.app import create_app
from app.db import schema
from app.observability.logging import configure
from app.settings import Settings
from tests.fakes.engine import FakeEngine


def main() -> None:
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    schema.upgrade(settings.effective_database_url)
    app = create_app(settings, {"files": FakeEngine("files"), "disk": FakeEngine("disk")})
    uvicorn.run(app, host=settings.host, port=settings.port, workers=1, log_config=None, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
