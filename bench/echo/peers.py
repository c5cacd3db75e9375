"""Minimal echo servers to compare sample_server with: asyncio streams, asyncio Protocol
(on asyncio or uvloop). Prints the port it listens on, then serves until killed.

Run: python peers.py streams|protocol [asyncio|uvloop]
"""

from __future__ import annotations

import asyncio
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


async def main(kind: str) -> None:
    loop = asyncio.get_running_loop()
    if kind == "streams":
        server = await asyncio.start_server(streams_client, "127.0.0.1", 0)
    else:
        server = await loop.create_server(Echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main(sys.argv[1]))
