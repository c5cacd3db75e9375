"""End to end: the master under faults (killed, its files removed, workers that cannot boot),
reloads and graceful stops under traffic, and every bad path given to it."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sample_server.supervision import BOOT_FAILURES, MAX_WORKERS
from sample_server.tests.support import (
    Server,
    _alive,
    cli,
    kill_everything,
    server_command,
    server_env,
    start,
)

TIMEOUT = 30


def _wait(condition: object, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _serves(server: Server) -> bool:
    try:
        with socket.create_connection((server.host, server.port), timeout=2) as sock:
            sock.sendall(b"?")
            return sock.recv(1) == b"?"
    except OSError:
        return False


def test_a_killed_master_takes_its_workers_with_it(tmp_path: Path) -> None:
    running = start(tmp_path, "--workers", "2")
    try:
        workers = running.worker_pids()
        os.kill(running.pid, signal.SIGKILL)
        _wait(lambda: not any(_alive(p) for p in [running.pid, *workers]), "workers outlived it")
        assert not _serves(running)
        pid_file = str(running.pid_file)
        status = cli("status", "--pid-file", pid_file)
        assert (status.returncode, status.stdout) == (
            3,
            "sample-server: not running (stale pid file)\n",
        )
        for command, code in (("stop", 0), ("reload", 1), ("restart", 1)):
            proc = cli(command, "--pid-file", pid_file)
            assert proc.returncode == code and proc.stderr == "", (command, proc.stderr)
            assert proc.stdout == "sample-server: not running (stale pid file)\n"
        # The same port and the same pid file: nothing of the dead one is in the way.
        again = cli("start", "-d", "--port", str(running.port), "--pid-file", pid_file)
        assert again.returncode == 0, again.stderr
        running.pid = int(again.stdout.rsplit("pid ", 1)[1].rstrip(")\n"))
        assert _serves(running)
    finally:
        kill_everything(running)


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    # A pid file naming some other live process: without the lock (a crash, then the pid
    # reused), and with the lock held by a process that is not the one it names.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_file = tmp_path / "s.pid"
        pid_file.write_text(f"{bystander.pid}\n")
        for command in ("status", "stop", "reload", "restart"):
            assert "stale pid file" in cli(command, "--pid-file", str(pid_file)).stdout
        with open(pid_file, "r+") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # this test process holds it, naming another
            for command in ("status", "stop", "reload", "restart"):
                assert "stale pid file" in cli(command, "--pid-file", str(pid_file)).stdout
        assert bystander.poll() is None, "the bystander was signalled"
    finally:
        bystander.kill()
        bystander.wait()


def test_the_master_survives_the_loss_of_its_run_folder(tmp_path: Path) -> None:
    running = start(tmp_path, "--workers", "2")
    try:
        victim = running.worker_pids()[0]
        run_dir = tmp_path / "server.pid.d"
        for entry in run_dir.iterdir():
            entry.unlink()
        run_dir.rmdir()  # as a cleaner of /tmp would
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(set(running.worker_pids()) - {victim}) == 2, "no replacement")
        assert _alive(running.pid) and _serves(running)
        stopped = cli("stop", "--pid-file", str(running.pid_file))
        assert stopped.returncode == 0, stopped.stderr
    finally:
        kill_everything(running)
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log and f"worker {victim} died" in log


def _breaking_sitecustomize(tmp_path: Path) -> Path:
    """A sitecustomize that makes every forked process unable to make an event loop: the
    master (which needs none) runs, and each of its workers fails as it boots."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import asyncio, os\n"
        "def _refuse(*args, **kwargs):\n"
        "    raise RuntimeError('no event loop in this test')\n"
        "def _break():\n"
        "    asyncio.new_event_loop = _refuse\n"
        "os.register_at_fork(after_in_child=_break)\n"
    )
    return folder


def test_workers_that_crash_at_boot_end_the_start_in_one_line(tmp_path: Path) -> None:
    site = _breaking_sitecustomize(tmp_path)
    pid_file = tmp_path / "s.pid"
    path = os.pathsep.join(filter(None, [str(site), server_env().get("PYTHONPATH")]))
    proc = cli("start", "-d", "--port", "0", "--loop", "asyncio", "--workers", "2",
               "--pid-file", str(pid_file), env={"PYTHONPATH": path})  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr == (
        f"sample-server: workers fail at start ({BOOT_FAILURES} in a row): "
        "RuntimeError: no event loop in this test\n"
    )
    assert not pid_file.exists() and not (tmp_path / "s.pid.d").exists()
    left = subprocess.run(["pgrep", "-f", str(pid_file)], capture_output=True, text=True)
    assert left.stdout == "", "processes left running"
    log = (tmp_path / "s.log").read_text()
    assert f"stopping: workers fail at start ({BOOT_FAILURES} in a row)" in log


def test_workers_above_the_bound_are_refused(tmp_path: Path) -> None:
    proc = cli("start", "-d", "--workers", str(MAX_WORKERS + 1), "--pid-file",
               str(tmp_path / "s.pid"))  # fmt: skip
    assert proc.returncode == 2 and f"1<=x<={MAX_WORKERS}" in proc.stderr
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


def test_bad_paths_are_one_line_and_create_nothing(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    folder = tmp_path / "folder"
    folder.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    cases = [
        (["start", "-d", "--pid-file", str(plain / "s.pid")],
         f"cannot use pid file {plain}/s.pid: {plain} is a file, not a folder"),
        (["start", "-d", "--pid-file", str(folder)], f"pid file {folder} is a folder"),
        (["start", "-d", "--pid-file", str(tmp_path / "ok.pid"), "--log-file", str(folder)],
         f"log file {folder} is a folder"),
        (["start", "-d", "--pid-file", str(tmp_path / "ok.pid"), "--log-file",
          str(plain / "x.log")], f"cannot open log file {plain}/x.log"),
        (["start", "--pid-file", str(tmp_path / "ok.pid"), "--log-file", str(folder)],
         f"log file {folder} is a folder"),
        (["status", "--pid-file", str(folder)], f"pid file {folder} is a folder"),
        (["stop", "--pid-file", str(folder)], f"pid file {folder} is a folder"),
        (["reload", "--pid-file", str(folder)], f"pid file {folder} is a folder"),
    ]  # fmt: skip
    for args, message in cases:
        proc = cli(*args, "--port", "0") if args[0] == "start" else cli(*args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith(f"sample-server: {message}"), (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    # A pid file under a regular file cannot exist: not running, said in one line.
    status = cli("status", "--pid-file", str(plain / "s.pid"))
    assert (status.returncode, status.stdout) == (3, "sample-server: not running\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert list(folder.iterdir()) == [] and not (tmp_path / "folder.log").exists()


@pytest.mark.slow  # many clients for many seconds: CI and `pytest --all` run it
def test_reloads_under_traffic_lose_nothing(tmp_path: Path) -> None:
    """20 reloads while short connections come and go and long-lived ones talk: no short one
    is refused or reset, and every long-lived one, ending within the graceful timeout, is
    served to its end on the worker it started on."""
    running = start(tmp_path, "--workers", "2", "--graceful-timeout", "20")
    failures: list[str] = []
    done = threading.Event()
    counts = {"short": 0, "long": 0}

    def short_clients() -> None:
        while not done.is_set():
            payload = b"short %d" % counts["short"]
            try:
                with socket.create_connection((running.host, running.port), TIMEOUT) as s:
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    got = b""
                    while chunk := s.recv(4096):
                        got += chunk
                if got != payload:
                    failures.append(f"short: {got!r} for {payload!r}")
                counts["short"] += 1
            except OSError as exc:
                failures.append(f"short: {exc!r}")

    def long_client(number: int) -> None:
        # Up to 3 s of 1 KiB exchanges: it spans several reloads.
        try:
            with socket.create_connection((running.host, running.port), TIMEOUT) as s:
                for i in range(30 + number % 30):
                    message = os.urandom(1024)
                    s.sendall(message)
                    got = b""
                    while len(got) < len(message):
                        chunk = s.recv(len(message) - len(got))
                        if not chunk:
                            failures.append(f"long {number}: cut after {i} messages")
                            return
                        got += chunk
                    if got != message:
                        failures.append(f"long {number}: wrong echo")
                        return
                    time.sleep(0.05)
            counts["long"] += 1
        except OSError as exc:
            failures.append(f"long {number}: {exc!r}")

    def long_clients() -> None:
        number = 0
        while not done.is_set():
            batch = [threading.Thread(target=long_client, args=(number + i,)) for i in range(8)]
            number += len(batch)
            for thread in batch:
                thread.start()
            for thread in batch:
                thread.join(TIMEOUT)

    threads = [threading.Thread(target=short_clients) for _ in range(3)]
    threads.append(threading.Thread(target=long_clients))
    for thread in threads:
        thread.start()
    try:
        for _ in range(20):
            proc = cli("reload", "--pid-file", str(running.pid_file))
            assert proc.returncode == 0, proc.stderr
            _wait(lambda: not running.status()["reloading"], "the reload did not end")
            time.sleep(0.2)
        state = running.status()
        assert state["reloads"] == 20 and state["cut"] == 0, state
    finally:
        done.set()
        for thread in threads:
            thread.join(TIMEOUT * 2)
        kill_everything(running)
    assert failures == [] and counts["short"] > 100 and counts["long"] > 8, (failures, counts)


def test_concurrent_reload_commands_are_each_counted_or_refused(tmp_path: Path) -> None:
    running = start(tmp_path, "--workers", "2")
    try:
        results: list[tuple[int, str, str]] = []

        def reload() -> None:
            proc = cli("reload", "--pid-file", str(running.pid_file))
            results.append((proc.returncode, proc.stdout, proc.stderr))

        threads = [threading.Thread(target=reload) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        taken = [r for r in results if r == (0, f"reloading (pid {running.pid})\n", "")]
        refused = [r for r in results if r == (1, "", f"sample-server: a reload is in progress "
                                                   f"(pid {running.pid})\n")]  # fmt: skip
        assert len(taken) + len(refused) == 6 and taken, results
        _wait(lambda: not running.status()["reloading"], "the reloads did not end")
        assert running.status()["reloads"] == len(taken)
    finally:
        kill_everything(running)


def test_a_connection_longer_than_the_graceful_timeout_is_cut_and_counted(
    tmp_path: Path,
) -> None:
    running = start(tmp_path, "--workers", "1", "--graceful-timeout", "1")
    try:
        with socket.create_connection((running.host, running.port), TIMEOUT) as sock:
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
            assert cli("reload", "--pid-file", str(running.pid_file)).returncode == 0
            sock.settimeout(TIMEOUT)
            with pytest.raises(ConnectionResetError):
                while sock.recv(1):
                    pass
                raise ConnectionResetError("closed")  # a clean EOF also counts as cut
        _wait(lambda: running.status()["cut"] == 1, "the cut connection was not counted")
        assert " cut 1" in cli("status", "--pid-file", str(running.pid_file)).stdout
    finally:
        kill_everything(running)


@pytest.mark.slow  # many clients for many seconds: CI and `pytest --all` run it
def test_graceful_stop_with_data_in_flight_resets_nobody(tmp_path: Path) -> None:
    """120 clients whose echoes are still on their way when ``stop -g`` comes, and 20 that go
    on sending through it: none sees a reset; the first get every byte back, the others a
    prefix of what they sent."""
    running = start(tmp_path, "--workers", "2")
    payload_size = 16 * 1024
    errors: list[str] = []
    waiting = []
    try:
        for _ in range(120):
            sock = socket.create_connection((running.host, running.port), TIMEOUT)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            payload = os.urandom(payload_size)
            sock.sendall(payload)
            waiting.append((sock, payload))
        talkers: list[threading.Thread] = []
        results: dict[int, tuple[bytes, bytes]] = {}

        def talk(number: int) -> None:
            sent = bytearray()
            got = bytearray()
            with socket.create_connection((running.host, running.port), TIMEOUT) as sock:
                sock.settimeout(TIMEOUT)

                def reader() -> None:
                    try:
                        while chunk := sock.recv(65536):
                            got.extend(chunk)
                    except OSError as exc:
                        errors.append(f"talker {number} read: {exc!r}")

                thread = threading.Thread(target=reader)
                thread.start()
                try:
                    while thread.is_alive():
                        piece = os.urandom(1024)
                        sock.sendall(piece)
                        sent.extend(piece)
                        time.sleep(0.005)
                except OSError:
                    pass  # the server half-closed and the client's own send stops
                thread.join(TIMEOUT)
            results[number] = (bytes(sent), bytes(got))

        for number in range(20):
            talkers.append(threading.Thread(target=talk, args=(number,)))
            talkers[-1].start()
        total = 120 * payload_size
        _wait(lambda: sum(w["bytes_in"] for w in running.status()["workers"]) >= total,
              "the payloads did not reach the server")  # fmt: skip
        stopping = cli("stop", "-g", "--pid-file", str(running.pid_file))
        for number, (sock, payload) in enumerate(waiting):
            got = bytearray()
            try:
                while chunk := sock.recv(65536):
                    got.extend(chunk)
            except OSError as exc:
                errors.append(f"client {number}: {exc!r}")
            if bytes(got) != payload:
                errors.append(f"client {number}: {len(got)} of {payload_size} bytes back")
            sock.close()
        for thread in talkers:
            thread.join(TIMEOUT)
        for number, (sent, echoed) in results.items():
            if not sent.startswith(echoed):
                errors.append(f"talker {number}: echo is not a prefix of what it sent")
        assert stopping.returncode == 0, stopping.stderr
        assert errors == [] and len(results) == 20, errors[:10]
    finally:
        for sock, _ in waiting:
            sock.close()
        kill_everything(running)


def test_a_log_file_on_a_read_only_file_system_is_one_line(tmp_path: Path) -> None:
    # A read-only file system of its own (a tmpfs mounted read-only in a mount namespace of
    # this command alone): root could write anywhere else.
    read_only = tmp_path / "ro"
    read_only.mkdir()
    pid_file = tmp_path / "s.pid"
    mount = 'mount -t tmpfs -o ro none "$1" && shift && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", mount, "sh", str(read_only), *server_command(),
         "start", "-d", "--port", "0", "--pid-file", str(pid_file),
         "--log-file", str(read_only / "server.log")],
        env=server_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        f"sample-server: cannot open log file {read_only}/server.log: Read-only file system\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro"]
