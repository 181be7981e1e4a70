"""One lane's connections and buffers, as its helper process holds them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import nbd

from app.engines.disk.buffers import ChunkBuffer
from app.engines.disk.sinks import Sink, close_handle

#: Seconds to wait for in-flight replies before closing a connection anyway.
DRAIN_TIMEOUT = 30.0


@dataclass(slots=True)
class Handles:
    source: nbd.NBD
    sink: Sink
    #: Read buffers reused for every chunk: how many bounds the reads in flight.
    buffers: list[ChunkBuffer]

    def close(self) -> None:
        """Wait for replies still due (nbdkit may abort on a disconnect with replies pending)."""
        handles = [self.source] if self.sink.handle is None else [self.source, self.sink.handle]
        deadline = time.monotonic() + DRAIN_TIMEOUT
        for handle in handles:
            try:
                while not handle.aio_is_dead() and handle.aio_in_flight() > 0 and time.monotonic() < deadline:
                    handle.poll(1000)
            except nbd.Error:
                pass
        close_handle(self.source)
        self.sink.close()
