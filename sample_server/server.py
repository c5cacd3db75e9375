"""One worker process: an event loop serving the shared listening socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .protocol import READ_SIZE, EchoProtocol, Stats

__all__ = [
    "MALLOC_MMAP_THRESHOLD",
    "MALLOC_TRIM_THRESHOLD",
    "Settings",
    "glibc",
    "new_loop",
    "run_worker",
    "steady_malloc",
    "stop_accepting",
]

log = logging.getLogger("sample_server")


@dataclass(frozen=True)
class Settings:
    """Everything ``start`` was told (paths absolute)."""

    host: str = "127.0.0.1"
    port: int = 9002
    workers: int = 2
    pid_file: Path = Path("/tmp/sample-server.pid")
    log_file: Path | None = None
    idle_timeout: float = 300.0
    max_connections: int = 10000
    loop: str = "auto"
    graceful_timeout: float = 10.0

    @property
    def run_dir(self) -> Path:
        """Where the master and workers publish their state for ``status``."""
        return self.pid_file.with_name(self.pid_file.name + ".d")


def uvloop_problem() -> str | None:
    """Why ``--loop uvloop`` cannot work here (uvloop missing, or built for another Python);
    None when it can."""
    try:
        import uvloop  # noqa: F401
    except ImportError as exc:
        return f"--loop uvloop: cannot use uvloop here: {exc}"
    return None


def new_loop(kind: str) -> tuple[asyncio.AbstractEventLoop, str]:
    """An event loop of the kind asked for: uvloop when installed and ``auto``."""
    if kind in ("auto", "uvloop"):
        problem = uvloop_problem()
        if problem is None:
            import uvloop

            return uvloop.new_event_loop(), "uvloop"
        if kind == "uvloop":
            raise RuntimeError(problem)
    return asyncio.new_event_loop(), "asyncio"


#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: What steady_malloc sets (bench/echo.py gives its "steady malloc" peer the same).
MALLOC_MMAP_THRESHOLD = 4 * READ_SIZE
MALLOC_TRIM_THRESHOLD = 64 * READ_SIZE


def glibc() -> bool:
    """Whether this process runs on glibc (whose malloc steady_malloc tunes)."""
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, AttributeError):  # no such confstr name here, or no confstr at all
        return False


def steady_malloc() -> bool:
    """Fix glibc's malloc thresholds for this process; False where that cannot be done.

    asyncio's transport allocates READ_SIZE for every read, then shrinks it to what was read.
    With glibc's defaults that allocation is served by mmap/munmap (three system calls and
    fresh pages per read), or from the heap once the dynamic threshold has moved, so the cost
    of a read depends on the process's history. A fixed mmap threshold above READ_SIZE keeps
    reads on the heap, and a trim threshold well above it keeps the heap from being shrunk
    and grown again per read. uvloop hands over ``bytes`` of the size read, which from
    128 KiB are past the default threshold too; the same settings keep them on the heap.
    """
    import ctypes  # here: only workers pay for it, not every command line run

    if not glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD)
    )


def _quiet_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # One line per problem, never a traceback: EMFILE on accept (asyncio backs off by itself)
    # and peers that vanish are expected in a server's life.
    exc = context.get("exception")
    detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    log.warning("%s%s", context.get("message", "error"), detail)


def stop_accepting(
    loop: asyncio.AbstractEventLoop, server: asyncio.AbstractServer, sock: socket.socket
) -> None:
    """Take no more connections from *sock*, without dropping one already taken.

    asyncio's own loop accepts a connection in one iteration and, in a task, attaches it to
    its server in the next. Closing the server in between makes that attachment fail (on an
    assertion that asyncio keeps to itself), and the accepted socket is dropped with the
    client's bytes unread: the client sees a reset. So on that loop the socket is first taken
    out of the loop's watch (it is not watched while accept backs off after EMFILE: then
    there is nothing to take out), and the server closed one iteration later, behind those
    tasks. uvloop attaches a connection in the call that accepts it: closing at once is safe
    there.
    """
    if isinstance(loop, asyncio.SelectorEventLoop):
        loop.remove_reader(sock.fileno())
        loop.call_soon(server.close)
    else:
        server.close()


def run_worker(sock: socket.socket, settings: Settings, report: int, parent: int) -> None:
    """Serve *sock* until told to stop, reporting on *report*: ``r`` once serving, ``cut N``
    when connections had to be cut at the graceful timeout. Stops at once when *parent* (the
    master) is gone."""
    if not steady_malloc():
        log.debug("malloc thresholds left as they are (not glibc)")
    loop, kind = new_loop(settings.loop)
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(_quiet_errors)
    stats = Stats()
    started = time.time()
    stats_file = settings.run_dir / f"worker-{os.getpid()}.json"

    def factory() -> EchoProtocol:
        return EchoProtocol(stats, settings.idle_timeout, settings.max_connections)

    server = loop.run_until_complete(loop.create_server(factory, sock=sock, backlog=1024))
    stopping = asyncio.Event()

    def publish() -> None:
        if os.getppid() != parent:  # the master died (where no death signal is sent)
            fast_stop()
            return
        bytes_in, bytes_out = stats.traffic()
        data = {
            "pid": os.getpid(),
            "started": started,
            "loop": kind,
            "open": stats.open,
            "total": stats.total,
            "rejected": stats.rejected,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
        }
        tmp = stats_file.with_suffix(".tmp")
        try:
            settings.run_dir.mkdir(parents=True, exist_ok=True)  # removed by a cleaner: again
            tmp.write_text(json.dumps(data))
            os.replace(tmp, stats_file)
        except OSError:
            pass
        if not stopping.is_set():
            loop.call_later(0.5, publish)

    def fast_stop() -> None:
        stopping.set()
        server.close()
        for protocol in list(stats.live):
            if protocol.transport is not None:
                protocol.transport.abort()
        loop.stop()

    def graceful_stop(retire: bool = False) -> None:
        if stopping.is_set():
            return
        stopping.set()
        stop_accepting(loop, server, sock)  # the master's socket stays open for the others
        # Retiring (reload): the connections go on until their clients end them. Stopping:
        # each echoes what has arrived, then half-closes and waits for its client's close.
        if not retire:
            for protocol in list(stats.live):
                protocol.finish()
        deadline = loop.time() + settings.graceful_timeout

        def check() -> None:
            # settled() also waits for connections accepted just before the stop whose
            # connection_made is still to come: stopping now would reset them.
            if stats.settled():
                fast_stop()
            elif loop.time() >= deadline:
                cut = stats.open + stats.arriving
                with contextlib.suppress(OSError):
                    os.write(report, f"cut {cut}\n".encode())
                fast_stop()
            else:
                if not retire:
                    for protocol in list(stats.live):
                        protocol.finish()  # those accepted since the stop began
                loop.call_later(0.05, check)

        loop.call_later(0.05, check)

    loop.add_signal_handler(signal.SIGTERM, fast_stop)
    loop.add_signal_handler(signal.SIGINT, fast_stop)
    loop.add_signal_handler(signal.SIGQUIT, graceful_stop)
    loop.add_signal_handler(signal.SIGUSR1, graceful_stop, True)
    publish()
    os.write(report, b"r\n")
    try:
        loop.run_forever()
    finally:
        with contextlib.suppress(OSError):
            stats_file.unlink()
        loop.close()
