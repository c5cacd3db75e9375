"""``sample-server``: start (foreground or daemon), stop, restart, reload, status."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from . import __version__
from .server import Settings, uvloop_problem

__all__ = ["main"]

_DEFAULT_PID = Path("/tmp/sample-server.pid")
_pid_option = click.option("--pid-file", type=click.Path(path_type=Path), default=_DEFAULT_PID,
                           envvar="SAMPLE_SERVER_PID_FILE", show_envvar=True, show_default=True,
                           help="Pid file (locked while running).")  # fmt: skip


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sample-server")
def main() -> None:
    """A multi-process TCP echo server (packer's demonstration application)."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=9002, show_default=True,
              help="0 picks a free port (printed when ready).")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: the number of CPUs].")  # fmt: skip
@click.option("-d", "--daemon", is_flag=True, help="Run in the background; return once serving.")
@_pid_option
@click.option("--log-file", type=click.Path(path_type=Path), default=None,
              help="Log file [default: stderr; PID_FILE with .log for a daemon].")  # fmt: skip
@click.option("--idle-timeout", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Close connections idle this many seconds (0: never).")  # fmt: skip
@click.option("--max-connections", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Per worker; clients over it are closed at once.")  # fmt: skip
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
    loop: str,
) -> None:
    """Start the server."""
    from .supervisor import is_running, run_master

    pid_file = pid_file.absolute()  # a daemon changes directory to /
    running = is_running(pid_file)
    if running:
        click.echo(f"sample-server: already running (pid {running})", err=True)
        sys.exit(1)
    # Checked here, not only in the workers: they would die and be replaced over and over.
    problem = uvloop_problem() if loop == "uvloop" else None
    if problem:
        click.echo(f"sample-server: {problem}", err=True)
        sys.exit(1)
    if daemon and log_file is None:
        log_file = pid_file.with_suffix(".log")
    settings = Settings(
        host=host, port=port, workers=workers or os.cpu_count() or 1, pid_file=pid_file,
        log_file=log_file.absolute() if log_file else None, idle_timeout=idle_timeout,
        max_connections=max_connections, loop=loop,
    )  # fmt: skip
    ready = None
    if daemon:
        from .daemon import daemonize_and_wait

        assert settings.log_file is not None
        ready = daemonize_and_wait(settings.log_file)
    _setup_logging(None if daemon else settings.log_file)
    try:
        code = run_master(settings, ready)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code) if not daemon else os._exit(code)


def _setup_logging(log_file: Path | None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    root = logging.getLogger("sample_server")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _running_or_exit(pid_file: Path, code: int) -> int:
    from .supervisor import is_running

    pid = is_running(pid_file.absolute())
    if pid is None:
        click.echo("sample-server: not running")
        sys.exit(code)
    return pid


@main.command()
@_pid_option
@click.option("-g", "--graceful", is_flag=True, help="Finish echoing what was received first.")
@click.option("--timeout", type=click.FloatRange(min=0), default=15.0, show_default=True)
def stop(pid_file: Path, graceful: bool, timeout: float) -> None:
    """Stop the server (exit 0; also when it was not running)."""
    pid = _running_or_exit(pid_file, 0)
    os.kill(pid, signal.SIGQUIT if graceful else signal.SIGTERM)
    _wait_stopped(pid_file, timeout)
    click.echo(f"stopped (pid {pid})")


def _wait_stopped(pid_file: Path, timeout: float) -> None:
    from .supervisor import is_running

    deadline = time.monotonic() + timeout
    while is_running(pid_file.absolute()) is not None:
        if time.monotonic() > deadline:
            click.echo(f"sample-server: still running after {timeout:.0f} s", err=True)
            sys.exit(1)
        time.sleep(0.02)


@main.command()
@_pid_option
def reload(pid_file: Path) -> None:
    """Replace the workers one by one, without refusing a connection (exit 1 if not running)."""
    pid = _running_or_exit(pid_file, 1)
    os.kill(pid, signal.SIGHUP)
    click.echo(f"reloading (pid {pid})")


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
    click.echo(f"master {data['pid']}  up {data['uptime']:.0f} s  {data['address']}")
    for w in data["workers"]:
        click.echo(
            f"  worker {w['pid']}  up {w['uptime']:.0f} s  open {w['open']}  total {w['total']}"
            f"  rejected {w['rejected']}  in {w['bytes_in']}  out {w['bytes_out']}"
        )


def _status(pid_file: Path) -> dict[str, Any]:
    run_dir = Settings(pid_file=pid_file).run_dir
    master = json.loads((run_dir / "master.json").read_text())
    now = time.time()
    workers = []
    for pid in sorted(master["workers"], key=int):
        try:
            stats = json.loads((run_dir / f"worker-{pid}.json").read_text())
        except (OSError, ValueError):
            stats = {"pid": int(pid), "started": master["workers"][pid]}
        stats.setdefault("open", 0)
        for key in ("total", "rejected", "bytes_in", "bytes_out"):
            stats.setdefault(key, 0)
        stats["uptime"] = now - stats["started"]
        workers.append(stats)
    return {"pid": master["pid"], "uptime": now - master["started"], "address": master["address"],
            "workers": workers}  # fmt: skip


@main.command()
@_pid_option
@click.option("--timeout", type=click.FloatRange(min=0), default=15.0, show_default=True)
@click.pass_context
def restart(ctx: click.Context, pid_file: Path, timeout: float) -> None:
    """Stop the running server and start it again, as a daemon, with the same options."""
    pid = _running_or_exit(pid_file, 1)
    run_dir = Settings(pid_file=pid_file.absolute()).run_dir
    options = json.loads((run_dir / "master.json").read_text())["start"]
    os.kill(pid, signal.SIGTERM)
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
