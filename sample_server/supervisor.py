"""The master process: owns the listening socket and the pid file, supervises workers.

One listening socket, opened by the master and inherited by every worker, rather than one
``SO_REUSEPORT`` socket per worker: with a shared socket the kernel's accept queue outlives
any one worker, so ``reload`` (workers replaced one by one) never refuses or resets a
connection attempt, whereas closing a ``SO_REUSEPORT`` socket drops the connections queued
on it. Signals to the master: TERM/INT stop fast, QUIT stops gracefully, HUP reloads. To a
worker: TERM stops at once, QUIT stops gracefully (echo what was received, then close), USR1
retires it (stop accepting; exit when its connections have ended).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path

from .server import Settings, run_worker

__all__ = ["AlreadyRunning", "PidFile", "StartError", "run_master"]

log = logging.getLogger("sample_server")


class StartError(Exception):
    """The server cannot start: the message says why, in one line."""


class AlreadyRunning(StartError):
    pass


class PidFile:
    """A pid file held with ``flock`` for the life of the master (survives the double fork)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise AlreadyRunning(f"already running (pid {read_pid(self.path) or '?'})") from None
        # A stale file from a crash (kill -9) has no lock: taken over here.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self.fd)
            self.fd = None


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def is_running(path: Path) -> int | None:
    """The master's pid if one holds *path*'s lock, else None (stale or absent)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return read_pid(path)
    finally:
        os.close(fd)
    return None


def _listen(settings: Settings) -> socket.socket:
    try:
        infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)  # fmt: skip
    except socket.gaierror as exc:
        raise StartError(f"bad address {settings.host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = "port in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise StartError(f"cannot listen on {settings.host}:{settings.port}: {reason}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class _Master:
    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.settings = settings
        self.sock = sock
        self.workers: dict[int, float] = {}
        self.retiring: set[int] = set()
        self.stopping = False
        self.started = time.time()

    def spawn(self) -> int:
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            code = 0
            try:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                            signal.SIGCHLD, signal.SIGUSR1):  # fmt: skip
                    signal.signal(sig, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                run_worker(self.sock, self.settings, ready_w)
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        os.close(ready_w)
        try:
            os.read(ready_r, 1)  # the worker is serving (or died: then EOF)
        finally:
            os.close(ready_r)
        self.workers[pid] = time.time()
        self.publish()
        return pid

    def publish(self) -> None:
        host, port = self.sock.getsockname()[:2]
        settings = self.settings
        state = {
            "pid": os.getpid(),
            "started": self.started,
            "address": f"{host}:{port}",
            # What restart needs to start the same server again.
            "start": {
                "host": settings.host,
                "port": settings.port,
                "workers": settings.workers,
                "pid_file": str(settings.pid_file),
                "log_file": str(settings.log_file) if settings.log_file else None,
                "idle_timeout": settings.idle_timeout,
                "max_connections": settings.max_connections,
                "loop": settings.loop,
            },
            "workers": {str(pid): started for pid, started in self.workers.items()},
        }
        path = self.settings.run_dir / "master.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.workers:
                del self.workers[pid]
                (self.settings.run_dir / f"worker-{pid}.json").unlink(missing_ok=True)
                if pid in self.retiring:
                    self.retiring.discard(pid)
                    log.info("worker %d retired (status %d)", pid, status)
                    self.publish()
                elif not self.stopping:
                    log.warning("worker %d died (status %d); starting another", pid, status)
                    self.spawn()
                else:
                    self.publish()

    def stop(self, graceful: bool) -> None:
        self.stopping = True
        sig = signal.SIGQUIT if graceful else signal.SIGTERM
        for pid in list(self.workers):
            _signal(pid, sig)
        deadline = time.monotonic() + (self.settings.graceful_timeout + 2 if graceful else 5)
        while self.workers and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)
        for pid in list(self.workers):
            _signal(pid, signal.SIGKILL)  # did not stop in time
        while self.workers:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.workers.pop(pid, None)

    def reload(self) -> None:
        """Replace every worker, one at a time: a new one serves before an old one stops."""
        for old in list(self.workers):
            self.spawn()
            self.retiring.add(old)
            _signal(old, signal.SIGUSR1)
            deadline = time.monotonic() + self.settings.graceful_timeout + 2
            while old in self.workers and time.monotonic() < deadline:
                self.reap()
                time.sleep(0.02)
            if old in self.workers:
                _signal(old, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def run_master(settings: Settings, ready: int | None = None) -> int:
    """Run the server until stopped; report readiness (or the reason it cannot) on *ready*."""
    pidfile = PidFile(settings.pid_file)
    try:
        pidfile.acquire()
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in settings.run_dir.glob("*.json"):
            stale.unlink(missing_ok=True)
        sock = _listen(settings)
    except StartError as error:
        if not isinstance(error, AlreadyRunning):
            pidfile.release()
            with contextlib.suppress(OSError):
                settings.run_dir.rmdir()
        _report(ready, f"error {error}")
        return 1
    master = _Master(settings, sock)
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_w, False)
    os.set_blocking(wakeup_r, False)
    signal.set_wakeup_fd(wakeup_w)
    received: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        for _ in range(settings.workers):
            master.spawn()
        host, port = sock.getsockname()[:2]
        log.info("listening on %s:%d with %d workers", host, port, settings.workers)
        _report(ready, f"ok {host}:{port} {os.getpid()}")
        selector = selectors.DefaultSelector()
        selector.register(wakeup_r, selectors.EVENT_READ)
        while True:
            selector.select(timeout=1.0)
            with contextlib.suppress(BlockingIOError):
                os.read(wakeup_r, 4096)
            signals, received[:] = list(received), []
            if signal.SIGCHLD in signals or not signals:
                master.reap()
            if signal.SIGTERM in signals or signal.SIGINT in signals:
                log.info("stopping")
                master.stop(graceful=False)
                break
            if signal.SIGQUIT in signals:
                log.info("stopping gracefully")
                master.stop(graceful=True)
                break
            if signal.SIGHUP in signals:
                log.info("reloading workers")
                master.reload()
    finally:
        if not master.stopping:
            master.stop(graceful=False)
        sock.close()
        for state in settings.run_dir.glob("*.json"):
            state.unlink(missing_ok=True)
        pidfile.release()
        log.info("stopped")
    return 0


def _report(fd: int | None, message: str) -> None:
    if fd is None:
        if message.startswith("error"):
            print(f"sample-server: {message[6:]}", file=sys.stderr)
        return
    try:
        os.write(fd, (message + "\n").encode())
        os.close(fd)
    except OSError:
        pass
