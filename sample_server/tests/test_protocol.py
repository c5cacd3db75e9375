"""Unit tests of the connection logic: the echo protocols on a real event loop and socket pair.

The worker's loop decides the protocol (``protocol_for``): the shared logic is tested on every
loop importable here, each with the protocol it gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import mmap
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sample_server.protocol import (
    READ_SIZE,
    WRITE_HIGH_WATER,
    BufferedEcho,
    EchoProtocol,
    PlainEcho,
    Stats,
    protocol_for,
)
from sample_server.server import new_loop, uvloop_problem


def _kinds() -> list[str]:
    # uvloop is in the test extra and in app.pyz, but where its wheel does not fit the
    # interpreter the server runs on asyncio alone, and so do these tests. The loops are
    # gone through inside each test, not as parameters, so that the same tests are collected
    # everywhere (test_app.py compares the counts).
    return ["asyncio"] if uvloop_problem() else ["asyncio", "uvloop"]


#: The connections a scenario made (by _pair): closed after it, whatever it did. A failed
#: assertion leaves them open, and uvloop's close() would wait for them for ever.
_opened: list[tuple[socket.socket, EchoProtocol]] = []


def _on_every_loop(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run *scenario* on a new loop of each kind there is here; a failure names the loop."""
    for kind in _kinds():
        loop, got = new_loop(kind)
        assert got == kind
        try:
            loop.run_until_complete(scenario())
        except AssertionError as exc:
            raise AssertionError(f"on {kind}: {exc}") from exc
        finally:
            for peer, protocol in _opened:
                peer.close()
                if protocol.transport is not None:
                    protocol.transport.abort()
            _opened.clear()
            loop.run_until_complete(asyncio.sleep(0))  # the transports let go of their sockets
            loop.close()


def _feed(protocol: EchoProtocol, data: bytes) -> None:
    """Hand *data* to the protocol as its transport does with what it reads."""
    if isinstance(protocol, BufferedEcho):
        buffer = protocol.get_buffer(-1)
        buffer[: len(data)] = data
        protocol.buffer_updated(len(data))
    else:
        assert isinstance(protocol, PlainEcho)
        protocol.data_received(data)


async def _receive(peer: socket.socket, size: int) -> bytes:
    """Read *size* bytes from *peer*, each wait bounded."""
    loop = asyncio.get_running_loop()
    got = bytearray()
    while len(got) < size:
        data = await asyncio.wait_for(loop.sock_recv(peer, 1 << 16), 5)
        assert data, f"closed after {len(got)} bytes of {size}"
        got += data
    return bytes(got)


def test_each_loop_gets_its_protocol() -> None:
    assert protocol_for("asyncio") is BufferedEcho
    assert protocol_for("uvloop") is PlainEcho
    assert issubclass(BufferedEcho, asyncio.BufferedProtocol)
    assert issubclass(PlainEcho, asyncio.Protocol)


async def _pair(
    stats: Stats, idle: float = 0.0, cap: int = 10, echo: type[EchoProtocol] | None = None
) -> tuple[socket.socket, EchoProtocol]:
    # A real TCP connection on loopback, as the server sees its clients.
    # Small kernel buffers, so that back-pressure shows after a few kilobytes.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        theirs = socket.socket()
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        theirs.connect(listener.getsockname())
        ours, _ = listener.accept()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    kind = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
    cls = echo or protocol_for(kind)
    _, protocol = await loop.connect_accepted_socket(lambda: cls(stats, idle, cap), ours)
    _opened.append((theirs, protocol))
    return theirs, protocol


def test_tcp_nodelay_is_set() -> None:
    async def scenario() -> None:
        peer, protocol = await _pair(Stats())
        assert protocol.transport is not None
        sock = protocol.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        protocol.transport.close()
        peer.close()

    _on_every_loop(scenario)


def test_the_read_buffer_is_page_aligned() -> None:
    # malloc aligns to 16 bytes only; the kernel's copy into a buffer 16 bytes past a cache
    # line measured 2.8x slower (bench/recv_alignment.py).
    buffer = Stats().buffer
    assert len(buffer) == READ_SIZE and not buffer.readonly
    assert ctypes.addressof(ctypes.c_char.from_buffer(buffer)) % mmap.PAGESIZE == 0


def test_echo_and_counters() -> None:
    async def scenario() -> None:
        stats = Stats()
        peer, protocol = await _pair(stats)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(peer, b"hello")
        assert await asyncio.wait_for(loop.sock_recv(peer, 5), 5) == b"hello"
        assert (stats.open, stats.total, stats.bytes_in, stats.bytes_out) == (1, 1, 5, 5)
        peer.shutdown(socket.SHUT_WR)  # half-close: the server closes after echoing
        assert await asyncio.wait_for(loop.sock_recv(peer, 5), 5) == b""
        await asyncio.sleep(0)
        assert stats.open == 0 and protocol.transport is None
        peer.close()

    _on_every_loop(scenario)


def test_reading_pauses_while_the_client_does_not_read() -> None:
    async def scenario() -> None:
        stats = Stats()
        peer, protocol = await _pair(stats)
        # More than the peer can take, each read different: what is queued must stay intact.
        chunks = [bytes([i]) * READ_SIZE for i in range(1, WRITE_HIGH_WATER * 2 // READ_SIZE + 1)]
        for chunk in chunks:
            _feed(protocol, chunk)
        assert protocol._paused
        assert protocol.transport is not None and not protocol.transport.is_reading()
        want = b"".join(chunks)
        assert await _receive(peer, len(want)) == want
        await asyncio.sleep(0.01)
        assert not protocol._paused and protocol.transport.is_reading()

    _on_every_loop(scenario)


def test_a_buffer_the_transport_still_sends_from_is_not_read_into() -> None:
    # BufferedEcho on every loop, though the server gives it only to asyncio's: transports
    # differ in what they keep of a write they could not finish (asyncio 3.11 copies it,
    # asyncio 3.12+ and uvloop keep a view of the buffer written from), and uvloop shows a
    # view being overwritten on 3.11 too.
    async def scenario() -> None:
        stats = Stats()
        peer, protocol = await _pair(stats, echo=BufferedEcho)
        assert isinstance(protocol, BufferedEcho)
        loop = asyncio.get_running_loop()
        chunks = [bytes([i]) * (READ_SIZE // 2 + i) for i in range(1, 5)]
        first = stats.buffer
        for chunk in chunks:  # the peer reads nothing meanwhile
            _feed(protocol, chunk)
            assert protocol._lent is first  # lent at the first write, sent only in part
        assert stats.buffer is not first
        want = b"".join(chunks)
        assert await _receive(peer, len(want)) == want  # nothing overwritten by later reads
        protocol.get_buffer(-1)  # all sent: the lent buffer is given back for reuse
        assert protocol._lent is None and len(stats.spare) == 1 and stats.spare[0] is first
        await loop.sock_sendall(peer, b"again")
        assert await asyncio.wait_for(loop.sock_recv(peer, 5), 5) == b"again"

    _on_every_loop(scenario)


def test_idle_connections_close() -> None:
    async def scenario() -> None:
        stats = Stats()
        peer, _ = await _pair(stats, idle=0.05)
        loop = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b""
        peer.close()

    _on_every_loop(scenario)


def test_activity_keeps_a_connection_open_past_the_idle_timeout() -> None:
    async def scenario() -> None:
        stats = Stats()
        idle = 0.2
        peer, protocol = await _pair(stats, idle=idle)
        loop = asyncio.get_running_loop()
        began = loop.time()
        while loop.time() - began < 4 * idle:  # talking all along: well past one timeout
            await loop.sock_sendall(peer, b"x")
            assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b"x"
            last = loop.time()  # the server saw the byte just before this
            await asyncio.sleep(idle / 4)
        assert protocol.transport is not None and not protocol.transport.is_closing()
        assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b""  # then silence
        assert loop.time() - last >= idle * 0.95  # not before the timeout (clock slack)
        peer.close()

    _on_every_loop(scenario)


def test_over_the_cap_is_closed_at_once() -> None:
    async def scenario() -> None:
        stats = Stats()
        peer, protocol = await _pair(stats, cap=0)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b""
        assert (stats.rejected, stats.open, protocol.transport) == (1, 0, None)
        peer.close()

    _on_every_loop(scenario)


def test_the_shared_part_alone_is_refused() -> None:
    # It would accept a connection and then fail on its first read.
    with pytest.raises(TypeError, match="protocol_for"):
        EchoProtocol(Stats(), 0.0, 10)
