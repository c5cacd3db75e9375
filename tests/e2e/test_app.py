"""app.pyz, as build.py makes it: the server's commands, the packed test suite, other Pythons."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, QuickStart, as_unprivileged, clean_env, other_interpreters, run

#: Every CPython 3.10+ here other than this one (app.pyz needs pytest 9, which needs 3.10).
PYTHONS = [(path, version) for path, version in other_interpreters() if version >= (3, 10)]


@functools.cache
def collected_in_checkout() -> int:
    """How many tests the checkout's own sample_server suite has."""
    proc = run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "sample_server/tests"],
        cwd=REPO, env=clean_env(PYTHONPATH=str(REPO)),
    )  # fmt: skip
    match = re.search(r"^(\d+) tests? collected", proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    return int(match[1])


def passed(output: str) -> int:
    last = output.strip().splitlines()[-1]
    match = re.match(r"(\d+) passed\b", last)  # "failed" or "error" would come first
    assert match, output[-3000:]
    return int(match[1])


def test_server_commands_from_any_directory(quick_start: QuickStart, tmp_path: Path) -> None:
    app = quick_start.app
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pid_file = tmp_path / "run" / "server.pid"
    (tmp_path / "run").mkdir()
    env = clean_env(SAMPLE_SERVER_PID_FILE=str(pid_file))
    try:
        started = run([app, "start", "-d", "--port", "0", "--workers", "1"], cwd=elsewhere, env=env)
        assert started.returncode == 0, started.stderr
        pid = int(re.fullmatch(r"listening on 127\.0\.0\.1:\d+ \(pid (\d+)\)\n", started.stdout)[1])  # type: ignore[index]
        # By the shebang and with the interpreter named, from another folder each time.
        status = run([sys.executable, app, "status", "--json"], cwd=tmp_path, env=env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["pid"] == pid
        again = run([app, "start", "-d", "--port", "0"], cwd=elsewhere, env=env)
        assert (again.returncode, again.stderr) == (
            1,
            f"sample-server: already running (pid {pid})\n",
        )
        restarted = run([app, "restart"], cwd=elsewhere, env=env)
        assert restarted.returncode == 0, restarted.stderr
        assert restarted.stdout.startswith(f"stopped (pid {pid})\nlistening on 127.0.0.1:")
        stopped = run([sys.executable, app, "stop", "-g"], cwd=elsewhere, env=env)
        assert stopped.returncode == 0 and stopped.stdout.startswith("stopped (pid ")
    finally:
        run([app, "stop", "--timeout", "10"], env=env)
    assert run([app, "status"], env=env).returncode == 3
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # nothing written where it ran


def test_packed_suite_needs_nothing_but_the_archive(
    quick_start: QuickStart, tmp_path: Path
) -> None:
    """A bare interpreter (no pytest, no packer, no sample_server), a read-only HOME, and a
    pytest plugin installed on the host that must not be loaded."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    site = Path(
        run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    )
    marker = tmp_path / "host-plugin-was-loaded"
    (site / "host_plugin.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    info = site / "host_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: host-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\nhost = host_plugin\n")
    assert run([python, "-c", "import pytest"]).returncode == 1  # nothing else to fall back on
    home = tmp_path / "home"
    home.mkdir(mode=0o555)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = clean_env(HOME=str(home))
    env.pop("XDG_CACHE_HOME", None)
    try:
        proc = run(
            as_unprivileged([python, quick_start.app, "test", "-q"]), cwd=cwd, env=env, timeout=900
        )
    finally:
        home.chmod(0o755)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert passed(proc.stdout) == collected_in_checkout()
    assert not marker.exists()
    assert list(cwd.iterdir()) == [] and list(home.iterdir()) == []  # no .pytest_cache, no cache


@pytest.mark.network  # build.py fetches its pinned wheels
@pytest.mark.slow
def test_packed_suite_fails_when_a_packed_test_fails(tmp_path: Path) -> None:
    """A build of a copy of the checkout with one failing test added (and --no-uvloop)."""
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("packer", "sample_server"):
        shutil.copytree(REPO / part, copy / part, ignore=ignore)
    shutil.copy(REPO / "build.py", copy / "build.py")
    (copy / "sample_server" / "tests" / "test_deliberately_broken.py").write_text(
        "def test_deliberately_broken():\n    assert 1 + 1 == 3\n"
    )
    built = run(
        [sys.executable, "build.py", "--no-uvloop", "-q"], cwd=copy, env=clean_env(), timeout=900
    )
    assert built.returncode == 0, built.stderr
    app = copy / "app.pyz"
    info = run([sys.executable, "-m", "packer", "info", app], env=clean_env(PYTHONPATH=str(REPO)))
    assert "uvloop" not in info.stdout and "pytest" in info.stdout
    proc = run(
        [app, "test", "-q", "-k", "deliberately or protocol or both_event"],
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert re.match(r"1 failed, \d+ passed", last), last
    assert "test_deliberately_broken" in proc.stdout


@pytest.mark.parametrize(
    "python", [p for p, _ in PYTHONS], ids=[f"{v[0]}.{v[1]}" for _, v in PYTHONS]
)
def test_app_runs_on_other_pythons(quick_start: QuickStart, tmp_path: Path, python: str) -> None:
    app = quick_start.app
    env = clean_env(SAMPLE_SERVER_PID_FILE=str(tmp_path / "server.pid"))
    try:
        started = run([python, app, "start", "-d", "--port", "0", "--workers", "1"], env=env)
        assert started.returncode == 0, started.stderr
        status = json.loads(run([python, app, "status", "--json"], env=env).stdout)
        assert status["workers"][0]["loop"] in ("asyncio", "uvloop")
    finally:
        assert run([python, app, "stop", "--timeout", "10"], env=env).returncode == 0
    echoed = run([python, REPO / "examples" / "echo_from_archive.py", app], cwd=tmp_path)
    assert echoed.stdout.startswith("echoed 'hello from app.pyz' on "), echoed.stderr
    proc = run([python, app, "test", "-q"], cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert passed(proc.stdout) == collected_in_checkout()


def test_sample_server_test_command_from_the_checkout(tmp_path: Path) -> None:
    """Not from an archive: the same command runs the suite where the package is."""
    env = clean_env(PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "sample_server", "test", "-q"]
    proc = run([*command, "-k", "protocol and nodelay"], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert passed(proc.stdout) >= 1
    one = "sample_server/tests/test_protocol.py::test_idle_connections_close"
    proc = run([*command, one], cwd=tmp_path, env=env)
    assert (proc.returncode, passed(proc.stdout)) == (0, 1), proc.stdout + proc.stderr
    proc = run([*command, "-k", "no_such_test_anywhere"], cwd=tmp_path, env=env)
    assert proc.returncode == 5, proc.stdout  # pytest's "nothing collected", passed on
    assert list(tmp_path.iterdir()) == []


def test_build_py_on_an_older_python_says_so_in_one_line(tmp_path: Path) -> None:
    older = [path for path, version in other_interpreters() if version < (3, 11)]
    assert older, "this machine has no CPython older than 3.11 to try"
    for python in older:
        proc = run([python, REPO / "build.py", "-o", tmp_path / "app.pyz"], cwd=tmp_path)
        assert proc.returncode == 1 and proc.stdout == "", proc.stderr
        assert proc.stderr.startswith("build.py: needs Python 3.11 or newer; this is Python 3.")
        assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "app.pyz").exists()


@pytest.mark.network  # click, pytest and uvloop come from PyPI
@pytest.mark.slow
def test_sample_server_installs_as_its_own_distribution_and_tests_itself(tmp_path: Path) -> None:
    """The wheel of sample_server/ (built from a copy, so no build leftovers land in the
    checkout) in a fresh venv: ``sample-server test`` runs the whole suite from there."""
    source = tmp_path / "src"
    shutil.copytree(REPO / "sample_server", source, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    built = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source],
                env=clean_env(), timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("sample_server-*.whl")
    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", venv]).returncode == 0
    installed = run([venv / "bin" / "python", "-m", "pip", "install", "-q",
                     f"{wheel}[test,uvloop]"], env=clean_env(), timeout=600)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    listed = run([venv / "bin" / "python", "-m", "pip", "list", "--format=json"])
    names = {d["name"].lower() for d in json.loads(listed.stdout)}
    assert "sample-server" in names and not {"packer", "packer-pyz"} & names
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run([venv / "bin" / "sample-server", "test", "-q"], cwd=elsewhere, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert passed(proc.stdout) == collected_in_checkout()
    assert list(elsewhere.iterdir()) == []


@pytest.mark.slow
def test_the_packed_suite_passes_on_every_target_python_with_uvloop(
    quick_start: QuickStart, tmp_path: Path
) -> None:
    """build.py builds for CPython 3.10 to 3.13: under each one installed here (other than
    this one, which the test above covers), the whole packed suite passes and uvloop loads."""
    pythons = {v: p for p, v in other_interpreters() if (3, 10) <= v <= (3, 13)}
    assert len(pythons) >= 2, f"too few of CPython 3.10 to 3.13 here: {sorted(pythons)}"
    expected = collected_in_checkout()
    for version, python in sorted(pythons.items()):
        where = tmp_path / f"cp{version[0]}{version[1]}"
        where.mkdir()
        loop = run([python, quick_start.app, "-c", "import uvloop; print(uvloop.__file__)"],
                   cwd=where, env=clean_env(PACKER_INTERPRETER="1"))  # fmt: skip
        assert loop.returncode == 0 and "/uvloop/" in loop.stdout, (version, loop.stderr)
        proc = run([python, quick_start.app, "test", "-q"], cwd=where, timeout=900)
        assert proc.returncode == 0, (version, proc.stdout[-3000:] + proc.stderr[-3000:])
        assert passed(proc.stdout) == expected, version
        assert list(where.iterdir()) == []


@pytest.mark.network  # build.py fetches its pinned wheels (and uv, into each fresh venv)
@pytest.mark.slow
def test_two_checkouts_with_their_own_venvs_build_identical_bytes(tmp_path: Path) -> None:
    """The Quick start in two folders of different depths, each run by its own fresh venv
    and with its own empty build cache: nothing of where the builder lives reaches the
    archive, and two fresh builds (compiling for every target Python) agree byte for byte."""
    tracked = run(["git", "ls-files", "packer", "sample_server", "build.py", "examples"],
                  cwd=REPO).stdout.split()  # fmt: skip
    assert "build.py" in tracked
    built = []
    for checkout in (tmp_path / "one", tmp_path / "somewhere" / "much" / "deeper" / "two"):
        for name in tracked:
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, checkout / name)
        venv = checkout / ".venv"
        made = run([sys.executable, "-m", "venv", venv], timeout=300)
        assert made.returncode == 0, made.stderr
        cold = clean_env(PACKER_BUILD_CACHE=str(checkout / "build-cache"))
        proc = run([venv / "bin" / "python", "build.py", "-q"], cwd=checkout, env=cold,
                   timeout=900)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        built.append(checkout / "app.pyz")
    diff = run(
        [sys.executable, "-m", "packer", "diff", *built], env=clean_env(PYTHONPATH=str(REPO))
    )
    assert (diff.returncode, diff.stdout) == (0, "identical\n"), diff.stdout
    assert built[0].read_bytes() == built[1].read_bytes()
