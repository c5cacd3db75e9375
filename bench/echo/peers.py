"""Minimal echo servers to compare sample_server with: asyncio streams, asyncio Protocol
(on asyncio or uvloop), and the Protocol echo in several processes, sharing one listening
socket or each with its own under SO_REUSEPORT. Prints the port it listens on, then serves
until killed (SIGTERM).

Run: python peers.py streams|protocol [asyncio|uvloop] [shared|reuseport N]
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


async def streams_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def serve(kind: str, sock: socket.socket | None, ready: int | None) -> None:
    loop = asyncio.get_running_loop()
    if kind == "streams":
        server = await asyncio.start_server(streams_client, "127.0.0.1", 0, sock=sock)
    elif sock is not None:
        server = await loop.create_server(Echo, sock=sock)
    else:
        server = await loop.create_server(Echo, "127.0.0.1", 0)
    if ready is None:
        print(server.sockets[0].getsockname()[1], flush=True)
    else:
        os.write(ready, b"r")
        os.close(ready)
    await server.serve_forever()


def listening(port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


def many(kind: str, mode: str, processes: int) -> None:
    """*processes* forked servers: on one shared socket, or each on its own (SO_REUSEPORT)."""
    if mode == "shared":
        shared = listening(0, False)
        port = shared.getsockname()[1]
    else:
        # Held, bound but not listening, only to reserve the port: the kernel spreads
        # connections over the listening sockets of the group alone.
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    children = []
    for _ in range(processes):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            sock = shared if mode == "shared" else listening(port, True)
            asyncio.run(serve(kind, sock, write))
            os._exit(0)
        os.close(write)
        os.read(read, 1)
        os.close(read)
        children.append(pid)
    print(port, flush=True)

    def stop(*_: object) -> None:
        for child in children:
            os.kill(child, signal.SIGKILL)
        for child in children:
            os.waitpid(child, 0)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        signal.pause()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "uvloop":
        import uvloop

        uvloop.install()
    if len(sys.argv) > 4:
        many(sys.argv[1], sys.argv[3], int(sys.argv[4]))
    else:
        asyncio.run(serve(sys.argv[1], None, None))
