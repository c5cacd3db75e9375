"""Modules with no bytecode stored for the running interpreter compile once, at their first
import, into the runtime cache; later starts read that bytecode."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import clean_env, other_interpreters, packer_cli, run, write_tree

APP = {
    "pkg/__init__.py": "",
    "pkg/cli.py": "from pkg import util\n\ndef main():\n    print(util.shout('hi'))\n",
    "pkg/util.py": (
        "def shout(text):\n    return text.upper() + '!'\n\n"
        "def fail():\n    raise ValueError('from util')\n"
    ),
}
#: Run in interpreter mode: which of the app's modules compiled in this process.
WATCH = (
    "import sys\n"
    "compiled = []\n"
    "sys.addaudithook(lambda event, args: compiled.append(str(args[1])) if event == 'compile' "
    "else None)\n"
    "import pkg.cli\n"
    "print(sorted(name for name in compiled if name.startswith('pkg')))\n"
)
COMPILED = "['pkg/__init__.py', 'pkg/cli.py', 'pkg/util.py']\n"


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    src = write_tree(tmp_path / "src", APP)
    out = tmp_path / "bare.pyz"
    proc = packer_cli("build", src, "-o", out, "-m", "pkg.cli:main", "--no-compile", "-q")
    assert proc.returncode == 0, proc.stderr
    return out


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(PACKER_INTERPRETER="1", PACKER_CACHE=str(tmp_path / "cache"), **extra)


def _cached(tmp_path: Path) -> list[str]:
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.pyc")) if root.exists() else []


def test_first_start_compiles_and_later_ones_do_not(bare: Path, tmp_path: Path) -> None:
    first = run([bare, "-c", WATCH], env=_env(tmp_path))
    assert (first.returncode, first.stdout) == (0, COMPILED), first.stderr
    cached = _cached(tmp_path)
    tag = sys.implementation.cache_tag
    assert [p.split("/", 1)[1] for p in cached] == [
        f"{tag}/pkg/__init__.pyc",
        f"{tag}/pkg/cli.pyc",
        f"{tag}/pkg/util.pyc",
    ]
    assert all(p.startswith("bytecode-") for p in cached)
    again = run([bare, "-c", WATCH], env=_env(tmp_path))
    assert (again.returncode, again.stdout) == (0, "[]\n"), again.stderr
    assert run([bare], env=clean_env(PACKER_CACHE=str(tmp_path / "cache"))).stdout == "HI!\n"


def test_a_traceback_from_cached_bytecode_shows_the_source(bare: Path, tmp_path: Path) -> None:
    code = "import pkg.util\npkg.util.fail()\n"
    for _ in range(2):  # compiled, then from the cache
        proc = run([bare, "-c", code], env=_env(tmp_path))
        assert proc.returncode == 1
        assert 'pkg/util.py", line 5, in fail' in proc.stderr, proc.stderr
        assert "raise ValueError('from util')" in proc.stderr, proc.stderr
    assert _cached(tmp_path)


def test_dont_write_bytecode_still_fills_the_cache(bare: Path, tmp_path: Path) -> None:
    # The variable keeps .pyc files out of source folders; the archive's cache is not one.
    first = run([bare, "-c", WATCH], env=_env(tmp_path, PYTHONDONTWRITEBYTECODE="1"))
    assert (first.returncode, first.stdout) == (0, COMPILED), first.stderr
    again = run([bare, "-B", "-c", WATCH], env=_env(tmp_path, PYTHONDONTWRITEBYTECODE="1"))
    assert (again.returncode, again.stdout) == (0, "[]\n"), again.stderr
    assert _cached(tmp_path)


def test_the_compile_cache_can_be_turned_off(bare: Path, tmp_path: Path) -> None:
    # Then zipimport compiles them, under their path in the archive.
    watch = WATCH.replace("name.startswith('pkg')", "'.pyz/pkg/' in name")
    for _ in range(2):
        proc = run([bare, "-c", watch], env=_env(tmp_path, PACKER_COMPILE_CACHE="0"))
        assert proc.returncode == 0, proc.stderr
        assert [name.rsplit(".pyz/", 1)[1] for name in eval(proc.stdout)] == eval(COMPILED)
    assert _cached(tmp_path) == []


def test_damaged_bytecode_in_the_cache_is_compiled_again(bare: Path, tmp_path: Path) -> None:
    assert run([bare, "-c", WATCH], env=_env(tmp_path)).stdout == COMPILED
    root = tmp_path / "cache"
    (util,) = root.rglob("util.pyc")
    util.write_bytes(util.read_bytes()[:20])  # truncated inside the code object
    proc = run([bare, "-c", WATCH], env=_env(tmp_path))
    assert (proc.returncode, proc.stdout) == (0, "['pkg/util.py']\n"), proc.stderr
    assert len(util.read_bytes()) > 20  # written again, whole
    assert run([bare, "-c", WATCH], env=_env(tmp_path)).stdout == "[]\n"


def test_a_cache_others_can_write_is_not_used(bare: Path, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    os.chmod(root, 0o777)
    for _ in range(2):
        proc = run([bare, "-c", WATCH], env=_env(tmp_path))
        assert (proc.returncode, proc.stdout) == (0, COMPILED), proc.stderr
    assert list(root.iterdir()) == []


def test_a_target_without_stored_bytecode_compiles_once(tmp_path: Path) -> None:
    """A multi-target archive's target whose Python was not on the building machine is this
    case too; here another installed Python reads an archive built for this one alone."""
    others = [path for path, v in other_interpreters() if v >= (3, 10)]
    assert others, "the tests need a CPython 3.10+ other than this one (pyenv's)"
    src = write_tree(tmp_path / "src", APP)
    out = tmp_path / "app.pyz"
    proc = packer_cli("build", src, "-o", out, "-m", "pkg.cli:main", "-q")
    assert proc.returncode == 0, proc.stderr
    python = others[0]
    first = run([python, out, "-c", WATCH], env=_env(tmp_path))
    assert (first.returncode, first.stdout) == (0, COMPILED), first.stderr
    again = run([python, out, "-c", WATCH], env=_env(tmp_path))
    assert (again.returncode, again.stdout) == (0, "[]\n"), again.stderr
