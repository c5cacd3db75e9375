"""Echo throughput and latency: sample_server against minimal asyncio, uvloop and Node servers.

Run: python bench/echo.py [--seconds 10] [--runs 3] [--sizes 1024,...] [--connections 10,...]
                          [--only SUBSTRING ...]

A closed-loop load generator in C (bench/echo/loadgen.c, epoll, compiled here with cc) drives
each server over loopback: 1 KiB, 16 KiB and 128 KiB messages, 10 and 100 connections.
Reported: requests/s, p50/p99 latency and the server's CPU time per echo (medians over runs).

Every server is started once and keeps running through all the cases, as a server does. Each
case is measured in rounds, one run of every server per round (in a rotating order), so the
servers compared are measured seconds apart, not minutes: on a shared 2-core VM the speed of
the whole machine drifts more than the differences looked for. A ratio is taken within each
round, and the median of those is what is checked against the targets.

The minimal asyncio Protocol echo runs twice: as is, and with glibc's malloc thresholds fixed
("steady malloc"), since with the defaults its speed depends on its allocation history.
The load generator shares this machine's cores with the server: it is pinned to the second
core, and one-process servers to the first (multi-process ones may use both).

Then each pair of servers a target compares is measured head to head: both serve at once on
the first core, each driven by a load generator of its own on the second. The scheduler gives
each server half the core, so the ratio of their requests/s is the ratio of the work each
does per echo, taken under the very same machine conditions; run after run it moves by a
percent or two where the ratio of runs taken one after the other moves by tens of percent.
A control pair, two copies of one minimal echo, shows how far from 1.00 that method strays.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    REPO,
    bench_env,
    commit_of,
    invocation,
    machine_line,
    make_venv,
    median,
    publish,
    tool_versions,
)

sys.path.insert(0, str(REPO))  # the thresholds sample_server's workers set, for the peer

from sample_server.server import MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD

HERE = Path(__file__).resolve().parent / "echo"
SIZES = (1024, 16384, 131072)
CONNECTIONS = (10, 100)
SERVER_CPUS = {0}
LOAD_CPUS = {1}


#: glibc settings that keep the minimal asyncio echo in its fast state: with the defaults, its
#: 256 KiB reads may each cost an mmap, an mremap and a munmap, depending on the process's
#: history (bench/RESULTS.md). Fixed thresholds end that lottery; sample_server's workers set
#: the same ones themselves (server.steady_malloc).
STEADY_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(MALLOC_MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(MALLOC_TRIM_THRESHOLD),
}

#: Targets: (ours, peer, at least this many times the peer's requests/s; None:
#: shown, no target). The 1.8x over streams is for the server as it runs by default (uvloop,
#: which the test extra and app.pyz bring); on asyncio it would mean beating the minimal
#: asyncio Protocol echo, which is itself about 1.5x streams at 1 KiB (bench/RESULTS.md).
TARGETS = (
    ("sample_server, asyncio, 1 worker", "asyncio Protocol", 0.9),
    ("sample_server, asyncio, 1 worker", "asyncio Protocol, steady malloc", 0.9),
    ("sample_server, uvloop, 1 worker", "uvloop Protocol", 0.9),
    ("sample_server, uvloop, 1 worker", "asyncio streams", 1.8),
    ("sample_server, asyncio, 1 worker", "asyncio streams", None),
    ("uvloop Protocol, 2 processes, SO_REUSEPORT", "uvloop Protocol, 2 processes, shared socket",
     None),
    ("sample_server, uvloop, 2 workers", "sample_server, uvloop, 1 worker", None),
)  # fmt: skip

#: The servers of more than one process: they get both cores, and are not measured head to
#: head (that shares one core between two servers).
SEVERAL_PROCESSES = frozenset({
    "sample_server, uvloop, 2 workers",
    "uvloop Protocol, 2 processes, shared socket",
    "uvloop Protocol, 2 processes, SO_REUSEPORT",
})  # fmt: skip
#: A second copy of a minimal echo. Against the first, what either way of measuring gives for
#: two servers that are the same: 1.00, give or take that way's noise.
CONTROL = "asyncio Protocol, steady malloc, second copy"
CONTROL_PAIR = (CONTROL, "asyncio Protocol, steady malloc", None)
#: (ours, peer, target) measured head to head: the pairs of one-process servers in TARGETS,
#: and the control.
HEAD_TO_HEAD = (
    *(t for t in TARGETS if t[0] not in SEVERAL_PROCESSES and t[1] not in SEVERAL_PROCESSES),
    CONTROL_PAIR,
)

Run = tuple[float, float, float, float]  # requests/s, p50 µs, p99 µs, CPU µs per echo


def _ratio_line(ours: str, peer: str, target: float | None, key: tuple[int, int],
                each: list[float]) -> str:  # fmt: skip
    """One target's ratio for one case: the median over rounds, with the lowest and highest."""
    each = sorted(each)
    ratio = median(each)
    verdict = ""
    if target is not None:
        verdict = f" (target ≥ {target:.1f}×: {'met' if ratio >= target else 'NOT met'})"
    return (
        f"- {ours} / {peer}, {key[0] // 1024} KiB, {key[1]} conns: {ratio:.2f}× "
        f"(rounds {each[0]:.2f}–{each[-1]:.2f}){verdict}"
    )


def _ratios(results: dict[tuple[str, int, int], list[Run]]) -> list[str]:
    """Requests/s ratios of runs one after the other, one line per pair and case measured:
    the median of the ratios taken within each round, and the lowest and highest of them.
    No verdicts: the targets are judged head to head, the precise measure where both exist."""
    lines = []
    for ours, peer, _ in (*TARGETS, CONTROL_PAIR):
        for (name, size, conns), runs in results.items():
            theirs = results.get((peer, size, conns))
            if name != ours or not theirs or len(theirs) != len(runs):
                continue
            each = [a[0] / b[0] for a, b in zip(runs, theirs, strict=True)]
            lines.append(_ratio_line(ours, peer, None, (size, conns), each))
    return lines


def _cpu(pid: int) -> float:
    """CPU seconds of *pid* and its children (the server's workers)."""
    total = 0.0
    pids = [pid] + [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid]
    for each in pids:
        try:
            with open(f"/proc/{each}/stat") as fp:
                fields = fp.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fp:
            return int(fp.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    """A preexec_fn that keeps a process (and what it forks) on *cpus*; None: anywhere."""
    if cpus is None or len(os.sched_getaffinity(0)) < 2:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _start(
    command: list[str], work: Path, cpus: set[int] | None, env: dict[str, str]
) -> tuple[subprocess.Popen[str], int]:
    """Start one server in *work* (its own folder); returns it and the port it listens on."""
    work.mkdir()
    # Logs go to a file: a pipe nobody reads fills up and blocks the server.
    log = (work / "server.log").open("w")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True,
                            env=bench_env(**env), cwd=work, preexec_fn=_pinned(cpus))  # fmt: skip
    log.close()
    assert proc.stdout is not None
    if "sample_server" in command:
        deadline = time.monotonic() + 30
        while "listening on" not in (text := (work / "server.log").read_text()):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()  # not yet among the servers the caller stops
                proc.wait()
                raise SystemExit(f"server did not start: {text}")
            time.sleep(0.05)
        port = int(text.split("127.0.0.1:")[1].split()[0])
    else:
        port = int(proc.stdout.readline())
    return proc, port


def _measure(
    loadgen: Path, servers: list[tuple[int, int]], conns: int, size: int, seconds: float
) -> list[Run] | str:
    """One run of the load generator against each server (pid, port), all at once; a string
    says why it failed."""
    before = [_cpu(pid) for pid, _ in servers]
    loads = [
        subprocess.Popen(
            [str(loadgen), str(port), str(conns), str(size), str(seconds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_pinned(LOAD_CPUS),
        )
        for _, port in servers
    ]
    outputs = []
    try:
        for load in loads:
            outputs.append(load.communicate(timeout=seconds + 30))
    except subprocess.TimeoutExpired:
        return "load generator timed out"
    finally:
        for load in loads:  # none left running, whatever happened to the others
            if load.poll() is None:
                load.kill()
                load.wait()
    runs: list[Run] = []
    for load, (out, err), (pid, _), cpu_before in zip(loads, outputs, servers, before, strict=True):
        if load.returncode != 0:
            return err.strip() or f"load generator exit {load.returncode}"
        fields = out.split()
        count, p50, p99 = max(int(fields[0]), 1), float(fields[1]), float(fields[2])
        runs.append((count / seconds, p50, p99, (_cpu(pid) - cpu_before) / count * 1e6))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="message sizes")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)))
    parser.add_argument("--only", action="append", default=[],
                        help="only the servers whose name has this (repeatable)")  # fmt: skip
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    connections = [int(c) for c in args.connections.split(",")]
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("a C compiler is needed for the load generator")
    work = Path(tempfile.mkdtemp(prefix="packer-bench-echo-"))
    try:
        loadgen = work / "loadgen"
        subprocess.run([cc, "-O2", "-o", str(loadgen), str(HERE / "loadgen.c")], check=True)
        # From a copy: building the distribution in place leaves build/ in the checkout.
        source = work / "sample_server"
        shutil.copytree(
            REPO / "sample_server",
            source,
            ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"),
        )
        python = str(make_venv(work / "venv", str(source), "uvloop"))
        peers = str(HERE / "peers.py")
        # The pid file is relative: each server runs in a folder of its own.
        ours = [python, "-m", "sample_server", "start", "--port", "0", "--pid-file", "s.pid",
                "--idle-timeout", "0"]  # fmt: skip
        contenders = {
            "sample_server, asyncio, 1 worker": [*ours, "--workers", "1", "--loop", "asyncio"],
            "sample_server, uvloop, 1 worker": [*ours, "--workers", "1", "--loop", "uvloop"],
            "sample_server, uvloop, 2 workers": [*ours, "--workers", "2", "--loop", "uvloop"],
            "asyncio streams": [python, peers, "streams", "asyncio"],
            "asyncio Protocol": [python, peers, "protocol", "asyncio"],
            "asyncio Protocol, steady malloc": [python, peers, "protocol", "asyncio"],
            CONTROL: [python, peers, "protocol", "asyncio"],
            "uvloop Protocol": [python, peers, "protocol", "uvloop"],
            "uvloop Protocol, 2 processes, shared socket": [python, peers, "protocol", "uvloop",
                                                             "shared", "2"],
            "uvloop Protocol, 2 processes, SO_REUSEPORT": [python, peers, "protocol", "uvloop",
                                                            "reuseport", "2"],
        }  # fmt: skip
        node = shutil.which("node")
        if node:
            contenders["Node.js net"] = [node, str(HERE / "node_echo.js")]
        if args.only:
            # A whole name picks that server alone; anything else, every name containing it.
            contenders = {
                k: v
                for k, v in contenders.items()
                if any(o == k or (o not in contenders and o in k) for o in args.only)
            }
        results: dict[tuple[str, int, int], list[Run]] = {}
        failures: dict[tuple[str, int, int], str] = {}
        servers: dict[str, tuple[subprocess.Popen[str], int]] = {}
        # (ours, peer, target, size, conns): each round's requests/s ratio and CPU per echo
        together: dict[tuple[str, str, float | None, int, int], list[tuple[float, float, float]]]
        together = {}
        failures_together: dict[tuple[str, str, float | None, int, int], str] = {}
        try:
            for number, (name, command) in enumerate(contenders.items()):
                # One-process servers get one core and the load generator the other, so that
                # neither waits for the other's time slice; the multi-process ones get both.
                env = STEADY_MALLOC if "steady malloc" in name else {}
                cpus = None if name in SEVERAL_PROCESSES else SERVER_CPUS
                servers[name] = _start(command, work / f"server-{number}", cpus, env)
            names = list(servers)
            for size in sizes:
                for conns in connections:
                    for round_ in range(args.runs):
                        # A rotating order: no server always runs right after the same one.
                        shift = round_ % len(names)
                        for name in names[shift:] + names[:shift]:
                            if (name, size, conns) in failures:
                                continue
                            proc, port = servers[name]
                            got = _measure(loadgen, [(proc.pid, port)], conns, size, args.seconds)
                            outcome = got if isinstance(got, str) else got[0]
                            if isinstance(outcome, str):
                                failures[(name, size, conns)] = outcome
                                results.pop((name, size, conns), None)
                            else:
                                results.setdefault((name, size, conns), []).append(outcome)
            pairs = [t for t in HEAD_TO_HEAD if t[0] in servers and t[1] in servers]
            for size in sizes:
                for conns in connections:
                    for _ in range(args.runs):
                        for first, second, target in pairs:
                            key = (first, second, target, size, conns)
                            if key in failures_together:
                                continue
                            a, b = servers[first], servers[second]
                            got = _measure(loadgen, [(a[0].pid, a[1]), (b[0].pid, b[1])],
                                           conns, size, args.seconds)  # fmt: skip
                            if isinstance(got, str):
                                failures_together[key] = got
                                together.pop(key, None)
                            else:  # requests/s ratio, and each one's CPU µs per echo
                                mine, theirs = got
                                together.setdefault(key, []).append(
                                    (mine[0] / theirs[0], mine[3], theirs[3])
                                )
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
            for proc, _ in servers.values():
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        rows = ["| server | message | conns | req/s | p50 µs | p99 µs | CPU µs/echo |",
                "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for (name, size, conns), runs in results.items():
            cols = [median([r[i] for r in runs]) for i in range(4)]
            rows.append(f"| {name} | {size // 1024} KiB | {conns} | {cols[0]:.0f} | {cols[1]:.0f} "
                        f"| {cols[2]:.0f} | {cols[3]:.1f} |")  # fmt: skip
        for (name, size, conns), why in failures.items():
            rows.append(f"| {name} | {size // 1024} KiB | {conns} | failed: {why} | | | |")
        rows += ["", "Runs one after the other (for the spread, see the control pair; the "
                 "targets are judged head to head, below):", "", *_ratios(results)]  # fmt: skip
        if together:
            rows += ["", "Head to head (both servers at once on one core; in brackets, the CPU "
                     "per echo ratio, and each round's CPU µs per echo of both):", ""]  # fmt: skip
            for (first, second, target, size, conns), rounds in together.items():
                line = _ratio_line(first, second, target, (size, conns), [r[0] for r in rounds])
                cpu = median([r[1] / r[2] for r in rounds])
                each = ", ".join(f"{r[1]:.1f}/{r[2]:.1f}" for r in rounds)
                rows.append(f"{line} [CPU {cpu:.2f}×: {each}]")
        for (first, second, _, size, conns), why in failures_together.items():
            rows.append(f"- {first} / {second}, {size // 1024} KiB, {conns} conns: failed: {why}")
        invoked = invocation("echo.py", args)
        versions = f"sample_server at {commit_of('sample_server')}, " + tool_versions(
            Path(python), "uvloop", packer=False
        )
        if node:
            node_version = subprocess.run([node, "--version"], capture_output=True, text=True)
            versions += f", Node.js {node_version.stdout.strip()}"
        intro = (
            f"`{invoked}`; {machine_line()}; {versions}. The C load generator is pinned to core 1, "
            "one-process servers to core 0. All servers run throughout; each case is measured "
            f"in {args.runs} rounds of one run per server, ratios taken within a round; then "
            "each one-process pair a target compares, and a control pair (two copies of one "
            f"server), head to head in {args.runs} rounds."
        )
        filtered = (
            args.sizes != parser.get_default("sizes")
            or args.only
            or (args.connections != parser.get_default("connections"))
        )
        title = "Echo server (bench/echo.py)"
        section = f"{title}: {' '.join(sys.argv[1:])}" if filtered else title
        publish(section, intro, rows, not args.no_record)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
