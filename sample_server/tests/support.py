"""Helpers: run sample-server, start the real daemon on a free port, stop it without fail."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


def server_command() -> list[str]:
    """How to run sample-server: ``SAMPLE_SERVER_COMMAND`` (JSON list) when set (inside
    app.pyz it names the archive), else ``python -m sample_server`` from this tree."""
    given = os.environ.get("SAMPLE_SERVER_COMMAND")
    if given:
        return list(json.loads(given))
    return [sys.executable, "-m", "sample_server"]


def server_env() -> dict[str, str]:
    """The environment sample-server runs in: this tree on PYTHONPATH unless an archive is run."""
    env = dict(os.environ)
    if not os.environ.get("SAMPLE_SERVER_COMMAND"):
        env["PYTHONPATH"] = str(_HERE.parent.parent)
    return env


def cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run sample-server with *args* (and *env* added to the environment)."""
    return subprocess.run([*server_command(), *args], env={**server_env(), **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


@dataclass
class Server:
    host: str
    port: int
    pid: int
    pid_file: Path

    def status(self) -> dict[str, Any]:
        proc = cli("status", "--json", "--pid-file", str(self.pid_file))
        assert proc.returncode == 0, proc.stderr
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.status()["workers"]]


def start(tmp: Path, *extra: str) -> Server:
    pid_file = tmp / "server.pid"
    proc = cli("start", "-d", "--port", "0", "--pid-file", str(pid_file), *extra)
    assert proc.returncode == 0, proc.stderr
    match = re.fullmatch(r"listening on (\S+):(\d+) \(pid (\d+)\)\n", proc.stdout)
    assert match, proc.stdout
    return Server(match[1], int(match[2]), int(match[3]), pid_file)


def kill_everything(server: Server) -> None:
    """Stop the server; whatever is still alive after that is killed (no process left)."""
    pids = {server.pid}
    with contextlib.suppress(AssertionError, ValueError, KeyError):
        pids.update(server.worker_pids())
    cli("stop", "--pid-file", str(server.pid_file), "--timeout", "10")
    deadline = time.monotonic() + 10
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as fp:
            return fp.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
