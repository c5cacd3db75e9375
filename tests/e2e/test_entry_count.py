"""An archive of more zip entries than the targeted interpreters can open is refused at build
time (zipimport before 3.13 reads no zip64); accepted when every target can read it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers import other_interpreters, packer_cli, run

import packer
from packer._runtime import inspection

FILES = 70_000


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "src"
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "__main__.py").write_text("import app.d0001.m1\nprint('ran', app.d0001.m1.N)\n")
    for d in range(FILES // 100):
        folder = root / "app" / f"d{d:04d}"
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        for i in range(1, 100):
            (folder / f"m{i}.py").write_text(f"N = {i}\n")
    return root


@pytest.mark.slow
def test_too_many_entries_for_older_pythons_is_refused_at_build_time(
    big_tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "big.pyz"
    proc = packer_cli("build", big_tree, "-o", out, "-m", "app", "--no-compile")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert re.search(r"big\.pyz: 70,0\d\d zip entries, more than the 65,534", proc.stderr)
    assert "Python 3.9-3.12" in proc.stderr and "--requires-python '>=3.13'" in proc.stderr
    assert not out.exists() and os.listdir(tmp_path) == []


@pytest.mark.slow
def test_an_archive_for_313_only_may_use_zip64(big_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "big.pyz"
    result = packer.build(
        big_tree, out, entry="app", compile=False, requires_python=">=3.13", compress=False
    )
    assert result.members > 65535
    problems, facts = inspection.verify(str(out))
    assert problems == [] and facts["digest"] == "ok"
    newer = [python for python, version in other_interpreters() if version >= (3, 13)]
    if not newer:
        pytest.skip("no CPython 3.13 on this machine to run it")
    proc = run([newer[0], out], timeout=120)
    assert (proc.returncode, proc.stdout) == (0, "ran 1\n"), proc.stderr
