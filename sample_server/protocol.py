"""The echo protocol: callbacks on the hot path, flow control, idle timeout, statistics."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from typing import cast

__all__ = ["READ_SIZE", "WRITE_HIGH_WATER", "EchoProtocol", "Stats"]

log = logging.getLogger("sample_server")

#: A client that does not read can make the server hold at most this much for it; past it,
#: the server stops reading from that client until its writes drain.
WRITE_HIGH_WATER = 256 * 1024
#: The most read from a connection at once: under glibc's mmap threshold (128 KiB), so that
#: neither this buffer's copies nor asyncio's reads go through mmap (bench/RESULTS.md).
READ_SIZE = 64 * 1024


@dataclass
class Stats:
    """Counters one worker keeps and reports in ``status``."""

    open: int = 0
    total: int = 0
    rejected: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    live: set[EchoProtocol] = field(default_factory=set)
    #: Where every connection of the server reads into: one loop runs them one at a time, and
    #: what is read is copied out before the next read.
    buffer: memoryview = field(default_factory=lambda: memoryview(bytearray(READ_SIZE)))


#: How often per idle timeout a connection's idle timer looks at it.
IDLE_TICKS = 4


class EchoProtocol(asyncio.BufferedProtocol):
    """Echo every byte back, in order, with back-pressure from the client's reading."""

    def __init__(self, stats: Stats, idle_timeout: float, max_connections: int) -> None:
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.transport: asyncio.Transport | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._quiet = 0  # idle-timer ticks since data last came in
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they behave as one.
        transport = cast(asyncio.Transport, transport)
        stats = self.stats
        if stats.open >= self.max_connections:
            stats.rejected += 1
            transport.abort()  # over the cap: close at once, without a word
            return
        self.transport = transport
        stats.open += 1
        stats.total += 1
        stats.live.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._arm_idle()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.stats.buffer

    def buffer_updated(self, nbytes: int) -> None:
        transport = self.transport
        if transport is None:
            return
        stats = self.stats
        stats.bytes_in += nbytes
        stats.bytes_out += nbytes
        # A copy: what cannot be sent at once stays with the transport (asyncio from 3.12 and
        # uvloop keep a view of it), and the buffer is read into again next.
        transport.write(stats.buffer[:nbytes].tobytes())
        # The hot path only marks the connection active: no clock read, no timer re-armed.
        self._quiet = 0

    def eof_received(self) -> bool:
        # Half-close: the client is done sending. Closing flushes what is still buffered.
        if self.transport is not None:
            self.transport.close()
        return True

    def pause_writing(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return  # rejected over the cap
        if exc is not None:
            log.debug("peer went away: %s", exc)  # resets are normal; never a traceback
        if self._idle is not None:
            self._idle.cancel()
        self.stats.open -= 1
        self.stats.live.discard(self)
        self.transport = None

    def _arm_idle(self) -> None:
        if self.idle_timeout <= 0 or self.transport is None:
            return
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.idle_timeout / IDLE_TICKS, self._tick)

    def _tick(self) -> None:
        """One of IDLE_TICKS looks per timeout: more than that many in a row without data
        means at least ``idle_timeout`` of silence (and at most a tick more)."""
        if self.transport is None:
            return
        self._quiet += 1
        if self._quiet <= IDLE_TICKS:
            self._arm_idle()
            return
        log.debug("idle for %.1f s: closing", self.idle_timeout)
        self.transport.close()

    def close_when_drained(self) -> None:
        """Graceful stop: stop reading, send what was received, then close."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            self.transport.close()
