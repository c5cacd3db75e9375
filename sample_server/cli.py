"""``sample-server``: start (foreground or daemon), stop, restart, reload, status."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import __version__
from .server import Settings, uvloop_problem
from .supervision import MAX_WORKERS

if TYPE_CHECKING:
    from .pidfile import Probe

__all__ = ["main"]

_DEFAULT_PID = Path("/tmp/sample-server.pid")
_pid_option = click.option("--pid-file", type=click.Path(path_type=Path), default=_DEFAULT_PID,
                           envvar="SAMPLE_SERVER_PID_FILE", show_envvar=True, show_default=True,
                           help="Pid file (locked while running).")  # fmt: skip


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sample-server")
def main() -> None:
    """A multi-process TCP echo server (packer's demonstration application)."""


def _fail(message: str) -> NoReturn:
    click.echo(f"sample-server: {message}", err=True)
    sys.exit(1)


def _probe(pid_file: Path) -> Probe:
    from .pidfile import StartError, probe

    try:
        return probe(pid_file.absolute())
    except StartError as error:
        _fail(str(error))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=9002, show_default=True,
              help="0 picks a free port (printed when ready).")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), default=None,
              help="Worker processes [default: the number of CPUs].")  # fmt: skip
@click.option("-d", "--daemon", is_flag=True, help="Run in the background; return once serving.")
@_pid_option
@click.option("--log-file", type=click.Path(path_type=Path), default=None,
              help="Log file [default: stderr; PID_FILE with .log for a daemon].")  # fmt: skip
@click.option("--idle-timeout", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Close connections idle this many seconds (0: never).")  # fmt: skip
@click.option("--max-connections", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Per worker; clients over it are closed at once.")  # fmt: skip
@click.option("--graceful-timeout", type=click.FloatRange(min=0), default=10.0,
              show_default=True, help="Seconds a retiring or gracefully stopping worker "
              "serves its connections before it cuts them.")  # fmt: skip
@click.option("--loop", type=click.Choice(["auto", "asyncio", "uvloop"]), default="auto",
              show_default=True)  # fmt: skip
def start(
    host: str,
    port: int,
    workers: int | None,
    daemon: bool,
    pid_file: Path,
    log_file: Path | None,
    idle_timeout: float,
    max_connections: int,
    graceful_timeout: float,
    loop: str,
) -> None:
    """Start the server."""
    from .pidfile import StartError, check_pid_path
    from .supervisor import run_master

    pid_file = pid_file.absolute()  # a daemon changes directory to /
    running = _probe(pid_file)
    if running.pid:
        _fail(f"already running (pid {running.pid})")
    try:
        check_pid_path(pid_file)
    except StartError as error:
        _fail(str(error))
    # Checked here, not only in the workers: they would die and be replaced over and over.
    problem = uvloop_problem() if loop == "uvloop" else None
    if problem:
        _fail(problem)
    if daemon and log_file is None:
        log_file = pid_file.with_name(pid_file.name.removesuffix(".pid") + ".log")
    log_file = log_file.absolute() if log_file else None
    log_fd = _open_log(log_file) if log_file else None
    settings = Settings(
        host=host, port=port, workers=workers or min(os.cpu_count() or 1, MAX_WORKERS),
        pid_file=pid_file, log_file=log_file, idle_timeout=idle_timeout,
        max_connections=max_connections, loop=loop, graceful_timeout=graceful_timeout,
    )  # fmt: skip
    ready = None
    if daemon:
        from .daemon import daemonize_and_wait

        assert log_fd is not None
        ready = daemonize_and_wait(log_fd)
        log_fd = None  # now the daemon's standard streams
    _setup_logging(log_fd)
    try:
        code = run_master(settings, ready)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code) if not daemon else os._exit(code)


def _open_log(log_file: Path) -> int:
    """The log file, opened for appending before anything forks: a bad one is one line here,
    not a traceback from a daemon that has no terminal left."""
    if log_file.is_dir():
        _fail(f"log file {log_file} is a folder")
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        return os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        _fail(f"cannot open log file {log_file}: {exc.strerror}")


def _setup_logging(log_fd: int | None) -> None:
    stream = open(log_fd, "a", buffering=1, closefd=True) if log_fd is not None else sys.stderr  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    root = logging.getLogger("sample_server")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _running_or_exit(pid_file: Path, code: int) -> int:
    found = _probe(pid_file)
    if found.pid is None:
        click.echo("sample-server: not running" + (" (stale pid file)" if found.stale else ""))
        sys.exit(code)
    return found.pid


def _master_state(pid_file: Path) -> dict[str, Any]:
    """The running master's master.json (waiting a moment if its run folder was removed
    and is being made again)."""
    path = Settings(pid_file=pid_file.absolute()).run_dir / "master.json"
    deadline = time.monotonic() + 2
    while True:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except (OSError, ValueError) as exc:
            if time.monotonic() > deadline:
                reason = exc.strerror if isinstance(exc, OSError) else "not JSON"
                _fail(f"cannot read the server's state {path}: {reason}")
            time.sleep(0.05)


@main.command()
@_pid_option
@click.option("-g", "--graceful", is_flag=True, help="Finish echoing what was received first.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Seconds to wait [default: 10; with -g, the graceful timeout + 5].")  # fmt: skip
def stop(pid_file: Path, graceful: bool, timeout: float | None) -> None:
    """Stop the server (exit 0; also when it was not running)."""
    pid = _running_or_exit(pid_file, 0)
    if timeout is None:
        timeout = 10.0
        if graceful:
            with contextlib.suppress(SystemExit, KeyError, TypeError):
                timeout = float(_master_state(pid_file)["start"]["graceful_timeout"]) + 5
    _signal_master(pid, signal.SIGQUIT if graceful else signal.SIGTERM)
    _wait_stopped(pid_file, timeout)
    click.echo(f"stopped (pid {pid})")


def _signal_master(pid: int, sig: int) -> None:
    # The pid was just checked to be the lock holder's; if it ended since, there is no one to
    # tell, and nobody else gets the signal (a pid is not reused that fast).
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_stopped(pid_file: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _probe(pid_file).pid is not None:
        if time.monotonic() > deadline:
            _fail(f"still running after {timeout:.0f} s")
        time.sleep(0.02)


@main.command()
@_pid_option
def reload(pid_file: Path) -> None:
    """Replace the workers one by one, without refusing a connection (exit 1 if not running,
    or while a reload is in progress)."""
    pid = _running_or_exit(pid_file, 1)
    run_dir = Settings(pid_file=pid_file.absolute()).run_dir
    # One reload command at a time: a second one waits here, then finds the first running.
    with _locked(run_dir):
        state = _master_state(pid_file)
        if state.get("reloading"):
            _fail(f"a reload is in progress (pid {pid})")
        asked = int(state.get("reloads_requested", 0))
        _signal_master(pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while int(_master_state(pid_file).get("reloads_requested", 0)) <= asked:
            if time.monotonic() > deadline or _probe(pid_file).pid != pid:
                _fail(f"the server (pid {pid}) did not take the reload")
            time.sleep(0.02)
    click.echo(f"reloading (pid {pid})")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        _fail(f"cannot open {folder}: {exc.strerror}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@main.command()
@_pid_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(pid_file: Path, as_json: bool) -> None:
    """Show the master and each worker: pid, uptime, connections, bytes (exit 3 if not running)."""
    _running_or_exit(pid_file, 3)
    data = _status(pid_file.absolute())
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(
        f"master {data['pid']}  up {data['uptime']:.0f} s  {data['address']}"
        f"  reloads {data['reloads']}{' (reloading)' if data['reloading'] else ''}"
        f"  cut {data['cut']}"
    )
    for w in data["workers"]:
        click.echo(
            f"  worker {w['pid']}  {w['state']}  up {w['uptime']:.0f} s  open {w['open']}"
            f"  total {w['total']}  rejected {w['rejected']}  in {w['bytes_in']}"
            f"  out {w['bytes_out']}"
        )


def _status(pid_file: Path) -> dict[str, Any]:
    run_dir = Settings(pid_file=pid_file).run_dir
    master = _master_state(pid_file)
    now = time.time()
    workers = []
    for pid, about in sorted(master["workers"].items(), key=lambda item: int(item[0])):
        try:
            stats = json.loads((run_dir / f"worker-{pid}.json").read_text())
        except (OSError, ValueError):
            stats = {"pid": int(pid), "started": about["started"]}
        stats["state"] = about["state"]
        for key in ("open", "total", "rejected", "bytes_in", "bytes_out"):
            stats.setdefault(key, 0)
        stats["uptime"] = now - stats["started"]
        workers.append(stats)
    return {"pid": master["pid"], "uptime": now - master["started"], "address": master["address"],
            "reloads": master.get("reloads", 0), "reloading": master.get("reloading", False),
            "cut": master.get("cut", 0), "workers": workers}  # fmt: skip


@main.command()
@_pid_option
@click.option("--timeout", type=click.FloatRange(min=0), default=15.0, show_default=True)
@click.pass_context
def restart(ctx: click.Context, pid_file: Path, timeout: float) -> None:
    """Stop the running server and start it again, as a daemon, with the same options."""
    pid = _running_or_exit(pid_file, 1)
    options = _master_state(pid_file)["start"]
    _signal_master(pid, signal.SIGTERM)
    _wait_stopped(pid_file, timeout)
    click.echo(f"stopped (pid {pid})")
    options["pid_file"] = Path(options["pid_file"])
    options["log_file"] = Path(options["log_file"]) if options["log_file"] else None
    ctx.invoke(start, daemon=True, **options)


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
)
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def test(pytest_args: tuple[str, ...]) -> None:
    """Run the test suite that ships with the server (arguments go to pytest, e.g. -q, -k)."""
    from .selftest import run_tests

    sys.exit(run_tests(pytest_args))
