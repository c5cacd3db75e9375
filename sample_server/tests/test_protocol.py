"""Unit tests of the connection logic: EchoProtocol on a real event loop and socket pair."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from sample_server.protocol import READ_SIZE, WRITE_HIGH_WATER, EchoProtocol, Stats


async def _pair(
    stats: Stats, idle: float = 0.0, cap: int = 10
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
    _, protocol = await loop.connect_accepted_socket(lambda: EchoProtocol(stats, idle, cap), ours)
    return theirs, protocol


def test_tcp_nodelay_is_set() -> None:
    async def scenario() -> None:
        peer, protocol = await _pair(Stats())
        assert protocol.transport is not None
        sock = protocol.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        protocol.transport.close()
        peer.close()

    asyncio.run(scenario())


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

    asyncio.run(scenario())


def test_reading_pauses_while_the_client_does_not_read() -> None:
    async def scenario() -> None:
        stats = Stats()
        peer, protocol = await _pair(stats)
        loop = asyncio.get_running_loop()
        for _ in range(WRITE_HIGH_WATER * 2 // READ_SIZE):  # more than the peer can take
            buffer = protocol.get_buffer(-1)  # as the transport does with what it reads
            buffer[:READ_SIZE] = b"x" * READ_SIZE
            protocol.buffer_updated(READ_SIZE)
        assert protocol._paused
        assert protocol.transport is not None and not protocol.transport.is_reading()
        total = 0
        while total < WRITE_HIGH_WATER * 2:
            total += len(await asyncio.wait_for(loop.sock_recv(peer, 1 << 16), 5))
        await asyncio.sleep(0.01)
        assert not protocol._paused and protocol.transport.is_reading()
        peer.close()

    asyncio.run(scenario())


def test_idle_connections_close() -> None:
    async def scenario() -> None:
        stats = Stats()
        peer, _ = await _pair(stats, idle=0.05)
        loop = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b""
        peer.close()

    asyncio.run(scenario())


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

    asyncio.run(scenario())


def test_over_the_cap_is_closed_at_once() -> None:
    async def scenario() -> None:
        stats = Stats()
        peer, protocol = await _pair(stats, cap=0)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b""
        assert (stats.rejected, stats.open, protocol.transport) == (1, 0, None)
        peer.close()

    asyncio.run(scenario())
