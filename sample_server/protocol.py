"""The echo protocol: callbacks on the hot path, flow control, idle timeout, statistics."""

from __future__ import annotations

import asyncio
import logging
import mmap
import socket
from dataclasses import dataclass, field
from typing import cast

__all__ = [
    "READ_SIZE",
    "WRITE_HIGH_WATER",
    "BufferedEcho",
    "EchoProtocol",
    "PlainEcho",
    "Stats",
    "protocol_for",
]

log = logging.getLogger("sample_server")

#: A client that does not read can make the server hold at most about this much for it (plus
#: one read buffer it may be lent, and one read's copy); past it, the server stops reading
#: from that client until its writes drain.
WRITE_HIGH_WATER = 256 * 1024
#: The most read from a connection at once: as much as asyncio's own transports read, so a
#: 128 KiB message is one read and one write.
READ_SIZE = 256 * 1024
#: Read buffers a worker keeps for reuse once the transports that held them let go.
SPARE_BUFFERS = 4


@dataclass
class Stats:
    """Counters one worker keeps and reports in ``status``."""

    open: int = 0
    total: int = 0
    rejected: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    live: set[EchoProtocol] = field(default_factory=set)
    #: Where every connection of the worker reads into (BufferedEcho): one loop runs them one
    #: at a time, and what is read is sent from there before the next read.
    buffer: memoryview = field(default_factory=lambda: _new_buffer())
    #: Buffers handed back by transports, to be read into again.
    spare: list[memoryview] = field(default_factory=list)

    def lend(self) -> memoryview:
        """Give the read buffer away (a transport keeps a view of it) and take another."""
        lent = self.buffer
        self.buffer = self.spare.pop() if self.spare else _new_buffer()
        return lent

    def give_back(self, buffer: memoryview) -> None:
        if len(self.spare) < SPARE_BUFFERS:
            self.spare.append(buffer)


def _new_buffer() -> memoryview:
    # An anonymous mapping, page-aligned: a bytearray sits wherever malloc put it, 16-byte
    # aligned, and the kernel's copy into a buffer 16 bytes past a cache line measured 2.8x
    # slower here (bench/recv_alignment.py). Its pages are only taken when first read into.
    return memoryview(mmap.mmap(-1, READ_SIZE))


#: How often per idle timeout a connection's idle timer looks at it.
IDLE_TICKS = 4


class EchoProtocol(asyncio.BaseProtocol):
    """Echo every byte back, in order, with back-pressure from the client's reading.

    What is shared by both ways of receiving: the connection cap, the counters, flow control,
    half-close and the idle timeout. ``protocol_for`` picks the subclass for the loop.
    """

    def __init__(self, stats: Stats, idle_timeout: float, max_connections: int) -> None:
        if type(self) is EchoProtocol:
            # It has no way to receive data: the transport would fail on the first read.
            raise TypeError("EchoProtocol is the shared part: use protocol_for(loop kind)")
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


class PlainEcho(EchoProtocol, asyncio.Protocol):
    """For uvloop: it reads into a buffer of its own and hands over ``bytes``.

    One Python call per read, where a buffered protocol costs two (``get_buffer`` and
    ``buffer_updated``, each in the connection's context) and uvloop wraps the written view
    in two more memoryviews: the buffered one measured about 1 µs more CPU per 1 KiB echo on
    uvloop, and 6 µs less per 128 KiB one, where uvloop copies what it read into ``bytes``
    (docs/sample_server.md). This is what the minimal uvloop echo does, so it keeps pace with
    it at every size. uvloop allocates the ``bytes`` by the size read: no 256 KiB allocation
    per read as in asyncio's transport (see BufferedEcho). A write the socket does not take
    whole keeps a reference to the ``bytes``, which nothing else writes into.
    """

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        stats = self.stats
        nbytes = len(data)
        stats.bytes_in += nbytes
        stats.bytes_out += nbytes
        transport.write(data)
        self._quiet = 0  # marks the connection active: no clock read, no timer re-armed


class BufferedEcho(EchoProtocol, asyncio.BufferedProtocol):
    """For asyncio: every connection of the worker reads into the worker's one buffer.

    asyncio's transport, given a plain Protocol, allocates 256 KiB for every read; glibc
    serves that with mmap/munmap or from the heap depending on its history, which made the
    echo cost up to four times as much per message in some runs (bench/RESULTS.md).
    """

    def __init__(self, stats: Stats, idle_timeout: float, max_connections: int) -> None:
        super().__init__(stats, idle_timeout, max_connections)
        #: The read buffer the transport holds a view of, after a write it could not finish.
        self._lent: memoryview | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._lent is not None:  # one attribute look per read when nothing is lent
            self._take_back()
        return self.stats.buffer

    def _take_back(self) -> None:
        """Return the lent buffer to the worker once the transport has sent all of it."""
        lent, transport = self._lent, self.transport
        if lent is not None and transport is not None and not transport.get_write_buffer_size():
            self.stats.give_back(lent)  # the transport holds no view of it now
            self._lent = None

    def buffer_updated(self, nbytes: int) -> None:
        transport = self.transport
        if transport is None:
            return
        stats = self.stats
        stats.bytes_in += nbytes
        stats.bytes_out += nbytes
        if self._lent is not None:
            # Still sending earlier data (a write leaves data queued only when it lends the
            # buffer, and get_buffer takes it back once nothing is): this joins the queue,
            # so it must be a copy.
            transport.write(stats.buffer[:nbytes].tobytes())
        else:
            # Sent straight from the buffer, no copy (copying out measured 1.4x the CPU per
            # 128 KiB echo: bench/RESULTS.md). What the socket did not take stays in the
            # transport as a view of the buffer (asyncio from 3.12, uvloop): the buffer is then
            # the transport's until it has sent it, and reads go to another. One lent buffer
            # per connection at most: until it is back, the branch above copies.
            transport.write(stats.buffer[:nbytes])
            if transport.get_write_buffer_size():
                self._lent = stats.lend()
        self._quiet = 0  # marks the connection active: no clock read, no timer re-armed

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._lent = None  # not reused: whatever the transport did with it, it is garbage now


def protocol_for(loop_kind: str) -> type[EchoProtocol]:
    """The echo protocol for a loop kind as ``new_loop`` names it ("asyncio" or "uvloop")."""
    return PlainEcho if loop_kind == "uvloop" else BufferedEcho
