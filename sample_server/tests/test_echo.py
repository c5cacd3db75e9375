"""End to end: the real daemon on a free port, real clients on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from sample_server.server import uvloop_problem
from sample_server.tests.support import Server, _alive, cli, kill_everything, start

TIMEOUT = 30


def echo(server: Server, payload: bytes) -> bytes:
    """Send *payload*, half-close, read everything back until the server closes."""
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        errors: list[BaseException] = []

        def send() -> None:
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
            except BaseException as exc:
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        received = bytearray()
        while chunk := sock.recv(1 << 16):
            received += chunk
        sender.join(TIMEOUT)
        if errors:
            raise errors[0]  # as if sent from here: callers that expect none fail on it
    return bytes(received)


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 8 << 20])
def test_bytes_echoed_exactly(server: Server, size: int) -> None:
    payload = os.urandom(size)
    assert echo(server, payload) == payload


def test_every_byte_value_in_any_chunking(server: Server) -> None:
    payload = bytes(range(256)) * 64
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        received = bytearray()
        for start_at in range(0, len(payload), 777):
            sock.sendall(payload[start_at : start_at + 777])
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(4096):
            received += chunk
    assert bytes(received) == payload


def test_two_hundred_concurrent_clients(server: Server) -> None:
    async def client(i: int) -> bool:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        payload = f"client {i} ".encode() * 100
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        return data == payload

    async def run_all() -> list[bool]:
        return await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(200))), TIMEOUT)

    assert all(asyncio.run(run_all()))
    deadline = time.monotonic() + TIMEOUT  # workers publish their counters twice a second
    while sum(w["total"] for w in server.status()["workers"]) < 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_status_counts_connections_and_bytes(server: Server) -> None:
    echo(server, b"x" * 1000)
    deadline = time.monotonic() + TIMEOUT
    while True:
        data = server.status()
        if sum(w["bytes_in"] for w in data["workers"]) >= 1000:
            break
        assert time.monotonic() < deadline, data
        time.sleep(0.1)
    assert data["pid"] == server.pid and data["address"] == f"{server.host}:{server.port}"
    assert len(data["workers"]) == 2
    assert sum(w["total"] for w in data["workers"]) >= 1
    text = cli("status", "--pid-file", str(server.pid_file))
    assert text.returncode == 0 and text.stdout.startswith(f"master {server.pid}")


def test_a_killed_worker_is_replaced(server: Server) -> None:
    victim = server.worker_pids()[0]
    os.kill(victim, 9)
    deadline = time.monotonic() + TIMEOUT
    while True:
        pids = server.worker_pids()
        if victim not in pids and len(pids) == 2:
            break
        assert time.monotonic() < deadline, pids
        time.sleep(0.05)
    assert echo(server, b"still serving") == b"still serving"


def test_idle_connections_are_closed(tmp_path: Path) -> None:
    running = start(tmp_path, "--workers", "1", "--idle-timeout", "0.5")
    try:
        with socket.create_connection((running.host, running.port), timeout=TIMEOUT) as sock:
            began = time.monotonic()
            assert sock.recv(1) == b""  # closed by the server, not by our timeout
            assert time.monotonic() - began < 10
    finally:
        kill_everything(running)


def test_connection_cap(tmp_path: Path) -> None:
    running = start(tmp_path, "--workers", "1", "--max-connections", "2")
    try:
        kept = [socket.create_connection((running.host, running.port), timeout=TIMEOUT)
                for _ in range(2)]  # fmt: skip
        for sock in kept:
            sock.sendall(b"hi")
            assert sock.recv(2) == b"hi"
        extra = socket.create_connection((running.host, running.port), timeout=TIMEOUT)
        try:
            # Closed at once, one way or the other: end of stream or a reset.
            with contextlib.suppress(ConnectionResetError):
                assert extra.recv(1) == b""
        finally:
            extra.close()
        deadline = time.monotonic() + TIMEOUT
        while running.status()["workers"][0]["rejected"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for sock in kept:
            sock.close()
    finally:
        kill_everything(running)


def test_already_running_and_stop(server: Server) -> None:
    again = cli("start", "-d", "--port", "0", "--pid-file", str(server.pid_file))
    assert again.returncode == 1 and f"already running (pid {server.pid})" in again.stderr
    stopped = cli("stop", "--pid-file", str(server.pid_file))
    assert stopped.returncode == 0 and f"stopped (pid {server.pid})" in stopped.stdout
    assert not server.pid_file.exists()
    assert cli("status", "--pid-file", str(server.pid_file)).returncode == 3
    assert cli("stop", "--pid-file", str(server.pid_file)).stdout == "sample-server: not running\n"


def test_port_in_use_fails_cleanly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pid_file = tmp_path / "s.pid"
        proc = cli("start", "-d", "--port", str(port), "--pid-file", str(pid_file))
        assert proc.returncode == 1
        assert proc.stderr == f"sample-server: cannot listen on 127.0.0.1:{port}: port in use\n"
        assert not pid_file.exists()
        assert cli("status", "--pid-file", str(pid_file)).returncode == 3


def test_stale_pid_file_does_not_block_a_start(tmp_path: Path) -> None:
    first = start(tmp_path, "--workers", "1")
    workers = first.worker_pids()
    for pid in [first.pid, *workers]:
        os.kill(pid, 9)  # a crash: nothing cleans up
    deadline = time.monotonic() + TIMEOUT
    while any(_alive(p) for p in [first.pid, *workers]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert first.pid_file.exists()
    second = start(tmp_path, "--workers", "1")
    try:
        assert echo(second, b"after a crash") == b"after a crash"
    finally:
        kill_everything(second)


@pytest.mark.slow  # seconds of waiting on purpose: CI and `pytest --all` run it
def test_graceful_stop_echoes_what_was_received(tmp_path: Path) -> None:
    running = start(tmp_path, "--workers", "1")
    try:
        payload = os.urandom(200_000)
        with socket.create_connection((running.host, running.port), timeout=TIMEOUT) as sock:
            sock.sendall(payload)
            # Wait until the server has it all, then stop gracefully while it is in flight.
            deadline = time.monotonic() + TIMEOUT
            while running.status()["workers"][0]["bytes_in"] < len(payload):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            stopping = cli("stop", "-g", "--pid-file", str(running.pid_file))
            received = bytearray()
            while chunk := sock.recv(1 << 16):
                received += chunk
        assert stopping.returncode == 0, stopping.stderr
        assert bytes(received) == payload
    finally:
        kill_everything(running)


def test_restart_keeps_the_options(tmp_path: Path) -> None:
    running = start(tmp_path, "--workers", "1", "--idle-timeout", "7")
    try:
        proc = cli("restart", "--pid-file", str(running.pid_file))
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == f"stopped (pid {running.pid})"
        assert lines[1].startswith("listening on 127.0.0.1:")
        new_pid = int(lines[1].rsplit("pid ", 1)[1].rstrip(")"))
        running.pid = new_pid
        running.port = int(lines[1].split(":")[1].split()[0])
        assert len(running.worker_pids()) == 1
        assert echo(running, b"restarted") == b"restarted"
    finally:
        kill_everything(running)


def test_reload_replaces_workers_without_refusing_anyone(server: Server) -> None:
    before = set(server.worker_pids())
    failures: list[str] = []
    done = threading.Event()
    lock = threading.Lock()
    count = 0
    reloaded = time.monotonic()  # set again when the reload is sent

    def clients() -> None:
        # Several at once, so that a worker is often in the middle of accepting one when it
        # is told to retire: that is where a connection can be dropped.
        nonlocal count
        deadline = time.monotonic() + TIMEOUT
        while not done.is_set() and time.monotonic() < deadline:
            with lock:
                number, count = count, count + 1
            if number >= 20000:
                return
            began = time.monotonic() - reloaded  # when, around the reload, for a failure
            try:
                if echo(server, b"ping %d" % number) != b"ping %d" % number:
                    failures.append(f"wrong echo {number}")
            except OSError as exc:
                failures.append(f"{number}, begun {began:+.3f} s from the reload: {exc!r}")

    threads = [threading.Thread(target=clients) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        reloaded = time.monotonic()
        reload = cli("reload", "--pid-file", str(server.pid_file))
        assert reload.returncode == 0, reload.stderr
        deadline = time.monotonic() + TIMEOUT
        while True:
            after = set(server.worker_pids())
            if len(after) == 2 and not after & before:
                break
            assert time.monotonic() < deadline, (before, after)
            time.sleep(0.05)
    finally:
        done.set()
        for thread in threads:
            thread.join(TIMEOUT)
    # On a failure, what the server logged (worker deaths, loop errors) comes with it.
    assert count > 0 and failures == [], server.pid_file.with_suffix(".log").read_text()[-3000:]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fp:
        for line in fp:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_client_that_never_reads_does_not_grow_the_server(tmp_path: Path) -> None:
    running = start(tmp_path, "--workers", "1")
    try:
        (worker,) = running.worker_pids()
        before = _rss_kib(worker)
        hog = socket.create_connection((running.host, running.port), timeout=TIMEOUT)
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        hog.settimeout(2.0)
        sent = 0
        chunk = b"x" * 65536
        try:
            while sent < 64 << 20:  # stops when the server stops reading and buffers fill
                sent += hog.send(chunk)
        except TimeoutError:
            pass
        grown = _rss_kib(worker) - before
        # The server holds at most about 512 KiB for it (docs/sample_server.md) plus socket
        # buffers.
        assert grown < 16 * 1024, f"worker grew by {grown} KiB after {sent} bytes"
        assert sent < 64 << 20, "the server kept reading from a client that never reads"
        assert echo(running, b"others are still served") == b"others are still served"
        hog.close()
    finally:
        kill_everything(running)


def test_resets_leave_no_traceback_and_no_leaked_descriptors(tmp_path: Path) -> None:
    running = start(tmp_path, "--workers", "1")
    try:
        (worker,) = running.worker_pids()
        assert echo(running, b"warm") == b"warm"
        before = _fds(worker)
        for _ in range(100):
            sock = socket.create_connection((running.host, running.port), timeout=TIMEOUT)
            sock.sendall(os.urandom(200_000))  # the server is writing back when we vanish
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()  # linger 0: a reset
        deadline = time.monotonic() + TIMEOUT
        while _fds(worker) > before:
            assert time.monotonic() < deadline, (before, _fds(worker))
            time.sleep(0.05)
        assert echo(running, b"fine") == b"fine"
        log = (tmp_path / "server.log").read_text()
        assert "Traceback" not in log
        assert log.count("\n") < 20, "no line per vanished peer"
    finally:
        kill_everything(running)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fp:
        fields = fp.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow  # seconds of waiting on purpose: CI and `pytest --all` run it
def test_out_of_descriptors_backs_off_and_recovers(tmp_path: Path) -> None:
    # On every event loop this interpreter has (uvloop only where its wheel fits).
    for loop in ["asyncio", *([] if uvloop_problem() else ["uvloop"])]:
        _out_of_descriptors(tmp_path / loop, loop)


def _out_of_descriptors(tmp_path: Path, loop: str) -> None:
    import resource
    import subprocess

    from sample_server.tests.support import server_command, server_env

    tmp_path.mkdir()
    pid_file = tmp_path / "server.pid"
    proc = subprocess.run(
        [*server_command(), "start", "-d", "--port", "0", "--workers", "1", "--loop", loop,
         "--pid-file", str(pid_file)],
        env=server_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    host, rest = proc.stdout.split("listening on ", 1)[1].split(":", 1)
    port, pid = int(rest.split()[0]), int(rest.split("pid ")[1].rstrip(")\n"))
    running = Server(host, port, pid, pid_file)
    clients: list[socket.socket] = []
    try:
        (worker,) = running.worker_pids()
        for _ in range(100):  # more than the worker can hold: accept() fails with EMFILE
            clients.append(socket.create_connection((host, port), timeout=TIMEOUT))
        time.sleep(0.5)  # let the worker hit the limit
        before = _cpu_seconds(worker)
        time.sleep(2.0)
        assert _cpu_seconds(worker) - before < 1.0, f"the worker spins on EMFILE ({loop})"
        dropped = 0
        for sock in clients:
            sock.setblocking(False)
            try:
                dropped += sock.recv(1) == b""
            except ConnectionResetError:
                dropped += 1
            except BlockingIOError:
                pass  # held open, or still queued
        for sock in clients:
            sock.close()
        clients.clear()
        deadline = time.monotonic() + TIMEOUT
        while True:  # accepting again once descriptors are free
            try:
                if echo(running, b"recovered") == b"recovered":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        log = (tmp_path / "server.log").read_text()
        # The limit was really reached: asyncio logs it and backs off for a second, the
        # connections waiting in the queue; libuv (uvloop) accepts and closes them at once.
        if loop == "asyncio":
            assert "out of system resource" in log
        else:
            assert dropped > 0
        assert "Traceback" not in log
    finally:
        for sock in clients:
            sock.close()
        kill_everything(running)


def test_the_daemon_is_detached(server: Server, tmp_path: Path) -> None:
    with open(f"/proc/{server.pid}/stat") as fp:
        fields = fp.read().rsplit(")", 1)[1].split()
    session, tty = int(fields[3]), int(fields[4])
    assert session != os.getsid(0), "a session of its own"
    assert tty == 0, "no controlling terminal"
    assert os.readlink(f"/proc/{server.pid}/cwd") == "/"
    assert os.readlink(f"/proc/{server.pid}/fd/1") == str(server.pid_file.with_suffix(".log"))
    with open(f"/proc/{server.pid}/status") as fp:
        umask = next(line.split()[1] for line in fp if line.startswith("Umask:"))
    assert umask == "0022"
    assert int(server.pid_file.read_text()) == server.pid


@pytest.mark.parametrize("to", ["master", "process group"])
def test_foreground_start_stops_cleanly_on_ctrl_c(tmp_path: Path, to: str) -> None:
    # A terminal's Ctrl-C reaches the whole process group, workers included: the workers it
    # ends must not be replaced while the master stops.
    import signal
    import subprocess

    from sample_server.tests.support import server_command, server_env

    pid_file = tmp_path / "fg.pid"
    proc = subprocess.Popen(
        [*server_command(), "start", "--port", "0", "--workers", "2", "--pid-file", str(pid_file)],
        env=server_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first log line says it is listening
        assert "listening on 127.0.0.1:" in line, line
        if to == "master":
            proc.send_signal(signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped" in err and "starting another" not in err
    assert not pid_file.exists()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_both_event_loops(tmp_path: Path, loop: str) -> None:
    if loop == "uvloop" and uvloop_problem():  # the server runs on this interpreter
        # Where uvloop cannot load (no wheel for this Python): refused up front, in one line.
        proc = cli("start", "--port", "0", "--pid-file", str(tmp_path / "p.pid"), "--loop", loop)
        assert proc.returncode == 1
        assert proc.stderr.startswith("sample-server: --loop uvloop: cannot use uvloop here: ")
        assert proc.stderr.count("\n") == 1 and not (tmp_path / "p.pid").exists()
        return
    running = start(tmp_path, "--workers", "1", "--loop", loop)
    try:
        for size in (0, 1, 70_000, 1 << 20):
            payload = os.urandom(size)
            assert echo(running, payload) == payload
        assert running.status()["workers"][0]["loop"] == loop
    finally:
        kill_everything(running)
