"""``PACKER_INTERPRETER=1 ./app.pyz ...``: the archive as a Python, the way cluster engines
run one (Spark's executors run ``<python> -m pyspark.daemon`` and read a port from its
stdout, with their own zips in PYTHONPATH)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import clean_env, packer_cli, run, write_tree
from wheels import GREET_FILES, build_offline

APP = {
    "tool/__init__.py": "",
    "tool/cli.py": "def main():\n    print('the application ran')\n",
    "tool/echo.py": "import sys\nprint('echo', sys.argv[1:])\n",
}


GREET = ("greet", "1.0", GREET_FILES, "")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interpreter")
    return build_offline(root, APP, [GREET], "-m", "tool.cli:main")


def interpret(app: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(app), *args], input=stdin, capture_output=True, text=True, timeout=60,
        env=clean_env(PACKER_INTERPRETER="1", **env), check=False,
    )  # fmt: skip


def test_c_m_and_stdin_print_only_what_the_code_prints(app: Path) -> None:
    code = "import sys, greet; print(greet.hello(), sys.argv)"
    assert interpret(app, "-c", code, "a", "b").stdout == "hello from greet ['-c', 'a', 'b']\n"
    assert interpret(app, f"-c{code}").stdout == "hello from greet ['-c']\n"
    ran = interpret(app, "-m", "tool.echo", "x", "-y")
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "echo ['x', '-y']\n", "")
    assert interpret(app, "-mtool.echo").stdout == "echo []\n"
    ran = interpret(app, "-", "z", stdin="import sys, greet; print(sys.argv, greet.hello())\n")
    assert (ran.returncode, ran.stdout) == (0, "['-', 'z'] hello from greet\n")
    script = write_tree(app.parent / "scripts", {"s.py": "import greet, sys; print(sys.argv)\n"})
    assert interpret(app, str(script / "s.py"), "q").stdout == f"[{str(script / 's.py')!r}, 'q']\n"


def test_pythonpath_zips_import_as_sparks_own_do(app: Path, tmp_path: Path) -> None:
    lib = tmp_path / "enginelib.zip"
    with zipfile.ZipFile(lib, "w") as zf:
        zf.writestr("enginelib/__init__.py", "NAME = 'engine'\n")
        zf.writestr("enginelib/daemon.py", "import greet\nprint('daemon', greet.hello())\n")
    ran = interpret(app, "-m", "enginelib.daemon", PYTHONPATH=str(lib))
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "daemon hello from greet\n", "")


def test_u_leaves_nothing_in_a_buffer(app: Path) -> None:
    """The line is readable while the process still runs (it never flushes); without -u a
    pipe holds it in the process's buffer."""
    code = "import sys, time; sys.stdout.write('ready\\n'); time.sleep(60)"
    for flags, readable in ((["-u"], True), ([], False)):
        with subprocess.Popen(
            [str(app), *flags, "-c", code], stdout=subprocess.PIPE,
            env=clean_env(PACKER_INTERPRETER="1"),
        ) as proc:  # fmt: skip
            try:
                assert proc.stdout is not None
                ready, _, _ = select.select([proc.stdout], [], [], 20 if readable else 1)
                assert bool(ready) == readable, (flags, proc.poll())
                if readable:
                    assert proc.stdout.readline() == b"ready\n"
            finally:
                proc.kill()


def test_the_interpreters_own_flags(app: Path) -> None:
    code = "import sys; print(sys.flags.optimize, sys.flags.dev_mode, sys.dont_write_bytecode)"
    assert interpret(app, "-c", code).stdout == "0 False False\n"
    assert interpret(app, "-B", "-c", code).stdout == "0 False True\n"  # applied in process
    assert interpret(app, "-uB", "-c", code).stdout == "0 False True\n"
    assert interpret(app, "-O", "-B", "-c", code).stdout == "1 False True\n"  # by a restart
    assert interpret(app, "-OO", "-X", "dev", "-c", code).stdout == "2 True False\n"
    warned = interpret(app, "-W", "error", "-c", "import warnings; warnings.warn('w')")
    assert warned.returncode == 1 and warned.stderr.strip().endswith("UserWarning: w")
    assert interpret(app, "-V").stdout == f"Python {sys.version.split()[0]}\n"
    assert interpret(app, "-E", "-s", "-c", "print('ok')").stdout == "ok\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-Z"], "app.pyz: unknown option -Z"),
        (["--bogus", "-c", "print(1)"], "app.pyz: unknown option --bogus"),
        (["-uZ"], "app.pyz: unknown option -Z"),
        (["-c"], "app.pyz: -c needs an argument"),
        (["-m"], "app.pyz: -m needs a module name"),
        (["-m", "nothere"], "app.pyz: No module named nothere"),
        (["-m", "tool"], "app.pyz: No module named tool.__main__; 'tool' is a package and "
                         "cannot be directly executed"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_on_stderr(app: Path, args: list[str], message: str) -> None:
    ran = interpret(app, *args)
    assert ran.returncode != 0 and ran.stdout == ""
    assert ran.stderr.splitlines()[0] == message and "Traceback" not in ran.stderr


def test_forked_children_import_from_the_archive(app: Path) -> None:
    """pyspark.daemon forks its workers: what they import comes from the archive too."""
    code = (
        "import os, sys\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    import greet\n"
        "    sys.stdout.write('child ' + greet.hello() + '\\n'); sys.stdout.flush(); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print('parent')\n"
    )
    ran = interpret(app, "-c", code)
    assert (ran.returncode, ran.stdout) == (0, "child hello from greet\nparent\n"), ran.stderr


def test_without_the_variable_the_application_runs(app: Path) -> None:
    ran = run([app, "-c", "print(1)"], env=clean_env())
    assert ran.stdout == "the application ran\n"
    assert os.access(app, os.X_OK)


def test_an_archive_built_as_an_interpreter_needs_no_variable(tmp_path: Path) -> None:
    out = build_offline(tmp_path, APP, [GREET], "--interpreter", out="env.pyz")
    src = tmp_path / "src"
    ran = run([out, "-m", "tool.echo", "x"], env=clean_env())
    assert (ran.returncode, ran.stdout) == (0, "echo ['x']\n"), ran.stderr
    ran = subprocess.run([str(out)], input="import greet; print(greet.hello())\n", text=True,
                         capture_output=True, env=clean_env(), check=False)  # fmt: skip
    assert ran.stdout == "hello from greet\n"
    info = packer_cli("info", out).stdout
    assert "entry point: none: a Python in the archive's environment (--interpreter)" in info
    refused = packer_cli("build", src, "-o", tmp_path / "no.pyz", "--interpreter",
                         "-m", "tool.cli:main")  # fmt: skip
    assert refused.returncode == 1 and refused.stderr == (
        "packer: --interpreter builds an archive without an entry point; drop the entry point "
        "(tool.cli:main)\n"
    )
    assert not (tmp_path / "no.pyz").exists()
