"""Unit tests of the connection logic: EchoProtocol on a real event loop and socket pair."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import mmap
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


def _loops() -> list[type[asyncio.AbstractEventLoop]]:
    # The transports differ in what they keep of a write they could not finish: asyncio 3.11
    # copies it, asyncio 3.12+ and uvloop keep a view of the buffer written from.
    loops: list[type[asyncio.AbstractEventLoop]] = [asyncio.SelectorEventLoop]
    with contextlib.suppress(ImportError):
        import uvloop

        loops.append(uvloop.Loop)
    return loops


def test_a_buffer_the_transport_still_sends_from_is_not_read_into() -> None:
    async def scenario() -> None:
        stats = Stats()
        peer, protocol = await _pair(stats)
        transport = protocol.transport
        assert transport is not None
        try:
            await lend_and_check(stats, peer, protocol)
        finally:
            transport.abort()
            peer.close()
            await asyncio.sleep(0)

    async def lend_and_check(stats: Stats, peer: socket.socket, protocol: EchoProtocol) -> None:
        loop = asyncio.get_running_loop()
        chunks = [bytes([i]) * (READ_SIZE // 2 + i) for i in range(1, 5)]
        first = stats.buffer
        for chunk in chunks:  # as the transport does with what it reads; the peer reads nothing
            buffer = protocol.get_buffer(-1)
            buffer[: len(chunk)] = chunk
            protocol.buffer_updated(len(chunk))
            assert protocol._lent is first  # lent at the first write, sent only in part
        assert stats.buffer is not first
        want = b"".join(chunks)
        got = bytearray()
        while len(got) < len(want):
            data = await asyncio.wait_for(loop.sock_recv(peer, 1 << 16), 5)
            assert data, f"closed after {len(got)} bytes of {len(want)}"
            got += data
        assert got == want  # nothing overwritten by the reads that followed
        protocol.get_buffer(-1)  # all sent: the lent buffer is given back for reuse
        assert protocol._lent is None and len(stats.spare) == 1 and stats.spare[0] is first
        await loop.sock_sendall(peer, b"again")
        assert await asyncio.wait_for(loop.sock_recv(peer, 5), 5) == b"again"

    for new_loop in _loops():
        loop = new_loop()
        try:
            loop.run_until_complete(scenario())
        finally:
            loop.close()


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
