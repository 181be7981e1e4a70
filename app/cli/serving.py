"""Running the ASGI server: one worker, and SIGTERM ending in exit status 0."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def run_server(app: FastAPI, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then shut down in order and exit 0.

    Uvicorn turns the signal into the app's ordered shutdown (stop handing out units, drain,
    checkpoint), then raises the signal again for whatever handler was there before it; ours
    makes that a clean exit, since a drained shutdown is a success.
    """
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # One worker: the pool lives in this process.
    uvicorn.run(app, host=host, port=port, workers=1, log_config=None, timeout_graceful_shutdown=5, server_header=False)
