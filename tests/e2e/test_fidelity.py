"""Real programs from PyPI, packed and run beside the same program installed in a venv: the
same output, byte for byte, and the same exit status, install paths and program name aside.

Each one reads its own package files by path somewhere (ansible its base.yml, IPython its
theme files, django-admin its project template, walked with os.walk), which fails inside a
zip; the builder sees it in their code and extracts them. The versions are pinned so that a
new release cannot change what is compared.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import clean_env, packer_cli, run, write_tree

from packer.dependencies import uv_binary

pytestmark = [pytest.mark.network, pytest.mark.slow]


@dataclass(frozen=True)
class Program:
    spec: str
    script: str

    @property
    def name(self) -> str:
        return re.split(r"[=<>\[]", self.spec)[0]


PROGRAMS = {
    "ansible": Program("ansible==12.3.0", "ansible"),
    "ipython": Program("ipython==9.18.1", "ipython"),
    "django": Program("django==5.2.19", "django-admin"),
    "httpie": Program("httpie==3.2.4", "http"),
    "sqlfluff": Program("sqlfluff==4.5.0", "sqlfluff"),
}

#: A project of the tests' own that reads its files the ways those programs do.
OWN = {
    "pyproject.toml": """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "byfile"
version = "1.0"

[project.scripts]
byfile = "byfile.cli:main"

[tool.setuptools.package-data]
byfile = ["data/*.txt", "templates/**/*"]
""",
    "byfile/__init__.py": "",
    "byfile/cli.py": """
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    with open(os.path.join(HERE, "data", "greeting.txt"), encoding="utf-8") as f:
        print(f.read().strip())
    root = os.path.join(HERE, "templates")
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(folder, name), root)
            print(rel, os.path.getsize(os.path.join(folder, name)))
    return 3 if "--fail" in sys.argv else 0
""",
    "byfile/data/greeting.txt": "hello from a data file\n",
    "byfile/templates/project/settings.txt": "name = {{ name }}\n",
    "byfile/templates/project/app/views.txt": "views of {{ name }}\n",
    "byfile/templates/README.txt": "read me\n",
}


@dataclass
class Pair:
    archive: Path
    venv: Path
    script: str
    cache: Path

    def both(self, *args: str, cwd: Path, **env: str) -> tuple[tuple[int, str], tuple[int, str]]:
        """(status, normalised stdout) from the archive, then from the venv."""
        results = []
        for program, python in ((self.archive, sys.executable), (None, None)):
            command = (
                [python, str(program), *args]
                if program
                else [str(self.venv / "bin" / self.script), *args]
            )
            proc = subprocess.run(
                command, cwd=cwd, capture_output=True, text=True, timeout=300,
                stdin=subprocess.DEVNULL, env=clean_env(PACKER_CACHE=str(self.cache), **env),
                check=False,
            )  # fmt: skip
            results.append((proc.returncode, self.normalise(proc.stdout)))
        return results[0], results[1]

    def normalise(self, text: str) -> str:
        """Install paths and the program's own name aside."""
        site = next((self.venv / "lib").glob("python3.*/site-packages"))
        text = text.replace(str(site), "<site>")
        text = re.sub(re.escape(str(self.cache)) + r"/[\w.+-]+-[0-9a-f]{16}", "<site>", text)
        text = text.replace(str(self.archive), "<program>")
        text = text.replace(str(self.venv / "bin" / self.script), "<program>")
        text = text.replace(str(self.venv / "bin" / "python"), "<python>")
        return text.replace(sys.executable, "<python>")


def _venv(root: Path, name: str, *install: str) -> Path:
    venv = root / f"venv-{name}"
    uv = uv_binary()
    made = run([uv, "venv", "-q", "--python", sys.executable, venv], timeout=300)
    assert made.returncode == 0, made.stderr
    done = run([uv, "pip", "install", "-q", "--python", venv / "bin" / "python", *install],
               timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return venv


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fidelity")


@pytest.fixture(scope="module")
def pairs(root: Path) -> dict[str, Pair]:
    found = {}
    for key, program in PROGRAMS.items():
        out = root / f"{key}.pyz"
        # ansible bundles 23,000 files: 35 s here when the machine is quiet, over a minute
        # when it is not.
        built = packer_cli("build", "-o", out, "--with", program.spec,
                           "--console-script", program.script, "-q", timeout=300)  # fmt: skip
        assert built.returncode == 0, built.stderr
        found[key] = Pair(out, _venv(root, key, program.spec), program.script, root / "cache")
    own = write_tree(root / "byfile", OWN)
    out = root / "byfile.pyz"
    built = packer_cli("build", own, "-o", out, "-q")
    assert built.returncode == 0, built.stderr
    found["own"] = Pair(out, _venv(root, "own", str(own)), "byfile", root / "cache")
    return found


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """Each run in a folder of its own (some programs write there)."""
    return tmp_path


def test_ansible_version(pairs: dict[str, Pair], cwd: Path) -> None:
    ours, theirs = pairs["ansible"].both("--version", cwd=cwd)
    assert ours == theirs and ours[0] == 0
    assert "ansible [core 2.19.14]" in ours[1]


def test_ipython_runs_code(pairs: dict[str, Pair], cwd: Path) -> None:
    ours, theirs = pairs["ipython"].both("-c", "print(1)", cwd=cwd, HOME=str(cwd))
    assert ours == theirs == (0, "1\n")


def test_django_admin_startproject_creates_the_same_files(
    pairs: dict[str, Pair], tmp_path: Path
) -> None:
    made = []
    for side in ("ours", "theirs"):
        dest = tmp_path / side
        dest.mkdir()
        pair = pairs["django"]
        command = (
            [sys.executable, str(pair.archive)]
            if side == "ours"
            else [str(pair.venv / "bin" / "django-admin")]
        )
        env = clean_env(PACKER_CACHE=str(pair.cache))
        proc = run([*command, "startproject", "mysite", dest], cwd=tmp_path, env=env)
        assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr
        files = {
            str(p.relative_to(dest)): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()
        }
        made.append(files)
    assert sorted(made[0]) == sorted(made[1]) and "mysite/settings.py" in made[0]
    for name, data in made[0].items():
        # The one difference: a secret key is drawn at random for every new project.
        secret = rb"SECRET_KEY = '[^']*'"
        assert re.sub(secret, b"", data) == re.sub(secret, b"", made[1][name]), name


def test_httpie_offline(pairs: dict[str, Pair], cwd: Path) -> None:
    args = ("--offline", "--ignore-stdin", "--print=HBhb", "POST", "example.org/api",
            "name=x", "n:=3")  # fmt: skip
    ours, theirs = pairs["httpie"].both(*args, cwd=cwd, HOME=str(cwd))
    assert ours == theirs and ours[0] == 0 and '"name": "x"' in ours[1]


def test_sqlfluff_lint(pairs: dict[str, Pair], cwd: Path) -> None:
    (cwd / "q.sql").write_text("SELECT a+b  FROM tbl\nwhere x=1\n")
    ours, theirs = pairs["sqlfluff"].both("lint", "--dialect", "ansi", "q.sql", cwd=cwd)
    assert ours == theirs and ours[0] == 1 and "LT01" in ours[1]


def test_own_project_reads_files_by_path(pairs: dict[str, Pair], cwd: Path) -> None:
    for args in ((), ("--fail",)):
        ours, theirs = pairs["own"].both(*args, cwd=cwd)
        assert ours == theirs
    assert ours[0] == 3 and ours[1].startswith("hello from a data file\nREADME.txt 8\n")


def test_info_says_what_is_extracted_and_why(pairs: dict[str, Pair]) -> None:
    info = packer_cli("info", pairs["django"].archive).stdout
    line = re.search(r"^extracted: Django 5\.2\.19 \((.+)\)$", info, re.M)
    assert line and "on a path made from __file__ or __path__" in line[1], info
    own = packer_cli("info", pairs["own"].archive).stdout
    assert re.search(r"^extracted: byfile 1\.0 \(byfile/cli\.py: open\(\) ", own, re.M), own
