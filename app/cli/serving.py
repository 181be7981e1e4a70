"""Running the ASGI server: one worker, and SIGTERM ending in exit status 0."""

from __future__ import annotations

import gc
import signal
import socket
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
    settle_the_heap()
    # The port first: a node that cannot serve must not join the cluster and take work.
    sock = bind(host, port)
    # One worker: the pool lives in this process.
    config = uvicorn.Config(app, workers=1, log_config=None, timeout_graceful_shutdown=5, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


def settle_the_heap() -> None:
    """Collect once, then leave everything alive now (modules, routes, schemas, the services:
    some 140 000 objects) out of the cyclic collector's future passes.

    A full collection scans every tracked object while it holds the GIL; with copies running it
    took 80 to 100 ms, on whichever thread triggered it, often the event loop's, and every request
    waited that long (the stats benchmark's worst answers). Frozen, a full pass scans only what
    was allocated since: 7 ms under the same load.
    """
    gc.collect()
    gc.freeze()


class PortInUse(OSError):
    """The address to serve on is taken (or not ours to bind)."""


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
