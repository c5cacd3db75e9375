"""One archive for several CPythons and platforms, resolved by uv: run under every installed
interpreter, native code loaded on each, marker-conditional dependencies where they belong."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import cli, other_interpreters, run, write_tree

pytestmark = pytest.mark.network  # uv fetches the wheels for each target

TARGETS = ("3.10", "3.11", "3.12", "3.13")
PROBE = """
import json, sys
from importlib.metadata import PackageNotFoundError, version


def main():
    import msgpack
    found = {}
    for name in ("exceptiongroup", "tomli"):
        try:
            __import__(name)
            module = True
        except ImportError:
            module = False
        try:
            meta = version(name)
        except PackageNotFoundError:
            meta = None
        found[name] = [module, meta is not None]
    print(json.dumps({
        "python": list(sys.version_info[:2]),
        "packer_ext": msgpack.Packer.__module__,
        "found": found,
    }))
"""
REQUIREMENTS = ["msgpack", 'exceptiongroup; python_version < "3.11"',
                'tomli; python_version < "3.11"']  # fmt: skip


def _build(tmp_path: Path, out: str, *targets: str) -> Path:
    app = write_tree(tmp_path / "app", {"probe.py": PROBE})
    # --compile: what these tests check is each target's own stored bytecode.
    args: list[object] = ["build", app, "-o", tmp_path / out, "-m", "probe:main", "-q",
                          "--compile"]  # fmt: skip
    for requirement in REQUIREMENTS:
        args += ["--with", requirement]
    for target in targets:
        args += ["--target", target]
    code, _, err = cli(*args)
    assert code == 0, err
    return tmp_path / out


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("four"), "four.pyz", *TARGETS)


def _interpreters() -> dict[tuple[int, int], str]:
    found = {sys.version_info[:2]: sys.executable}
    found.update({version: path for path, version in other_interpreters()})
    return found


def test_one_archive_runs_on_every_target_python_with_its_native_code(four: Path) -> None:
    ran = []
    for version, python in sorted(_interpreters().items()):
        if f"{version[0]}.{version[1]}" not in TARGETS:
            continue
        proc = run([python, four])
        assert proc.returncode == 0, (version, proc.stderr)
        data = json.loads(proc.stdout)
        assert data["python"] == list(version)
        assert data["packer_ext"] == "msgpack._cmsgpack", "the pure-Python fallback ran"
        backport = version < (3, 11)
        assert data["found"] == {"exceptiongroup": [backport, backport],
                                 "tomli": [backport, backport]}, version  # fmt: skip
        ran.append(version)
    assert len(ran) >= 3, f"too few of {TARGETS} installed here to show anything: {ran}"


def test_each_installed_target_python_gets_its_bytecode(four: Path) -> None:
    code, listing, _ = cli("list", four)
    assert code == 0
    names = set(listing.split())
    for version in _interpreters():
        tag = f"{version[0]}{version[1]}"
        if f"{version[0]}.{version[1]}" not in TARGETS or version == sys.version_info[:2]:
            continue
        assert f"__pycache__/probe.cpython-{tag}.pyc" in names
        assert f"_packer_runtime/__pycache__/environment.cpython-{tag}.pyc" in names
    assert "probe.pyc" in names  # the building interpreter's, beside the module


def test_an_interpreter_no_target_fits_is_refused_in_one_line(four: Path) -> None:
    old = dict(_interpreters()).get((3, 9))
    assert old is not None, "pyenv's 3.9 is needed here"
    proc = run([old, four])
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(
        "four.pyz: built for CPython 3.10, 3.11, 3.12, 3.13 on manylinux_2_28_x86_64; "
        "this is CPython 3.9"
    ), proc.stderr


def test_foreign_platforms_build_here_and_are_refused_here(tmp_path: Path) -> None:
    archive = _build(tmp_path, "elsewhere.pyz", "3.12:macos-arm64", "3.13:windows-amd64")
    code, listing, _ = cli("list", archive)
    assert code == 0
    assert any(n.endswith("-darwin.so") for n in listing.split())
    assert any(n.endswith("win_amd64.pyd") for n in listing.split())
    proc = run([sys.executable, archive])
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1, proc.stderr
    assert "built for CPython 3.12 on macosx_13_0_arm64; CPython 3.13 on win_amd64;" in proc.stderr


def test_a_multi_target_build_is_reproducible(tmp_path: Path, four: Path) -> None:
    again = _build(tmp_path, "four.pyz", *TARGETS)
    assert again.read_bytes() == four.read_bytes()


def test_a_multi_target_archive_exports_one_target(tmp_path: Path, four: Path) -> None:
    code, _, err = cli("export", four, "--to", tmp_path / "lib.zip", "--leave-out", "msgpack")
    assert code == 1 and "give --target (one of cp310-" in err and "\n" not in err.strip()
    listed = {}
    for target in ("3.10", "3.13"):
        out = tmp_path / f"lib-{target}.zip"
        code, _, err = cli("export", four, "--to", out, "--leave-out", "msgpack",
                           "--target", target)  # fmt: skip
        assert code == 0, err
        with zipfile.ZipFile(out) as zf:
            listed[target] = {name.split("/")[0] for name in zf.namelist()}
    # The 3.10 target's own pure distributions (its backports), and not the other's.
    assert {"exceptiongroup", "tomli"} <= listed["3.10"]
    assert not {"exceptiongroup", "tomli"} & listed["3.13"]
    assert "probe.py" in listed["3.13"] and not any(n.startswith("msgpack") for n in listed["3.13"])
    code, _, err = cli("export", four, "--to", tmp_path / "x.zip", "--target", "3.9")
    assert code == 1 and "--target 3.9: four.pyz has no such target" in err
