"""Lock files: one lock for every target, installed exactly, hashes checked, the same bytes
from two clones."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from helpers import cli, run, write_tree
from projects import PYPROJECT, make_project
from wheels import GREET_ENTRY_POINTS, GREET_FILES, make_wheel

pytestmark = pytest.mark.network  # uv and pip fetch msgpack and the build backend

PINNED = ["msgpack", 'exceptiongroup; python_version < "3.11"']
HERE = "{}.{}".format(*sys.version_info[:2])


def test_lock_then_build_twice_from_two_clones(tmp_path: Path) -> None:
    project = make_project(tmp_path / "one" / "myproj")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "greet", "1.0", GREET_FILES, entry_points=GREET_ENTRY_POINTS)
    make_wheel(wheels, "pkrtest_speedups", "0.1", {"pkrtest_speedups.py": "NAME = 'x'\n"})
    (project / "pyproject.toml").write_text(
        PYPROJECT.replace('dependencies = ["greet>=1"]', 'dependencies = ["greet>=1", "msgpack"]')
    )
    lock = tmp_path / "app.lock"
    code, _, err = cli("lock", project, "-o", lock, "--find-links", wheels,
                         "--target", "3.10", "--target", HERE)  # fmt: skip
    assert code == 0, err
    pins = re.findall(r"^([a-z0-9_.-]+)==", lock.read_text(), re.M)
    assert sorted(pins) == ["greet", "msgpack"], lock.read_text()
    assert "--hash=sha256:" in lock.read_text() and str(tmp_path) not in lock.read_text()
    clone = tmp_path / "two" / "myproj"
    shutil.copytree(project, clone)
    archives = []
    for where in (project, clone):
        out_file = where.parent / "app.pyz"
        code, _, err = cli("build", where, "-o", out_file, "--lock", lock, "--find-links",
                           wheels, "--target", "3.10", "--target", HERE, "-q")  # fmt: skip
        assert code == 0, err
        archives.append(out_file.read_bytes())
    assert archives[0] == archives[1], "two clones with one lock built different bytes"
    code, info, _ = cli("info", project.parent / "app.pyz")
    assert "lock: sha256 " in info and "2 pins: greet==1.0, msgpack==" in info
    proc = run([project.parent / "app.pyz"])
    assert proc.returncode == 0 and '"version": "2.5.0"' in proc.stdout, proc.stderr


def test_a_tampered_hash_is_refused_in_one_line(tmp_path: Path) -> None:
    app = write_tree(tmp_path / "app", {"main.py": "def main():\n    import msgpack\n"})
    lock = tmp_path / "app.lock"
    args: list[object] = ["lock", "-o", lock]
    for spec in PINNED:
        args += ["--with", spec]
    code, _, err = cli(*args)
    assert code == 0, err
    tampered = tmp_path / "tampered.lock"
    tampered.write_text(re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, lock.read_text()))
    for extra in ([], ["--target", "3.12"]):
        out_file = tmp_path / "app.pyz"
        code, _, err = cli("build", app, "-o", out_file, "-m", "main:main", "--lock", tampered,
                           *extra)  # fmt: skip
        assert code == 1 and err.count("\n") == 1, err
        assert re.search(r"hash|Hash", err) and "Traceback" not in err, err
        assert not out_file.exists()
    code, _, err = cli("build", app, "-o", tmp_path / "x.pyz", "-m", "main:main", "--lock", lock,
                       "--with", "click")  # fmt: skip
    assert code == 1 and "--lock installs the lock's pins and nothing else" in err
    (tmp_path / "notes.txt").write_text("msgpack>=1\n")
    code, _, err = cli("build", app, "-o", tmp_path / "x.pyz", "-m", "main:main",
                       "--lock", tmp_path / "notes.txt")  # fmt: skip
    assert code == 1 and "not a lock file" in err
