"""The echo protocol: callbacks on the hot path, flow control, idle timeout, statistics."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from typing import cast

__all__ = ["WRITE_HIGH_WATER", "EchoProtocol", "Stats"]

log = logging.getLogger("sample_server")

#: A client that does not read can make the server hold at most this much for it; past it,
#: the server stops reading from that client until its writes drain.
WRITE_HIGH_WATER = 256 * 1024


@dataclass
class Stats:
    """Counters one worker keeps and reports in ``status``."""

    open: int = 0
    total: int = 0
    rejected: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    live: set[EchoProtocol] = field(default_factory=set)


class EchoProtocol(asyncio.Protocol):
    """Echo every byte back, in order, with back-pressure from the client's reading."""

    def __init__(self, stats: Stats, idle_timeout: float, max_connections: int) -> None:
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.transport: asyncio.Transport | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._last = 0.0
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

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        self.stats.bytes_in += len(data)
        self.stats.bytes_out += len(data)
        transport.write(data)
        if self._idle is not None:
            # Just note the time: re-arming a timer on every chunk would cost the hot path.
            self._last = asyncio.get_running_loop().time()

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
        self._last = loop.time()
        self._idle = loop.call_at(self._last + self.idle_timeout, self._expire)

    def _expire(self) -> None:
        if self.transport is None:
            return
        loop = asyncio.get_running_loop()
        deadline = self._last + self.idle_timeout
        if loop.time() < deadline:
            self._idle = loop.call_at(deadline, self._expire)  # active since: wait on
            return
        log.debug("idle for %.1f s: closing", self.idle_timeout)
        self.transport.close()

    def close_when_drained(self) -> None:
        """Graceful stop: stop reading, send what was received, then close."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            self.transport.close()
