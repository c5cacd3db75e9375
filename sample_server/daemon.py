"""Become a daemon properly, and report back to the command that started it."""

from __future__ import annotations

import os
import select
import sys
import time

__all__ = ["daemonize_and_wait"]


def daemonize_and_wait(log_fd: int, timeout: float = 30.0) -> int | None:
    """Fork a daemon. In the daemon return the fd to report readiness on; in the caller wait
    for that report and exit: 0 with the address and pid, 1 with the reason.

    Double fork with ``setsid`` in between (no controlling terminal, ever), ``umask(022)``,
    ``chdir("/")``, standard streams to *log_fd* (the log file, opened by the caller, so that
    a bad one is refused while there is still a terminal to say so).
    """
    ready_r, ready_w = os.pipe()
    first = os.fork()
    if first > 0:
        os.close(ready_w)
        os.waitpid(first, 0)  # the intermediate child exits at once: no zombie
        sys.exit(_wait_for_report(ready_r, timeout))
    os.close(ready_r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.umask(0o022)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null)
    os.close(log_fd)
    return ready_w


def _wait_for_report(fd: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            print("sample-server: the daemon did not report in time; see its log", file=sys.stderr)
            return 1
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            print("sample-server: the daemon exited before it was ready; see its log",
                  file=sys.stderr)  # fmt: skip
            return 1
        data += chunk
    line = data.decode().strip()
    if line.startswith("ok "):
        _, address, pid = line.split()
        print(f"listening on {address} (pid {pid})")
        return 0
    print(f"sample-server: {line.removeprefix('error ')}", file=sys.stderr)
    return 1
