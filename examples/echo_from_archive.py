"""Use sample_server as a library straight from app.pyz (the Phar article's
``include 'swoole.phar'``): start an echo server in this process on a free port, echo once.

    python3 examples/echo_from_archive.py [path/to/app.pyz]
"""

from __future__ import annotations

import asyncio
import sys

archive = sys.argv[1] if len(sys.argv) > 1 else "app.pyz"
sys.path.insert(0, archive)  # the archive's own code (sample_server) imports from here
import _packer_runtime  # noqa: E402  (packer's runtime, shipped inside every archive)

_packer_runtime.mount(archive)  # ...and its bundled dependencies (click, uvloop) too

import sample_server  # noqa: E402
from sample_server.protocol import EchoProtocol, Stats  # noqa: E402
from sample_server.server import new_loop  # noqa: E402


async def echo_once(message: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: EchoProtocol(Stats(), idle_timeout=10, max_connections=10), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(message)
    writer.write_eof()  # half-close: the server echoes everything, then closes
    reply = await reader.read()
    writer.close()
    server.close()
    await server.wait_closed()
    return reply


loop, kind = new_loop("auto")  # uvloop when the archive has it for this Python
try:
    reply = loop.run_until_complete(echo_once(b"hello from app.pyz"))
finally:
    loop.close()
print(f"echoed {reply.decode()!r} on {kind}, with sample_server from {sample_server.__file__}")
