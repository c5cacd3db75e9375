"""The echo protocol: callbacks on the hot path, flow control, idle timeout, statistics."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import termios
from dataclasses import dataclass, field
from typing import cast

__all__ = ["READ_SIZE", "WRITE_HIGH_WATER", "EchoProtocol", "Stats"]

log = logging.getLogger("sample_server")

#: A client that does not read can make the server hold at most about this much for it (plus
#: the read that went past it); past it, the server stops reading from that client until its
#: writes drain.
WRITE_HIGH_WATER = 256 * 1024
#: The most either loop's transport reads from a connection at once (asyncio's ``max_size``;
#: uvloop reads into a buffer of about this size).
READ_SIZE = 256 * 1024


@dataclass
class Stats:
    """Counters one worker keeps and reports in ``status``."""

    total: int = 0
    rejected: int = 0
    #: Bytes received on the connections that have ended. A live connection counts its own:
    #: one attribute of its own to add to per read, rather than two of the worker's.
    ended_bytes: int = 0
    live: set[EchoProtocol] = field(default_factory=set)
    #: Connections accepted whose ``connection_made`` has not run yet. asyncio makes the
    #: transport in a task and calls ``connection_made`` from it a loop iteration or two after
    #: the accept; a worker that stopped in between would drop (reset) such a connection.
    arriving: int = 0

    @property
    def open(self) -> int:
        """Connections open now (over the cap ones are closed at once, never counted)."""
        return len(self.live)

    def settled(self) -> bool:
        """No connection accepted and not yet ended: a retiring worker may exit."""
        return not self.live and not self.arriving

    def traffic(self) -> tuple[int, int]:
        """Bytes in and out, in one pass over the live connections. In: received, each handed
        back to its connection's transport at once. Out: handed to the kernel to send, that
        is received less what the transports still hold."""
        received, held = self.ended_bytes, 0
        for protocol in self.live:
            received += protocol.received
            if protocol.transport is not None:
                held += protocol.transport.get_write_buffer_size()
        return received, received - held


#: How often per idle timeout a connection's idle timer looks at it.
IDLE_TICKS = 4


class EchoProtocol(asyncio.Protocol):
    """Echo every byte back, in order, with back-pressure from the client's reading.

    A plain Protocol, on either loop: the transport reads into ``bytes`` of the size read,
    which are written back as they are. One Python call per read; a write the socket takes
    only in part keeps those ``bytes``, which nothing else writes into. (A buffered protocol
    on uvloop saves a copy per read, which pays at 128 KiB and costs more than it saves at
    1 and 16 KiB with 100 connections: bench/RESULTS.md, "Reading".)
    """

    def __init__(self, stats: Stats, idle_timeout: float, max_connections: int) -> None:
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.transport: asyncio.Transport | None = None
        #: Bytes received on this connection (and so echoed): also what the idle timer
        #: watches, so a read does nothing more to mark the connection active.
        self.received = 0
        self._idle: asyncio.TimerHandle | None = None
        self._seen = 0  # ``received`` at the idle timer's last look
        self._quiet = 0  # idle-timer looks in a row that found nothing new
        self._paused = False
        self._finishing = False
        stats.arriving += 1  # the loop makes a protocol only for a connection it accepted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they behave as one.
        transport = cast(asyncio.Transport, transport)
        stats = self.stats
        stats.arriving -= 1
        if stats.open >= self.max_connections:
            stats.rejected += 1
            transport.abort()  # over the cap: close at once, without a word
            return
        self.transport = transport
        stats.total += 1
        stats.live.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None:
            transport.write(data)
            self.received += len(data)  # the whole bookkeeping of a read

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
        stats = self.stats
        stats.ended_bytes += self.received
        stats.live.discard(self)
        self.transport = None

    def _arm_idle(self) -> None:
        if self.idle_timeout <= 0 or self.transport is None:
            return
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.idle_timeout / IDLE_TICKS, self._tick)

    def _tick(self) -> None:
        """One of IDLE_TICKS looks per timeout: that many in a row finding no new data
        means at least ``idle_timeout`` of silence (and at most a tick more)."""
        if self.transport is None:
            return
        if self.received != self._seen:
            self._seen = self.received
            self._quiet = 0
        else:
            self._quiet += 1
        if self._quiet < IDLE_TICKS:
            self._arm_idle()
            return
        log.debug("idle for %.1f s: closing", self.idle_timeout)
        self.transport.close()

    def finish(self) -> None:
        """Graceful stop: echo what has arrived, then half-close. What the client sends after
        that is read and dropped (so closing never resets it) until it closes its side."""
        if not self._finishing:
            self._finishing = True
            self._finish_when_read()

    def _finish_when_read(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._paused or _unread(transport):
            # Some of what arrived is still to be echoed: look again in a moment.
            asyncio.get_running_loop().call_later(0.01, self._finish_when_read)
            return
        self.data_received = self._drop  # type: ignore[method-assign]
        # uvloop keeps the protocol's callbacks from when it was set: set it again, so that
        # the replaced one is the one called.
        transport.set_protocol(self)
        transport.write_eof()  # after what is buffered has been sent

    def _drop(self, data: bytes) -> None:
        pass


def _unread(transport: asyncio.BaseTransport) -> int:
    """Bytes the kernel holds for this connection that the loop has not read yet."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])
