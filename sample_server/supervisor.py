"""The master process: owns the listening socket and the pid file, supervises workers.

One listening socket, opened by the master and inherited by every worker, rather than one
``SO_REUSEPORT`` socket per worker: with a shared socket the kernel's accept queue outlives
any one worker, so ``reload`` (workers replaced one by one) never refuses or resets a
connection attempt, whereas closing a ``SO_REUSEPORT`` socket drops the connections queued
on it. Signals to the master: TERM/INT stop fast, QUIT stops gracefully, HUP reloads. To a
worker: TERM stops at once, QUIT stops gracefully (echo what was received, then close), USR1
retires it (stop accepting; exit when its connections have ended).

What to do is decided by :class:`~sample_server.supervision.Supervisor`; this module forks,
signals, reads the workers' reports and writes the state ``status`` shows. Everything runs
from one loop: a signal only wakes it, so a stop is honoured in the middle of a reload. (It
is a little over 350 lines: the loop and the effects it drives share the master's state, and
split apart each would reach into the other.)
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time

from .pidfile import AlreadyRunning, PidFile, StartError
from .server import Settings, run_worker
from .supervision import Halt, Kill, Spawn, Supervisor

__all__ = ["run_master"]

log = logging.getLogger("sample_server")


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
    """The effects of the supervisor's decisions: forks, signals, the workers' reports."""

    def __init__(self, settings: Settings, sock: socket.socket, pidfile: PidFile) -> None:
        self.settings = settings
        self.sock = sock
        self.pidfile = pidfile
        self.supervisor = Supervisor(settings.workers, settings.graceful_timeout)
        self.selector = selectors.DefaultSelector()
        self.started = time.time()
        self.born: dict[int, float] = {}  # pid: wall-clock start, for status
        self.channels: dict[int, int] = {}  # pid: read end of its report pipe
        self.partial: dict[int, bytes] = {}
        self.cut = 0
        self.keep_open: list[int] = []  # descriptors a worker must not inherit either
        self.last_problem = ""

    # -- effects ----------------------------------------------------------------------------

    def carry_out(self, actions: list[Spawn | Kill | Halt]) -> str | None:
        """Do *actions*; the reason to give up, if one of them is a Halt."""
        while actions:
            action = actions.pop(0)
            if isinstance(action, Spawn):
                try:
                    self.spawn(action.replaces)
                except OSError as exc:  # fork itself failed (out of processes or memory)
                    reason = f"cannot fork: {exc.strerror or exc}"
                    log.warning("%s", reason)
                    now = time.monotonic()
                    actions += self.supervisor.boot_failed(now, action.replaces, reason)
            elif isinstance(action, Kill):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(action.pid, action.sig)
            else:
                return action.reason
        return None

    def spawn(self, replaces: int | None) -> None:
        report_r, report_w = os.pipe()
        master = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            os.close(report_r)
            os.close(report_w)
            raise
        if pid == 0:
            code = 0
            try:
                os.close(report_r)
                self._forget_in_child()
                _die_with(master)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                            signal.SIGCHLD, signal.SIGUSR1):  # fmt: skip
                    signal.signal(sig, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                run_worker(self.sock, self.settings, report_w, master)
            except BaseException as exc:
                code = 1
                log.exception("worker %d failed", os.getpid())
                with contextlib.suppress(OSError):
                    os.write(report_w, f"e {type(exc).__name__}: {exc}\n".encode())
            finally:
                os._exit(code)
        os.close(report_w)
        os.set_blocking(report_r, False)
        self.channels[pid] = report_r
        self.selector.register(report_r, selectors.EVENT_READ, pid)
        self.born[pid] = time.time()
        self.supervisor.spawned(pid, time.monotonic(), replaces)

    def _forget_in_child(self) -> None:
        """A worker closes what is the master's: the pid file (so the lock dies with the
        master), the other workers' report pipes, the signal pipe, the selector."""
        fds = [*self.channels.values(), *self.keep_open, self.selector.fileno()]
        if self.pidfile.fd is not None:
            fds.append(self.pidfile.fd)
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def read_reports(self, pid: int) -> list[Spawn | Kill | Halt]:
        """Lines from worker *pid*: ``r`` (serving), ``e REASON`` (cannot), ``cut N``."""
        fd = self.channels.get(pid)
        if fd is None:
            return []
        data = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(fd, 4096):
                data += chunk
            self._close_channel(pid)  # EOF: the worker is gone or going
        lines = (self.partial.pop(pid, b"") + data).split(b"\n")
        if lines[-1]:
            self.partial[pid] = lines[-1]
        actions: list[Spawn | Kill | Halt] = []
        for line in lines[:-1]:
            word, _, rest = line.decode(errors="replace").partition(" ")
            if word == "r":
                actions += self.supervisor.ready(pid, time.monotonic())
            elif word == "e":
                self.supervisor.failure(pid, rest)
            elif word == "cut" and rest.isdigit():
                self.cut += int(rest)
                log.warning("worker %d cut %s connections at the graceful timeout", pid, rest)
        return actions

    def _close_channel(self, pid: int) -> None:
        fd = self.channels.pop(pid, None)
        if fd is not None:
            self.selector.unregister(fd)
            os.close(fd)

    def reap(self) -> list[Spawn | Kill | Halt]:
        actions: list[Spawn | Kill | Halt] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            actions += self.read_reports(pid)  # what it said before it went
            self._close_channel(pid)
            self.partial.pop(pid, None)
            self.born.pop(pid, None)
            with contextlib.suppress(OSError):
                (self.settings.run_dir / f"worker-{pid}.json").unlink()
            code = os.waitstatus_to_exitcode(status)
            why = f"exit status {code}" if code >= 0 else f"killed by signal {-code}"
            worker = self.supervisor.workers.get(pid)
            if worker is not None and worker.retiring:
                log.info("worker %d retired (%s)", pid, why)
            elif worker is not None and not self.supervisor.stopping:
                state = "died" if worker.ready else "failed to start"
                log.warning("worker %d %s (%s)", pid, state, worker.failure or why)
            actions += self.supervisor.exited(pid, time.monotonic(), why)
        return actions

    def publish(self) -> None:
        """The master's state for ``status`` (and what ``restart`` needs), in the run folder,
        which is made again if something removed it."""
        host, port = self.sock.getsockname()[:2]
        settings = self.settings
        sup = self.supervisor
        workers = {}
        for pid, worker in sup.workers.items():
            what = "retiring" if worker.retiring else "serving" if worker.ready else "starting"
            workers[str(pid)] = {"started": self.born.get(pid, self.started), "state": what}
        state = {
            "pid": os.getpid(),
            "started": self.started,
            "address": f"{host}:{port}",
            "start": {
                "host": settings.host,
                "port": settings.port,
                "workers": settings.workers,
                "pid_file": str(settings.pid_file),
                "log_file": str(settings.log_file) if settings.log_file else None,
                "idle_timeout": settings.idle_timeout,
                "max_connections": settings.max_connections,
                "loop": settings.loop,
                "graceful_timeout": settings.graceful_timeout,
            },
            "workers": workers,
            "reloading": sup.reloading,
            "reloads_requested": sup.reloads_requested,
            "reloads": sup.reloads_done,
            "cut": self.cut,
        }
        path = settings.run_dir / "master.json"
        try:
            settings.run_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"master.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, path)
        except OSError as exc:
            problem = f"cannot write {path}: {exc.strerror}"
            if problem != self.last_problem:  # one line per new problem, not one a second
                log.warning("%s", problem)
            self.last_problem = problem
        else:
            self.last_problem = ""


def _die_with(master: int) -> None:
    """Make this worker end when the master does, however the master ends (kill -9 too)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    # The master may have died before the line above: then no signal would ever come.
    # (Elsewhere the worker's own timer looks at its parent twice a second.)
    if os.getppid() != master:
        os._exit(0)


def run_master(settings: Settings, ready: int | None = None) -> int:
    """Run the server until stopped; report readiness (or the reason it cannot) on *ready*.
    Returns the exit status: 0 when stopped, 1 when it could not start or gave up."""
    pidfile = PidFile(settings.pid_file)
    try:
        pidfile.acquire()
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in settings.run_dir.glob("*.json"):
            stale.unlink(missing_ok=True)
        sock = _listen(settings)
    except (StartError, OSError) as error:
        if not isinstance(error, AlreadyRunning):
            pidfile.release()
            with contextlib.suppress(OSError):
                settings.run_dir.rmdir()
        message = str(error) if isinstance(error, StartError) else _os_error(error)
        _report(ready, f"error {message}")
        return 1
    master = _Master(settings, sock, pidfile)
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_w, False)
    os.set_blocking(wakeup_r, False)
    master.keep_open = [wakeup_r, wakeup_w] + ([ready] if ready is not None else [])
    signal.set_wakeup_fd(wakeup_w)
    received: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, lambda signum, frame: received.append(signum))
    master.selector.register(wakeup_r, selectors.EVENT_READ, None)
    sup = master.supervisor
    code = 0
    gave_up: str | None = None
    failure = "the master stopped before it was serving"
    reported = False
    changed = True
    next_publish = 0.0
    try:
        gave_up = master.carry_out(sup.start())
        while not sup.done:
            if gave_up is not None:
                log.error("stopping: %s", gave_up)
                code = 1
                failure = gave_up  # said to start -d once everything is down
                master.carry_out(sup.stop(graceful=False, now=time.monotonic()))
                gave_up = None
            if sup.serving and not reported:
                host, port = sock.getsockname()[:2]
                log.info("listening on %s:%d with %d workers", host, port, settings.workers)
                _report(ready, f"ok {host}:{port} {os.getpid()}")
                reported = True
                master.keep_open = [wakeup_r, wakeup_w]  # *ready* is closed now
            if changed or time.monotonic() >= next_publish:
                master.publish()
                next_publish = time.monotonic() + 0.5
            deadline = sup.next_deadline()
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            actions = []
            events = master.selector.select(timeout=wait)
            for key, _ in events:
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wakeup_r, 4096)
                else:
                    actions += master.read_reports(key.data)
            signals, received[:] = list(received), []
            now = time.monotonic()
            # A stop first, then the reaping: a Ctrl-C reaches the workers too, and a worker
            # that it ended must not be replaced.
            if signal.SIGTERM in signals or signal.SIGINT in signals:
                log.info("stopping")
                actions += sup.stop(graceful=False, now=now)
            elif signal.SIGQUIT in signals:
                log.info("stopping gracefully")
                actions += sup.stop(graceful=True, now=now)
            actions += master.reap()
            if signal.SIGHUP in signals:
                if sup.reload():
                    log.info("reloading workers (reload %d)", sup.reloads_requested)
                    actions += sup.reload_actions()
                else:
                    log.warning("reload refused: %s", "stopping" if sup.stopping else
                                "a reload is in progress")  # fmt: skip
            actions += sup.tick(now)
            changed = bool(actions or signals or events)
            gave_up = master.carry_out(actions) or gave_up
    finally:
        if not sup.done:  # an exception in the loop: take the workers down with us
            for pid in list(sup.workers):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            while True:
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    break
        sock.close()
        for state in settings.run_dir.glob("*.json"):
            state.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            settings.run_dir.rmdir()
        pidfile.release()
        log.info("stopped")
        if not reported:  # only now: when start -d returns, nothing of this server is left
            _report(ready, f"error {failure}")
    return code


def _os_error(error: OSError) -> str:
    where = f" {error.filename}" if error.filename else ""
    return f"cannot start:{where}: {error.strerror}"


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
