"""Python projects as sources: built by their own backend (setuptools, from PyPI), bundled with
their dependencies, run by their console script, their metadata readable from inside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli, run, write_tree
from projects import make_project
from wheels import GREET_ENTRY_POINTS, GREET_FILES, make_wheel

pytestmark = pytest.mark.network  # pip fetches setuptools for each isolated build


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's dependencies, as wheels in a folder (the build's --find-links)."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(folder, "greet", "1.0", GREET_FILES, entry_points=GREET_ENTRY_POINTS)
    make_wheel(
        folder, "pkrtest_speedups", "0.1", {"pkrtest_speedups.py": "NAME = 'speedups 0.1'\n"}
    )
    return folder


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def report(archive: Path, *args: str) -> dict[str, object]:
    proc = run([archive, *args])
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


@pytest.mark.parametrize("layout", ["flat", "src"])
def test_a_project_builds_with_its_path_alone(
    tmp_path: Path, wheelhouse: Path, layout: str
) -> None:
    project = make_project(tmp_path / "myproj", layout=layout)
    before = snapshot(project)
    code, _, err = cli("build", project, "--find-links", wheelhouse, "-q")
    assert code == 0, err
    archive = tmp_path / "myproj.pyz"
    # Two scripts: the one named after the project is the default.
    assert report(archive, "a", "b") == {
        "script": "myproj", "version": "2.5.0",
        "requires": ["greet>=1", 'pkrtest-speedups; extra == "fast"'],
        "data": "hello from the project's data", "greet": "hello from greet",
        "argv": ["a", "b"], "fast": None,
    }  # fmt: skip
    assert snapshot(project) == before, "the build wrote into the project"
    code, listing, _ = cli("list", archive)
    assert code == 0
    names = listing.split()
    assert "_packer/site-packages/myproj-2.5.0.dist-info/METADATA" in listing
    unwanted = ("stale", "egg-info", "requirements.txt", "test_nothing", "pyproject.toml")
    assert not [n for n in names if any(word in n for word in unwanted)]
    assert not any(n.startswith(("myproj/", "src/", "build/")) for n in names)
    assert not any(n.endswith("direct_url.json") for n in names)


def test_the_other_script_an_extra_and_reproducible_bytes(tmp_path: Path, wheelhouse: Path) -> None:
    project = make_project(tmp_path / "myproj")
    outputs = []
    for name in ("one.pyz", "two.pyz"):
        code, _, err = cli("build", project, "-o", tmp_path / name, "--find-links", wheelhouse,
                           "--console-script", "myproj-admin", "--extra", "fast", "-q")  # fmt: skip
        assert code == 0, err
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1], "two builds of one project differ"
    data = report(tmp_path / "one.pyz")
    assert data["script"] == "myproj-admin" and data["fast"] == "speedups 0.1"


def test_a_setup_py_project(tmp_path: Path, wheelhouse: Path) -> None:
    project = write_tree(tmp_path / "legacy", {
        "setup.py": (
            "from setuptools import setup\n"
            "setup(name='legacy-tool', version='0.3', py_modules=['legacy'],\n"
            "      install_requires=['greet'],\n"
            "      entry_points={'console_scripts': ['legacy=legacy:main']})\n"
        ),
        "legacy.py": (
            "import greet\nfrom importlib.metadata import version\n"
            "def main():\n    print(version('legacy-tool'), greet.hello())\n"
        ),
    })  # fmt: skip
    code, _, err = cli("build", project, "--find-links", wheelhouse, "-q")
    assert code == 0, err
    proc = run([tmp_path / "legacy.pyz"])
    assert (proc.returncode, proc.stdout) == (0, "0.3 hello from greet\n"), proc.stderr


def test_an_unchanged_project_reuses_its_wheel(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend runs again when a file of the project changes, or with the build cache
    off; otherwise the wheel it built last time is taken, and the archive is the same."""
    runs = tmp_path / "backend-runs"
    runs.write_text("")
    project = write_tree(tmp_path / "counted", {
        "setup.py": (
            "from setuptools import setup\n"
            f"open({str(runs)!r}, 'a').write('run\\n')\n"
            "setup(name='counted', version='1.0', py_modules=['counted'],\n"
            "      entry_points={'console_scripts': ['counted=counted:main']})\n"
        ),
        "counted.py": "def main():\n    print('one')\n",
    })  # fmt: skip
    monkeypatch.setenv("PACKER_BUILD_CACHE", str(tmp_path / "build-cache"))
    archives = []

    def build() -> int:
        before = runs.read_text().count("run")
        out = tmp_path / f"counted-{len(archives)}.pyz"
        code, _, err = cli("build", project, "--find-links", wheelhouse, "-o", out, "-q")
        assert code == 0, err
        archives.append(out.read_bytes())
        return runs.read_text().count("run") - before

    assert build() > 0  # the first build runs the backend
    assert build() == 0 and archives[1] == archives[0]
    (project / "counted.py").write_text("def main():\n    print('two')\n")
    assert build() > 0
    proc = run([tmp_path / "counted-2.pyz"])
    assert (proc.returncode, proc.stdout) == (0, "two\n"), proc.stderr
    monkeypatch.setenv("PACKER_BUILD_CACHE", "0")
    assert build() > 0 and archives[3] == archives[2]


def test_no_project_packs_the_folder_as_before(tmp_path: Path, wheelhouse: Path) -> None:
    project = make_project(tmp_path / "myproj")
    code, _, err = cli("build", project, "--no-project", "-m", "myproj.cli:main",
                       "--with", "greet", "--find-links", wheelhouse, "-q")  # fmt: skip
    assert code == 0, err
    code, listing, _ = cli("list", tmp_path / "myproj.pyz")
    assert "myproj/cli.py" in listing.split() and "pyproject.toml" in listing.split()


def _refused(tmp_path: Path, project: Path, *args: object, message: str) -> None:
    before = snapshot(project)
    code, _, err = cli("build", project, "-o", tmp_path / "out.pyz", *args)
    assert code != 0 and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out.pyz").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert snapshot(project) == before


def test_project_errors_are_one_line_each(tmp_path: Path, wheelhouse: Path) -> None:
    links = ("--find-links", wheelhouse)
    broken = make_project(tmp_path / "broken")
    (broken / "pyproject.toml").write_text("[project\nname = 'x'\n")
    _refused(tmp_path, broken, *links, message="pyproject.toml: invalid TOML")

    failing = write_tree(tmp_path / "failing", {
        "setup.py": "raise RuntimeError('this backend cannot build')\n",
    })  # fmt: skip
    _refused(tmp_path, failing, *links, message="building the project's wheel failed")

    project = make_project(tmp_path / "myproj")
    _refused(tmp_path, project, *links, "--console-script", "nope",
             message="console script 'nope': no bundled distribution declares it (declared: "
                     "greet-tool, myproj, myproj-admin)")  # fmt: skip
    _refused(tmp_path, project, *links, "--extra", "turbo",
             message="--extra turbo: the project declares no such optional-dependency group "
                     "(it has: fast)")  # fmt: skip

    unresolvable = make_project(tmp_path / "unresolvable")
    text = (unresolvable / "pyproject.toml").read_text()
    (unresolvable / "pyproject.toml").write_text(
        text.replace('"greet>=1"', '"no-such-distribution-anywhere==9.9"')
    )
    _refused(
        tmp_path, unresolvable, *links, message="could not install myproj-2.5.0-py3-none-any.whl"
    )

    plain = write_tree(tmp_path / "plain", {"app.py": "print('hi')\n"})
    _refused(tmp_path, plain, "--project", message="--project: no pyproject.toml")
    _refused(tmp_path, plain, "-m", "app", "--extra", "fast", message="--extra needs a project")


def test_several_scripts_none_named_after_the_project_are_listed(
    tmp_path: Path, wheelhouse: Path
) -> None:
    project = make_project(tmp_path / "myproj")
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(
        text.replace('myproj = "myproj.cli:main"', 'mp = "myproj.cli:main"')
    )
    _refused(tmp_path, project, "--find-links", wheelhouse,
             message="myproj declares 2 console scripts (mp, myproj-admin) and none is named "
                     "after it: choose one with --console-script NAME")  # fmt: skip
