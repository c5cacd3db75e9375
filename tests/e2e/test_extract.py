"""Which bundled distributions run extracted from the cache, decided by their code, with the
user's last word both ways (``--extract``, ``--no-extract``, ``--extract-all``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from helpers import clean_env, packer_cli, run, write_tree
from wheels import FASTC, GREET_FILES, make_wheel

BYPATH = {
    "bypath/__init__.py": (
        "import os\n"
        "HERE = os.path.dirname(__file__)\n"
        "def table():\n"
        "    with open(os.path.join(HERE, 'table.txt')) as f:\n"
        "        return f.read().strip()\n"
    ),
    "bypath/table.txt": "a table read by path\n",
}
APP = {
    "app/__init__.py": "",
    "app/cli.py": (
        "import importlib.metadata, sys\n"
        "def main():\n"
        "    import bypath, greet\n"
        "    print(bypath.table(), greet.hello(), importlib.metadata.version('bypath'))\n"
        "    print(bypath.__file__)\n"
    ),
}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    house = tmp_path_factory.mktemp("wheels")
    make_wheel(house, "bypath", "2.0", BYPATH)
    make_wheel(house, "greet", "1.0", GREET_FILES)
    make_wheel(house, *FASTC[:3])
    return house


def build(
    tmp_path: Path, wheels: Path, *extra: str, name: str = "app.pyz", files: dict = APP
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    src = write_tree(tmp_path / "src", files)
    out = tmp_path / name
    withs = ["--with", "bypath", "--with", "greet", "--no-index", "--find-links", str(wheels)]
    proc = packer_cli("build", src, "-o", out, "-m", "app.cli:main", *withs, "-q", *extra)
    return out, proc


def extracted(out: Path) -> list[str]:
    info = packer_cli("info", out)
    assert info.returncode == 0, info.stderr
    return re.findall(r"^extracted: (\S+ \S+) \((.+)\)$", info.stdout, re.M)


def test_code_that_reads_its_files_by_path_runs_extracted(tmp_path: Path, wheels: Path) -> None:
    out, proc = build(tmp_path, wheels, "--compile")
    assert proc.returncode == 0, proc.stderr
    assert extracted(out) == [
        ("bypath 2.0", "bypath/__init__.py: open() on a path made from __file__ or __path__")
    ]
    cache = tmp_path / "cache"
    code = (
        "import sys\n"
        "compiled = []\n"
        "sys.addaudithook(lambda e, a: compiled.append(str(a[1])) if e == 'compile' else None)\n"
        "from app.cli import main; main()\n"
        "print([n for n in compiled if n.endswith('.py')])\n"
    )
    ran = run([out, "-c", code], env=clean_env(PACKER_CACHE=str(cache), PACKER_INTERPRETER="1"))
    lines = ran.stdout.splitlines()
    assert ran.returncode == 0, ran.stderr
    assert lines[0] == "a table read by path hello from greet 2.0"
    assert lines[1].startswith(str(cache)) and lines[1].endswith("/bypath/__init__.py")
    assert lines[2] == "[]"  # its bytecode came with it: nothing compiled at the first run


def test_an_extracted_distribution_compiles_once(tmp_path: Path, wheels: Path) -> None:
    # Without stored bytecode, what runs extracted compiles at its first import and keeps
    # it in its cache entry, PYTHONDONTWRITEBYTECODE or not: the entry is no source tree.
    out, proc = build(tmp_path, wheels)
    assert proc.returncode == 0, proc.stderr
    code = (
        "import sys\n"
        "compiled = []\n"
        "sys.addaudithook(lambda e, a: compiled.append(str(a[1])) if e == 'compile' else None)\n"
        "from app.cli import main; main()\n"
        "print(sorted(n.rsplit('/', 2)[-2] + '/' + n.rsplit('/', 1)[-1] for n in compiled"
        " if n.endswith('.py')))\n"
    )
    env = clean_env(PACKER_CACHE=str(tmp_path / "cache"), PACKER_INTERPRETER="1",
                    PYTHONDONTWRITEBYTECODE="1")  # fmt: skip
    first = run([out, "-c", code], env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == str(
        ["app/__init__.py", "app/cli.py", "bypath/__init__.py", "greet/__init__.py"]
    )
    again = run([out, "-c", code], env=env)
    assert (again.returncode, again.stdout.splitlines()[-1]) == (0, "[]"), again.stderr
    assert list((tmp_path / "cache").rglob("bypath/__pycache__/__init__.*.pyc"))
    # And --verify-on-start takes that bytecode for what it is, not a changed entry.
    checked = run([out, "-c", code], env={**env, "PACKER_VERIFY": "1"})
    assert (checked.returncode, checked.stdout.splitlines()[-1]) == (0, "[]"), checked.stderr
    assert "extracting it again" not in checked.stderr


def test_no_extract_leaves_it_in_the_zip_where_it_fails(tmp_path: Path, wheels: Path) -> None:
    out, proc = build(tmp_path, wheels, "--no-extract", "BYPATH")
    assert proc.returncode == 0, proc.stderr
    assert extracted(out) == []
    ran = run([out], env=clean_env(PACKER_CACHE=str(tmp_path / "cache")))
    assert ran.returncode == 1 and "NotADirectoryError" in ran.stderr


def test_extract_and_extract_all_take_more(tmp_path: Path, wheels: Path) -> None:
    out, proc = build(tmp_path, wheels, "--extract", "greet", name="one.pyz")
    assert proc.returncode == 0, proc.stderr
    assert [name for name, _ in extracted(out)] == ["bypath 2.0", "greet 1.0"]
    assert dict(extracted(out))["greet 1.0"] == "--extract"
    out, proc = build(tmp_path, wheels, "--extract-all", name="all.pyz")
    assert proc.returncode == 0, proc.stderr
    assert dict(extracted(out)) == {"bypath 2.0": "--extract-all", "greet 1.0": "--extract-all"}
    ran = run([out], env=clean_env(PACKER_CACHE=str(tmp_path / "cache")))
    assert ran.returncode == 0 and ran.stdout.startswith("a table read by path"), ran.stderr


def test_the_project_file_says_it_too(tmp_path: Path, wheels: Path) -> None:
    files = {**APP, "pyproject.toml": '[tool.packer]\nextract = ["greet"]\nno-extract = []\n'}
    out, proc = build(tmp_path, wheels, "--no-project", files=files)
    assert proc.returncode == 0, proc.stderr
    assert [name for name, _ in extracted(out)] == ["bypath 2.0", "greet 1.0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--extract", "nosuch"],
         "packer: --extract nosuch: no bundled distribution has that name"),
        (["--no-extract", "nosuch"],
         "packer: --no-extract nosuch: no bundled distribution has that name"),
        (["--extract", "greet", "--no-extract", "Greet"],
         "packer: greet: given to both --extract and --no-extract"),
        (["--with", "fastc", "--no-extract", "fastc"],
         "packer: --no-extract fastc: it has native code, which cannot load from a zip"),
    ],
)  # fmt: skip
def test_bad_names_are_one_line_and_write_nothing(
    tmp_path: Path, wheels: Path, args: list[str], message: str
) -> None:
    out, proc = build(tmp_path, wheels, *args)
    assert proc.returncode != 0 and proc.stderr == message + "\n"
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_a_folder_that_reads_its_own_files_by_path_is_warned_about(tmp_path: Path) -> None:
    files = {
        "tool/__init__.py": BYPATH["bypath/__init__.py"],
        "tool/table.txt": "t\n",
        "tool/cli.py": "def main():\n    from tool import table\n    print(table())\n",
    }
    src = write_tree(tmp_path / "src", files)
    out = tmp_path / "tool.pyz"
    proc = packer_cli("build", src, "-o", out, "-m", "tool.cli:main", "-q")
    assert proc.returncode == 0 and out.exists()
    assert proc.stderr == (
        "packer: warning: tool/__init__.py: open() on a path made from __file__ or __path__: "
        "read this way, inside the archive it finds nothing; read package files with "
        "importlib.resources, or build the folder as a project (pyproject.toml), whose code is "
        "then extracted at run time\n"
    )
