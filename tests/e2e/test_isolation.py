"""What a running archive sees of the interpreter running it: a venv of its own by default.

A real venv stands in for the machine: a module and a distribution installed in its
site-packages, a ``.pth`` path line to a folder elsewhere, and a ``.pth`` import line that
puts an editable-install style finder on ``sys.meta_path``. The archive bundles one wheel.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import clean_env, packer_cli, run, write_tree
from wheels import GREET_FILES, make_wheel

PROBE = {
    "probe/__init__.py": "",
    "probe/main.py": """
import importlib
import importlib.metadata
import json
import subprocess
import sys


def main():
    found = {}
    for name in ("hostmod", "editable_pkg", "pthmod", "envmod", "greet"):
        try:
            found[name] = importlib.import_module(name).__file__
        except ImportError:
            found[name] = None
    child = subprocess.run(
        [sys.executable, "-c", "import greet; print(greet.hello())"],
        capture_output=True, text=True,
    )
    print(json.dumps({
        "found": found,
        "path": sys.path,
        "dists": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
        "child": child.stdout.strip() or child.stderr.strip().splitlines()[-1],
    }))
""",
}

FINDER = """
import importlib.abc, importlib.util, sys

class EditableFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "editable_pkg":
            return importlib.util.spec_from_loader(name, Loader(), origin="editable")
        return None

class Loader(importlib.abc.Loader):
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.__file__ = "editable"

sys.meta_path.append(EditableFinder())
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A venv with things installed in it, a folder for PYTHONPATH, and a wheel to bundle."""
    root = tmp_path_factory.mktemp("isolation")
    venv = root / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(
        run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    )
    elsewhere = write_tree(root / "elsewhere", {"pthmod.py": "VALUE = 1\n"})
    write_tree(site, {
        "hostmod.py": "VALUE = 1\n",
        "hostdist-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: hostdist\nVersion: 1.0\n",
        "hostfinder.py": FINDER,
        "editable.pth": "import hostfinder\n",
        "elsewhere.pth": f"{elsewhere}\n",
    })  # fmt: skip
    assert run([python, "-c", "import hostmod, editable_pkg, pthmod"]).returncode == 0
    wheels = root / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "greet", "1.0", GREET_FILES)
    given = write_tree(root / "given", {"envmod.py": "VALUE = 1\n"})
    return {"python": python, "site": site, "wheels": wheels, "given": given, "root": root}


def build(host: dict[str, Path], name: str, *extra: str) -> Path:
    src = write_tree(host["root"] / f"src-{name}", PROBE)
    out = host["root"] / f"{name}.pyz"
    proc = packer_cli("build", src, "-o", out, "-m", "probe.main:main", "--with", "greet",
                      "--no-index", "--find-links", host["wheels"], "-q", *extra)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def probe(host: dict[str, Path], app: Path, cwd: Path | None = None, **env: str) -> dict:
    proc = run([host["python"], app], cwd=cwd, env=clean_env(**env))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def isolated(host: dict[str, Path]) -> Path:
    return build(host, "isolated")


@pytest.fixture(scope="module")
def inheriting(host: dict[str, Path]) -> Path:
    return build(host, "inheriting", "--inherit-path")


def test_the_interpreters_packages_are_not_importable(
    host: dict[str, Path], isolated: Path
) -> None:
    seen = probe(host, isolated)
    found = seen["found"]
    assert found["hostmod"] is None and found["editable_pkg"] is None and found["pthmod"] is None
    assert found["greet"].startswith(f"{isolated}/_packer/site-packages/")
    assert seen["dists"] == ["greet"]
    assert not [p for p in seen["path"] if p.startswith(str(host["root"] / "venv"))]
    assert len(seen["path"]) == len(set(seen["path"]))
    assert seen["path"][0] == str(isolated)


def test_inherit_path_keeps_them_after_the_archives_own(
    host: dict[str, Path], isolated: Path, inheriting: Path
) -> None:
    for app, env in ((inheriting, {}), (isolated, {"PACKER_INHERIT_PATH": "1"})):
        seen = probe(host, app, **env)
        found = seen["found"]
        assert found["hostmod"] == str(host["site"] / "hostmod.py")
        assert found["editable_pkg"] == "editable" and found["pthmod"] is not None
        assert found["greet"].startswith(f"{app}/_packer/site-packages/")
        assert seen["dists"] == ["greet", "hostdist"]
        path = seen["path"]
        assert len(path) == len(set(path))
        assert path.index(f"{app}/_packer/site-packages") < path.index(str(host["site"]))
    seen = probe(host, inheriting, PACKER_INHERIT_PATH="0")
    assert seen["found"]["hostmod"] is None and seen["dists"] == ["greet"]


def test_pythonpath_comes_after_the_app_and_before_what_it_bundles(
    host: dict[str, Path], isolated: Path
) -> None:
    given = str(host["given"])
    seen = probe(host, isolated, PYTHONPATH=given)
    assert seen["found"]["envmod"] == str(host["given"] / "envmod.py")
    assert seen["found"]["hostmod"] is None
    path = seen["path"]
    assert path[:3] == [str(isolated), given, f"{isolated}/_packer/site-packages"]


@pytest.mark.parametrize("how", ["relative", "dot-slash"])
def test_the_archive_is_on_sys_path_once_however_it_is_named(
    host: dict[str, Path], isolated: Path, how: str
) -> None:
    name = isolated.name if how == "relative" else f"./{isolated.name}"
    proc = run([host["python"], name], cwd=isolated.parent)
    assert proc.returncode == 0, proc.stderr
    path = json.loads(proc.stdout)["path"]
    assert path[0] == str(isolated) and len(path) == len(set(path))


def test_children_import_the_bundle_only_when_asked(host: dict[str, Path], isolated: Path) -> None:
    assert probe(host, isolated)["child"] == "ModuleNotFoundError: No module named 'greet'"
    assert probe(host, isolated, PACKER_EXPORT_PATH="1")["child"] == "hello from greet"
    exporting = build(host, "exporting", "--export-path")
    assert probe(host, exporting)["child"] == "hello from greet"
    assert probe(host, exporting, PACKER_EXPORT_PATH="0")["child"].startswith("ModuleNotFoundError")


def test_mounting_an_archive_leaves_the_host_path_alone(
    host: dict[str, Path], isolated: Path
) -> None:
    """Isolation is for a run of the archive; a program importing from one keeps its own."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import _packer_runtime; "
        "_packer_runtime.mount(sys.argv[1]); import greet, hostmod; print('ok')"
    )
    proc = run([host["python"], "-c", code, isolated], env=clean_env())
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr


METADATA = """
import importlib.metadata as m
dists = sorted(d.metadata["Name"] for d in m.distributions())
eps = m.entry_points()
group = eps.select(group="greet.plugins") if hasattr(eps, "select") else eps["greet.plugins"]
files = [f for f in m.files("greet") if f.name == "data.txt"]
print(dists, [e.value for e in group], m.version("Greet"), files[0].read_text().strip(),
      "Name: greet" in m.distribution("greet").read_text("METADATA"),
      m.packages_distributions().get("greet") if hasattr(m, "packages_distributions") else None)
"""


def test_importlib_metadata_sees_the_bundle_on_every_python(
    host: dict[str, Path], tmp_path: Path
) -> None:
    from helpers import other_interpreters
    from wheels import GREET_ENTRY_POINTS, build_offline

    greet = ("greet", "1.0", GREET_FILES, GREET_ENTRY_POINTS)
    app = build_offline(tmp_path, PROBE, [greet], "-m", "probe.main:main", out="meta.pyz")
    pythons = [sys.executable, *(python for python, _ in other_interpreters())]
    for python in pythons:
        ran = run([python, app, "-c", METADATA], env=clean_env(PACKER_INTERPRETER="1"))
        assert ran.returncode == 0, (python, ran.stderr)
        dists, rest = ran.stdout.split("] ", 1)
        assert dists == "['greet'", (python, ran.stdout)
        assert rest.startswith("['greet:hello'] 1.0 greet data True"), (python, ran.stdout)
