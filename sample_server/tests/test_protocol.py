"""Unit tests of the connection logic: the echo protocol on a real event loop and socket pair,
on every loop importable here (asyncio, and uvloop where its wheel fits the interpreter).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import select
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import sample_server
from sample_server.protocol import READ_SIZE, WRITE_HIGH_WATER, EchoProtocol, Stats
from sample_server.server import glibc, new_loop, stop_accepting, uvloop_problem


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


async def _receive(peer: socket.socket, size: int) -> bytes:
    """Read *size* bytes from *peer*, each wait bounded."""
    loop = asyncio.get_running_loop()
    got = bytearray()
    while len(got) < size:
        data = await asyncio.wait_for(loop.sock_recv(peer, 1 << 16), 5)
        assert data, f"closed after {len(got)} bytes of {size}"
        got += data
    return bytes(got)


async def _pair(
    stats: Stats, idle: float = 0.0, cap: int = 10, small: bool = True
) -> tuple[socket.socket, EchoProtocol]:
    # A real TCP connection on loopback, as the server sees its clients. *small*: small
    # kernel buffers, so that back-pressure shows after a few kilobytes.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        theirs = socket.socket()
        if small:
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        theirs.connect(listener.getsockname())
        ours, _ = listener.accept()
        if small:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    _, protocol = await loop.connect_accepted_socket(lambda: EchoProtocol(stats, idle, cap), ours)
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


def test_echo_and_counters() -> None:
    async def scenario() -> None:
        stats = Stats()
        peer, protocol = await _pair(stats)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(peer, b"hello")
        assert await asyncio.wait_for(loop.sock_recv(peer, 5), 5) == b"hello"
        assert (stats.open, stats.total, *stats.traffic()) == (1, 1, 5, 5)
        peer.shutdown(socket.SHUT_WR)  # half-close: the server closes after echoing
        assert await asyncio.wait_for(loop.sock_recv(peer, 5), 5) == b""
        await asyncio.sleep(0)
        assert stats.open == 0 and protocol.transport is None
        # An ended connection's bytes stay counted.
        assert (stats.live, *stats.traffic()) == (set(), 5, 5)
        peer.close()

    _on_every_loop(scenario)


def _payload(size: int) -> bytes:
    """*size* bytes that differ from read to read, so that pieces echoed out of order, or
    overwritten while held, show."""
    return random.Random(0).randbytes(size)


def test_a_client_that_does_not_keep_up_gets_every_byte_of_large_reads() -> None:
    # Reads of the loop's full read size, through small kernel buffers: each write is taken
    # only in part, and what the transport holds must stay what was read, in order.
    async def scenario() -> None:
        stats = Stats()
        peer, _ = await _pair(stats)
        loop = asyncio.get_running_loop()
        want = _payload(6 * READ_SIZE)

        async def send() -> None:
            view = memoryview(want)
            for at in range(0, len(want), READ_SIZE):
                await loop.sock_sendall(peer, view[at : at + READ_SIZE])

        sending = asyncio.ensure_future(send())
        got = await _receive(peer, len(want))
        await sending
        assert got == want
        assert stats.traffic() == (len(want), len(want))

    _on_every_loop(scenario)


def test_after_a_graceful_finish_what_arrives_is_read_not_echoed() -> None:
    # On uvloop too, which binds the protocol's callbacks when the protocol is set; after
    # a few bytes, and after reads of many kilobytes.
    for before in (b"before", _payload(128 * 1024)):
        _on_every_loop(functools.partial(_finish_after, before))


async def _finish_after(before: bytes) -> None:
    stats = Stats()
    peer, protocol = await _pair(stats, small=False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(peer, before)
    assert await _receive(peer, len(before)) == before
    protocol.finish()
    assert await asyncio.wait_for(loop.sock_recv(peer, 64), 5) == b""  # half-closed
    await loop.sock_sendall(peer, b"after the stop")
    await asyncio.sleep(0.05)
    assert protocol.transport is not None and not protocol.transport.is_closing()
    assert protocol.received == len(before)  # read and dropped: not counted, not echoed
    peer.shutdown(socket.SHUT_WR)
    for _ in range(100):
        if protocol.transport is None:
            break
        await asyncio.sleep(0.01)
    assert protocol.transport is None  # closed once the client closed: no reset


def test_a_connection_counts_from_its_accept_until_it_ends() -> None:
    # A retiring worker exits once its stats are settled: a connection accepted but not yet
    # made (asyncio makes it in a task) must already count, or it would be reset.
    async def scenario() -> None:
        stats = Stats()
        at_accept: list[bool] = []

        def factory() -> EchoProtocol:
            protocol = EchoProtocol(stats, 0.0, 10)
            at_accept.append(stats.settled())
            return protocol

        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", 0)
        try:
            address = server.sockets[0].getsockname()[:2]
            with socket.create_connection(address, timeout=5) as peer:
                peer.setblocking(False)
                await loop.sock_sendall(peer, b"x")
                assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b"x"
                assert at_accept == [False] and not stats.settled()
            deadline = loop.time() + 5
            while not stats.settled():
                assert loop.time() < deadline, "the ended connection still counts"
                await asyncio.sleep(0.01)
        finally:
            server.close()

    _on_every_loop(scenario)


def test_a_connection_accepted_just_before_the_stop_is_still_served() -> None:
    # A worker that stops accepting (reload, stop -g) keeps what it accepted. asyncio makes
    # a connection in the loop iteration after its accept: the stop is made to fall between.
    async def scenario() -> None:
        stats = Stats()
        order: list[str] = []

        def factory() -> EchoProtocol:
            order.append("protocol")
            return EchoProtocol(stats, 0.0, 10)

        def stop() -> None:
            order.append("stop")
            stop_accepting(loop, server, listener)

        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        server = await loop.create_server(factory, sock=listener)
        try:
            with socket.create_connection(listener.getsockname()[:2], timeout=5) as peer:
                peer.sendall(b"x")
                assert select.select([listener], [], [], 5)[0], "the connection never queued"
                # No await since the select: the next iteration runs this first, then the
                # accept; the one after runs stop() first, then asyncio's making of the
                # connection.
                loop.call_soon(loop.call_soon, stop)
                peer.setblocking(False)
                assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b"x"
                peer.shutdown(socket.SHUT_WR)
                assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b""
            if isinstance(loop, asyncio.SelectorEventLoop):  # uvloop makes it in the accept
                assert order == ["stop", "protocol"]
            assert stats.total == 1 and not server.is_serving()
        finally:
            server.close()

    _on_every_loop(scenario)


def test_reading_pauses_while_the_client_does_not_read() -> None:
    async def scenario() -> None:
        stats = Stats()
        peer, protocol = await _pair(stats)
        # More than the peer can take, each read different: what is queued must stay intact.
        chunks = [bytes([i]) * READ_SIZE for i in range(1, WRITE_HIGH_WATER * 2 // READ_SIZE + 1)]
        for chunk in chunks:
            protocol.data_received(chunk)
        assert protocol._paused
        assert protocol.transport is not None and not protocol.transport.is_reading()
        # "out" is what went to the kernel: not what the transport still holds.
        held = protocol.transport.get_write_buffer_size()
        assert held >= WRITE_HIGH_WATER
        received = len(chunks) * READ_SIZE
        assert stats.traffic() == (received, received - held)
        want = b"".join(chunks)
        assert await _receive(peer, len(want)) == want
        await asyncio.sleep(0.01)
        assert not protocol._paused and protocol.transport.is_reading()

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
        idle = 0.4
        peer, protocol = await _pair(stats, idle=idle)
        loop = asyncio.get_running_loop()
        began = loop.time()
        while loop.time() - began < 4 * idle:  # talking all along: well past one timeout
            await loop.sock_sendall(peer, b"x")
            assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b"x"
            last = loop.time()  # the server saw the byte just before this
            # Every other idle tick finds nothing new: only a run of them may close it.
            await asyncio.sleep(idle / 2)
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
        assert stats.settled()  # a refused connection does not hold a retiring worker
        peer.close()

    _on_every_loop(scenario)


#: Run in a child (malloc settings cannot be undone): how many of eight READ_SIZE buffers,
#: what asyncio allocates per read, glibc serves with mmap.
_MMAPPED_READS = """
import ctypes, sys
from sample_server.protocol import READ_SIZE
from sample_server.server import steady_malloc

names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
libc = ctypes.CDLL(None)
info = getattr(libc, "mallinfo2", None)  # glibc 2.33+; mallinfo's fields are ints
field = ctypes.c_size_t if info else ctypes.c_int
info = info or libc.mallinfo
class Info(ctypes.Structure):
    _fields_ = [(name, field) for name in names.split()]
info.restype = Info
if sys.argv[1] == "steady":
    assert steady_malloc()
before = info().hblks
held = [bytearray(READ_SIZE) for _ in range(8)]
print(info().hblks - before)
"""


def _mmapped_reads(how: str) -> int:
    where = Path(sample_server.__file__).parent.parent  # the tree, or app.pyz
    # glibc's default threshold moves with the process's history: fixed here at its
    # starting value, so that the run without steady_malloc shows what it changes.
    env = dict(os.environ, PYTHONPATH=str(where), MALLOC_MMAP_THRESHOLD_=str(128 * 1024))
    child = subprocess.run([sys.executable, "-c", _MMAPPED_READS, how], env=env,
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert child.returncode == 0, child.stderr
    return int(child.stdout)


def test_reads_stay_off_mmap_in_a_worker() -> None:
    if not glibc():
        pytest.skip("glibc's malloc only")
    assert _mmapped_reads("default") == 8  # each one an mmap, and a munmap when freed
    assert _mmapped_reads("steady") == 0  # as the worker sets it: from the heap
