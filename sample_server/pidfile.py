"""The pid file: held with ``flock`` by the master alone, and read by the commands that must
tell a live master from a stale file or a pid reused by another process."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AlreadyRunning",
    "PidFile",
    "Probe",
    "StartError",
    "check_pid_path",
    "probe",
    "read_pid",
]


class StartError(Exception):
    """The server cannot start: the message says why, in one line."""


class AlreadyRunning(StartError):
    pass


class PidFile:
    """A pid file held with ``flock`` for the life of the master.

    Only the master holds it: workers close the descriptor as they start, so the lock ends
    with the master even if a worker were to outlive it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        check_pid_path(self.path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise StartError(f"cannot use pid file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise AlreadyRunning(f"already running (pid {read_pid(self.path) or '?'})") from None
        # A stale file (its master killed) has no lock: taken over here.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self.fd)
            self.fd = None


def check_pid_path(path: Path) -> None:
    """Refuse, in one line, a pid file path that cannot be one (a folder, under a file)."""
    if path.is_dir():
        raise StartError(f"pid file {path} is a folder")
    for above in reversed(path.parents):
        if above.exists() and not above.is_dir():
            raise StartError(f"cannot use pid file {path}: {above} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartError(f"cannot use pid file {path}: {exc.strerror}") from None


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Probe:
    """What a pid file says: *pid* of the master that holds it, or *stale* (a file that no
    live master holds), or neither (no file)."""

    pid: int | None
    stale: bool = False


def probe(path: Path) -> Probe:
    """Who holds *path*: a master only if the lock is held and held by the pid the file names
    (checked in ``/proc/locks`` where there is one), so a reused pid is never taken for it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return Probe(None)
    except OSError as exc:
        raise StartError(f"cannot read pid file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise StartError(f"pid file {path} is {what}")
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            pid = read_pid(path)
            holders = _lock_holders(info)
            if pid is None or (holders is not None and pid not in holders) or not _alive(pid):
                return Probe(None, stale=True)
            return Probe(pid)
        return Probe(None, stale=True)
    finally:
        os.close(fd)


def _lock_holders(info: os.stat_result) -> set[int] | None:
    """The pids holding a ``flock`` on the file *info* describes; None where the kernel does
    not say (no ``/proc/locks``)."""
    try:
        with open("/proc/locks") as fp:
            lines = fp.read().splitlines()
    except OSError:
        return None
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    holders = set()
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            with contextlib.suppress(ValueError):
                holders.add(int(fields[4]))
    return holders


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
