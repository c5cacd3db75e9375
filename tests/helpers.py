"""Helpers for the tests: generate trees, run archives and the CLI in subprocesses."""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

Tree = Mapping[str, "str | bytes"]


def write_tree(root: Path, files: Tree) -> Path:
    """Create *files* (relative name -> text or bytes) under *root*; return *root*."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for running an archive: no PYTHONPATH, nothing of packer's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PACKER_"))}
    env.update(extra)
    return env


def run(
    args: list[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [os.fspath(a) for a in args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def packer_cli(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    timeout: float = 60,
    **env_extra: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m packer`` from this checkout in a subprocess."""
    env = clean_env(PYTHONPATH=str(REPO), **env_extra)
    return run([sys.executable, "-m", "packer", *args], cwd=cwd, env=env, timeout=timeout)


@functools.cache
def other_interpreters() -> tuple[tuple[str, tuple[int, int]], ...]:
    """Every CPython 3.9+ on the machine other than this one, as (path, (major, minor)).

    pyenv keeps them in its versions folder (its python3.X shims run only the global version,
    so the binaries are called by path); the system's own /usr/bin/python3.X count too.
    """
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    candidates = set(glob.glob("/usr/bin/python3.*[0-9]"))
    for root in filter(None, roots):
        candidates.update(glob.glob(os.path.join(root, "versions", "*", "bin", "python3")))
    found: dict[tuple[int, int], str] = {}
    mine = os.path.realpath(sys.executable)
    for path in sorted(candidates):
        if os.path.realpath(path) == mine:
            continue
        try:
            out = subprocess.run(
                [
                    path,
                    "-I",
                    "-c",
                    "import sys, platform;"
                    "print(platform.python_implementation(), *sys.version_info[:2])",
                ],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            ).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if len(out) == 3 and out[0] == "CPython":
            version = (int(out[1]), int(out[2]))
            if version >= (3, 9) and version != sys.version_info[:2]:
                found.setdefault(version, path)
    return tuple((path, version) for version, path in sorted(found.items()))


@functools.cache
def old_interpreters() -> tuple[str, ...]:
    """Interpreters older than 3.9 (pyenv), for the wrong-interpreter message."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    return tuple(sorted(glob.glob(os.path.join(root, "versions", "3.[5-8].*", "bin", "python3"))))


def as_unprivileged(command: list[str | os.PathLike[str]]) -> list[str | os.PathLike[str]]:
    """*command*, run without root's power to read and write anywhere (when the tests run
    as root), as an ordinary user lacks it."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test unreadable or unwritable files as root"
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *command]


def cli(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
    """``packer ARGS`` in this process (click's runner): exit status, stdout, stderr."""
    from click.testing import CliRunner

    from packer.cli import main

    result = CliRunner().invoke(main, [os.fspath(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@dataclass(frozen=True)
class QuickStart:
    """What the README's first Quick start command did in a scratch checkout folder."""

    folder: Path  # holds build.py and examples/ (links into the checkout) and the app.pyz built
    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def app(self) -> Path:
        return self.folder / "app.pyz"


def readme_env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment the README's commands are run in: packer and this interpreter first
    on PATH (as in the venv the README makes), the server's pid file inside *folder*."""
    return clean_env(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        SAMPLE_SERVER_PID_FILE=str(folder / "server.pid"),
        **extra,
    )


def readme_section(title: str) -> str:
    """The README's section headed ``## {title}``, up to the next such heading."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def sh_blocks(section: str) -> list[str]:
    """The ``sh`` code blocks of a README section."""
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
