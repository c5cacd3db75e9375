"""End to end: build real archives and run them in subprocesses, the way a user would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import clean_env, old_interpreters, other_interpreters, packer_cli, run

APP = {
    "pkg/__init__.py": "",
    "pkg/cli.py": (
        "import sys\n\n"
        "def main():\n"
        "    print('callable', sys.argv[1:], sys.argv[0].endswith('.pyz'))\n"
        "    return int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 0\n"
    ),
    "pkg/tool.py": (
        "import sys\n\n"
        "def work():\n    return 'worked'\n\n"
        "if __name__ == '__main__':\n"
        "    print('module', work(), sys.argv[1:], __spec__.name)\n"
    ),
    "runner/__init__.py": "",
    "runner/__main__.py": "import sys\nprint('package main', sys.argv[1:])\n",
}


def build(src: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = packer_cli("build", src, "-o", out, *args)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def app(make_tree: Callable[..., Path]) -> Path:
    return make_tree(APP)


def test_callable_entry_runs_by_shebang_and_with_python(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "app.pyz"
    proc = build(app, out, "-m", "pkg.cli:main")
    assert "app.pyz:" in proc.stdout and "members" in proc.stdout
    assert os.access(out, os.X_OK)
    direct = run([out, "7", "x"], cwd=tmp_path)
    assert direct.returncode == 7, direct.stderr
    assert direct.stdout == "callable ['7', 'x'] True\n"
    with_python = run([sys.executable, out, "a"])
    assert (with_python.returncode, with_python.stdout) == (0, "callable ['a'] True\n")


def test_module_entry_runs_as_python_m_would(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "tool.pyz"
    build(app, out, "-m", "pkg.tool")
    proc = run([out, "arg"])
    assert (proc.returncode, proc.stdout) == (0, "module worked ['arg'] pkg.tool\n"), proc.stderr
    out2 = tmp_path / "runner.pyz"
    build(app, out2, "-m", "runner")
    proc = run([out2, "b"])
    assert (proc.returncode, proc.stdout) == (0, "package main ['b']\n"), proc.stderr


def test_source_main_is_the_default_entry(make_tree: Callable[..., Path], tmp_path: Path) -> None:
    src = make_tree(
        {
            "__main__.py": (
                "import sys\nfrom helper import name\nprint(name, __name__, sys.argv[1:])\n"
            ),
            "helper.py": "name = 'helper'\n",
        }
    )
    out = tmp_path / "main.pyz"
    build(src, out)
    proc = run([out, "z"])
    assert (proc.returncode, proc.stdout) == (0, "helper __main__ ['z']\n"), proc.stderr


def test_exceptions_in_the_app_show_a_normal_traceback(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree({"boom.py": "def main():\n    raise RuntimeError('kaboom')\n"})
    out = tmp_path / "boom.pyz"
    build(src, out, "-m", "boom:main")
    proc = run([out])
    assert proc.returncode == 1
    assert "RuntimeError: kaboom" in proc.stderr
    assert "raise RuntimeError('kaboom')" in proc.stderr, (
        "source line shown from inside the archive"
    )


def test_custom_interpreter_line(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "app.pyz"
    build(app, out, "-m", "pkg.cli:main", "-p", sys.executable)
    assert out.read_bytes().startswith(b"#!" + sys.executable.encode() + b"\n")
    proc = run([out, "3"])
    assert proc.returncode == 3, proc.stderr


def test_no_shebang_gives_a_plain_zip_that_python_runs(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.pyz"
    build(app, out, "-m", "pkg.cli:main", "--no-shebang")
    assert out.read_bytes()[:4] == b"PK\x03\x04"
    assert not os.access(out, os.X_OK)
    proc = run([sys.executable, out])
    assert proc.returncode == 0, proc.stderr


# Imports pkg.cli from inside the archive and prints every file the interpreter compiled.
_WATCH_COMPILES = (
    "import sys\n"
    "compiled = []\n"
    "sys.addaudithook(lambda event, args: compiled.append(str(args[1])) if event == 'compile' "
    "else None)\n"
    "import pkg.cli\n"
    "print([name for name in compiled if 'pkg' in name])\n"
)


def test_bytecode_is_used_not_recompiled(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "app.pyz"
    build(app, out, "-m", "pkg.cli:main")
    proc = run([out, "-c", _WATCH_COMPILES], env=clean_env(PACKER_INTERPRETER="1"))
    assert (proc.returncode, proc.stdout) == (0, "[]\n"), proc.stderr
    # The same check sees compiling when there is no bytecode to use (and no cache yet).
    bare = tmp_path / "bare.pyz"
    build(app, bare, "-m", "pkg.cli:main", "--no-compile")
    env = clean_env(PACKER_INTERPRETER="1", PACKER_CACHE=str(tmp_path / "cache"))
    proc = run([bare, "-c", _WATCH_COMPILES], env=env)
    assert proc.returncode == 0 and "pkg/cli.py" in proc.stdout, proc.stdout + proc.stderr


def test_requires_python_refusal_is_one_clear_line(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "future.pyz"
    build(app, out, "-m", "pkg.cli:main", "--requires-python", ">=3.99")
    proc = run([out])
    assert proc.returncode == 1
    # The interpreter the shebang finds, as it reports itself.
    probe = "import sys; print(sys.version.split()[0], sys.executable)"
    version, executable = run(["/usr/bin/env", "python3", "-c", probe]).stdout.split()
    assert proc.stderr == (
        f"future.pyz: requires Python >=3.99, but this is Python {version} ({executable})\n"
    )
    assert proc.stdout == ""


def test_runs_on_every_other_python(app: Path, tmp_path: Path) -> None:
    interpreters = other_interpreters()
    if not interpreters:
        pytest.skip("no other CPython 3.9+ on this machine")
    out = tmp_path / "app.pyz"
    build(app, out, "-m", "pkg.cli:main")
    for python, version in interpreters:
        cache = str(tmp_path / f"cache-{version[0]}.{version[1]}")
        # Another interpreter cannot use this one's bytecode: it compiles the source at the
        # first start and keeps that in the cache for the next ones.
        watch = clean_env(PACKER_INTERPRETER="1", PACKER_CACHE=cache)
        proc = run([python, out, "-c", _WATCH_COMPILES], env=watch)
        assert proc.returncode == 0 and "pkg/cli.py" in proc.stdout, (version, proc.stderr)
        proc = run([python, out, "-c", _WATCH_COMPILES], env=watch)
        assert (proc.returncode, proc.stdout) == (0, "[]\n"), (version, proc.stderr)
        proc = run([python, out, "5"], env=clean_env(PACKER_CACHE=cache))
        assert (proc.returncode, proc.stdout) == (5, "callable ['5'] True\n"), (
            version,
            proc.stderr,
        )


def test_the_runtime_floor_refuses_python_38_in_one_line(app: Path, tmp_path: Path) -> None:
    # 3.8 is the oldest zipimport that opens a zip with a comment: older ones never reach the
    # stub (docs/format.md, "Stub").
    older = [p for p in old_interpreters() if "/3.8." in p]
    assert older, "pyenv's CPython 3.8 is needed to check the runtime floor"
    out = tmp_path / "app.pyz"
    build(app, out, "-m", "pkg.cli:main")
    proc = run([older[0], out])
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith(
        "app.pyz: requires Python >=3.9 (packer's runtime), but this is Python 3.8."
    ), proc.stderr
    assert proc.stderr.count("\n") == 1


def test_requires_python_refuses_older_interpreters_in_one_line(app: Path, tmp_path: Path) -> None:
    interpreters = [(p, v) for p, v in other_interpreters() if v < (3, 11)]
    if not interpreters:
        pytest.skip("no CPython 3.9/3.10 on this machine")
    out = tmp_path / "new.pyz"
    build(app, out, "-m", "pkg.cli:main", "--requires-python", ">=3.11")
    for python, version in interpreters:
        proc = run([python, out])
        assert proc.returncode == 1
        assert proc.stderr.startswith("new.pyz: requires Python >=3.11, but this is Python 3."), (
            version
        )
        assert "Traceback" not in proc.stderr


def test_archive_lists_cleanly_with_unzip_and_zipfile(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "app.pyz"
    build(app, out, "-m", "pkg.cli:main")
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
    if shutil.which("unzip") is None:
        pytest.skip("unzip is not installed")
    listing = run(["unzip", "-l", out])
    assert listing.returncode == 0, listing.stderr
    for name in names:
        assert name in listing.stdout
    tested = run(["unzip", "-t", out])
    assert tested.returncode == 0
    assert "No errors detected" in tested.stdout
    assert "extra bytes" not in tested.stdout + tested.stderr


def test_disk_full_mid_write_leaves_no_output_and_keeps_the_old_one(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree({**APP, "blob.bin": os.urandom(2_000_000)})
    out = tmp_path / "out" / "app.pyz"
    out.parent.mkdir()
    out.write_bytes(b"previous build")
    # A real write failure: the file size limit makes writes past 200 kB fail with EFBIG.
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
        "from packer.cli import main\n"
        "main(['build', sys.argv[1], '-o', sys.argv[2], '-m', 'pkg.cli:main'])\n"
    )
    from helpers import REPO

    proc = run([sys.executable, "-c", code, src, out], env=clean_env(PYTHONPATH=str(REPO)))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"packer: {out}: cannot write: File too large")
    assert "Traceback" not in proc.stderr
    assert out.read_bytes() == b"previous build"
    assert sorted(p.name for p in out.parent.iterdir()) == ["app.pyz"]


def _slow_tree(make_tree: Callable[..., Path]) -> Path:
    """40 MB of hex text: compressible, and slow to deflate at level 9, so a build takes a
    while and uses worker processes."""
    files: dict[str, str | bytes] = {"main.py": "print('x')\n"}
    for i in range(40):
        files[f"data/blob{i}.txt"] = os.urandom(500_000).hex()
    return make_tree(files)


@pytest.mark.slow
def test_ctrl_c_mid_build_leaves_nothing_behind(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = _slow_tree(make_tree)
    out = tmp_path / "out" / "app.pyz"
    out.parent.mkdir()
    out.write_bytes(b"previous build")
    from helpers import REPO

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "packer",
            "build",
            str(src),
            "-o",
            str(out),
            "-m",
            "main",
            "--compression-level",
            "9",
        ],
        env=clean_env(PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background jobs inherit SIGINT ignored; a user's terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        # Wait for the temporary file to appear: the build is then writing.
        while not any(p.name.endswith(".tmp") for p in out.parent.iterdir()):
            assert proc.poll() is None, "build finished before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert out.read_bytes() == b"previous build"
    assert sorted(p.name for p in out.parent.iterdir()) == ["app.pyz"]


@pytest.mark.slow
def test_progress_bar_on_a_terminal_only(make_tree: Callable[..., Path], tmp_path: Path) -> None:
    import pty

    files: dict[str, str | bytes] = {"main.py": "print('x')\n"}
    for i in range(30):
        files[f"data/blob{i}.bin"] = os.urandom(1_000_000)
    src = make_tree(files)
    from helpers import REPO

    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "packer", "build", src, "-o", tmp_path / "a.pyz", "-m", "main",
             "--compression-level", "9", "-j", "1"],
            env=clean_env(PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, stderr=secondary,
            timeout=120, check=False,
        )  # fmt: skip
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    terminal = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "[#" in terminal and " members" in terminal, terminal
    assert "members" in proc.stdout.decode()


@pytest.mark.slow
def test_killed_build_leaves_no_worker_processes(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = _slow_tree(make_tree)
    out = tmp_path / "out"
    out.mkdir()
    from helpers import REPO

    proc = subprocess.Popen(
        [sys.executable, "-m", "packer", "build", str(src), "-o", str(out / "app.pyz"),
         "-m", "main", "--compression-level", "9"],
        env=clean_env(PYTHONPATH=str(REPO)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        # Wait until the build is writing and has started its workers.
        while not (any(p.name.endswith(".tmp") for p in out.iterdir()) and _children(proc.pid)):
            assert proc.poll() is None, "a build this size runs long enough to be killed"
            assert time.monotonic() < deadline, "a build this size uses worker processes"
            time.sleep(0.005)
        children = _children(proc.pid)
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(os.path.exists(f"/proc/{pid}") and _ppid(pid) != proc.pid for pid in children):
            assert time.monotonic() < deadline, "workers outlived the killed build"
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ppid(int(entry)) == pid:
            found.append(int(entry))
    return found


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fp:
            return int(fp.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
