"""Bundled dependencies, native code and importing from inside: real wheels, real runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import (
    REPO,
    as_unprivileged,
    clean_env,
    other_interpreters,
    packer_cli,
    run,
    write_tree,
)
from rawzip import packer_like
from wheels import GREET_ENTRY_POINTS, GREET_FILES, make_wheel

import packer
from packer._runtime import cache as native_cache
from packer._runtime.format import NativeDist, native_key, open_archive
from packer.cli import main as cli_main

APP = {
    "app/__init__.py": "",
    "app/util.py": "def double(x):\n    return 2 * x\n",
    "app/data/config.txt": "app config\n",
    "app/cli.py": """
import json
import re
import multiprocessing
import sys


def info():
    import click, msgpack, greet, greet_extra_mod
    from importlib.metadata import entry_points, version
    from importlib.resources import files

    eps = entry_points()
    plugins = eps.select(group="greet.plugins") if hasattr(eps, "select") else eps["greet.plugins"]
    return {
        "click": version("click"),
        "click_file": click.__file__,
        "msgpack": version("msgpack"),
        "greet": version("greet"),
        "ext": msgpack.Packer.__module__,
        "msgpack_file": msgpack.__file__,
        "plugins": sorted(ep.name for ep in plugins),
        "app_data": files("app").joinpath("data/config.txt").read_text().strip(),
        "greet_data": greet.data(),
        "pth": greet_extra_mod.VALUE,
    }


def square(x):
    import msgpack
    return msgpack.unpackb(msgpack.packb(x * x))


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else "info"
    if command == "info":
        print(json.dumps(info()))
    elif command == "mp":
        with multiprocessing.get_context(sys.argv[2]).Pool(2) as pool:
            print(json.dumps(pool.map(square, range(5))))
    elif command == "wait":
        print("ready", flush=True)
        sys.stdin.readline()
        print(square(7), flush=True)
    return 0
""",
}


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """click and msgpack from PyPI (msgpack has a C extension), and a small wheel of ours."""
    house = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(house, "greet", "1.0", GREET_FILES, entry_points=GREET_ENTRY_POINTS)
    proc = run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
         "--only-binary=:all:", "--dest", house, "click", "msgpack"],
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return house


def build_app(
    root: Path,
    wheelhouse: Path,
    *extra: str,
    bundle: tuple[str, ...] = ("click", "msgpack", "greet"),
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Build APP (written under *root*) into *root*/app.pyz from the wheelhouse, offline."""
    src = write_tree(root / "src", APP)
    out = root / "app.pyz"
    withs = [arg for name in bundle for arg in ("--with", name)]
    proc = packer_cli("build", src, "-o", out, "-m", "app.cli:main", *withs, "--no-index",
                      "--find-links", wheelhouse, *extra)  # fmt: skip
    return out, proc


@pytest.fixture(scope="session")
def app_pyz(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # --compile: test_bundled_modules_use_their_bytecode checks the stored bytecode.
    out, proc = build_app(tmp_path_factory.mktemp("bundle"), wheelhouse, "--compile")
    assert proc.returncode == 0, proc.stderr
    assert "bundled: click " in proc.stdout and "msgpack " in proc.stdout
    assert "(native)" in proc.stdout
    return out


def run_app(archive: Path, *args: str, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run([archive, *args], env=clean_env(PACKER_CACHE=str(cache), **env))


def entries(cache: Path) -> list[str]:
    """The extraction entries of *cache* (the compile cache keeps its own, ``bytecode-*``)."""
    if not cache.exists():
        return []
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith("bytecode-"))


def _wheel_version(wheelhouse: Path, name: str) -> str:
    (wheel,) = wheelhouse.glob(f"{name}-*.whl")
    return wheel.name.split("-")[1]


def test_bundled_code_metadata_resources_and_compiled_extension(
    app_pyz: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    proc = run_app(app_pyz, cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    info = json.loads(proc.stdout)
    assert info["ext"] == "msgpack._cmsgpack", "the C extension, not the pure-Python fallback"
    assert info["msgpack_file"].startswith(str(tmp_path / "cache"))
    assert info["click_file"].startswith(f"{app_pyz}/_packer/site-packages/"), (
        "pure code from the zip"
    )
    assert info["greet"] == "1.0" and info["plugins"] == ["loud"]
    assert info["app_data"] == "app config" and info["greet_data"] == "greet data"
    assert info["pth"] == "from a .pth path"
    # importlib.metadata in the archive reports the versions that were bundled.
    assert info["click"] == _wheel_version(wheelhouse, "click")
    assert info["msgpack"] == _wheel_version(wheelhouse, "msgpack")


def test_only_native_distributions_are_extracted_once(app_pyz: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run_app(app_pyz, cache=cache).returncode == 0
    (entry,) = entries(cache)
    assert entry.startswith("msgpack-")
    folder = cache / entry
    assert (folder / ".packer-complete").is_file()
    assert not list(folder.rglob("click*")), "pure-Python distributions stay in the archive"
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")}
    warm = run_app(app_pyz, cache=cache)
    assert warm.returncode == 0
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")}
    assert after == before, "a warm start extracts nothing"
    assert entries(cache) == [entry]


def test_sixteen_concurrent_cold_starts(app_pyz: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = clean_env(PACKER_CACHE=str(cache))
    procs = [
        subprocess.Popen(
            [app_pyz], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(16)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (stdout, stderr) in zip(procs, results, strict=False):
        assert proc.returncode == 0, stderr
        assert json.loads(stdout)["ext"] == "msgpack._cmsgpack"
    assert len(entries(cache)) == 1, entries(cache)


def test_interrupted_and_broken_extractions_are_repaired(app_pyz: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run_app(app_pyz, cache=cache).returncode == 0
    (entry,) = entries(cache)
    # What a run killed mid-extraction leaves: a temporary folder with part of the files.
    partial = cache / f".tmp-{entry}-killed"
    shutil.copytree(cache / entry, partial)
    (partial / ".packer-complete").unlink()
    # And an entry whose marker is missing (damaged by hand): not to be trusted.
    (cache / entry / ".packer-complete").unlink()
    for so in (cache / entry).rglob("*.so"):
        so.write_bytes(b"truncated")
    proc = run_app(app_pyz, cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ext"] == "msgpack._cmsgpack"
    assert (cache / entry / ".packer-complete").is_file()
    # The killed run's leftovers are never used, and prune clears them.
    prune = CliRunner().invoke(
        cli_main, ["cache", "prune", "--older-than", "365"], env={"PACKER_CACHE": str(cache)}
    )
    assert prune.exit_code == 0, prune.output
    assert entries(cache) == [entry]


def test_an_entry_another_run_finished_meanwhile_is_kept(tmp_path: Path) -> None:
    # The race behind a failure of the sixteen cold starts above: a run finds no entry and
    # starts extracting; another finishes first, and a third is already running from it.
    # The first must keep that entry, not take it for a broken one and replace it.
    archive = tmp_path / "demo.pyz"
    archive.write_bytes(packer_like({"_packer/native/demo-1.0/demo.txt": b"native code"}))
    prefix = "_packer/native/demo-1.0/"
    with open_archive(str(archive)) as opened:
        manifest = opened.manifest()
    assert manifest is not None
    dist = NativeDist("demo", "1.0", native_key(prefix, manifest.members), prefix)
    root = tmp_path / "cache"
    final = root / dist.entry_name
    source = native_cache._Source(str(archive))
    native_cache._extract(source, str(root), str(final), dist)  # the other run's
    with (final / "demo.txt").open("rb") as in_use:  # the third run's
        native_cache._extract(source, str(root), str(final), dist)  # the first run's
        used = os.fstat(in_use.fileno())
        assert used.st_nlink == 1, "a finished entry was thrown away"
        assert os.path.samestat(used, (final / "demo.txt").stat())
    source.close()
    assert (final / native_cache.MARKER).is_file()
    assert (final / "demo.txt").read_text() == "native code"
    assert entries(root) == [final.name]  # no temporary folder left behind


def _assert_fallback(
    command: list[str | os.PathLike[str]], env: dict[str, str], unusable: str, tmp: Path
) -> None:
    """Run *command* twice with an unusable cache: the first run warns once and makes this
    user's folder in the temporary directory; the second uses it without a word."""
    env = {**env, "TMPDIR": str(tmp / "tmpdir")}
    (tmp / "tmpdir").mkdir()
    shared = tmp / "tmpdir" / f"packer-cache-{os.getuid()}"
    for first in (True, False):
        proc = run(command, env=env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["ext"] == "msgpack._cmsgpack"
        if first:
            assert proc.stderr == (
                f"app.pyz: warning: cannot use the cache folder {unusable} ("
                f"{proc.stderr.split(' (', 1)[1].split(')', 1)[0]}); "
                f"native code goes to {shared} from now on\n"
            )
        else:
            assert proc.stderr == ""
        assert (shared.stat().st_mode & 0o777) == 0o700
        assert [e for e in entries(shared) if e.startswith("msgpack-")]


def test_cache_that_is_a_file_falls_back(app_pyz: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    env = clean_env(PACKER_CACHE=str(blocker))
    _assert_fallback([app_pyz], env, str(blocker), tmp_path)
    assert blocker.read_text() == "not a folder"


def test_fallback_folder_made_by_someone_else_is_not_used(app_pyz: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    (tmp_path / "tmpdir").mkdir()
    shared = tmp_path / "tmpdir" / f"packer-cache-{os.getuid()}"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # not private: another user could have put code there
    env = clean_env(PACKER_CACHE=str(blocker), TMPDIR=str(tmp_path / "tmpdir"))
    proc = run([app_pyz], env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ext"] == "msgpack._cmsgpack"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"app.pyz: warning: cannot use the cache folder {blocker} ("
    ), proc.stderr
    assert f"nor {shared}; extracting native code to " in lines[0]
    private = lines[0].rsplit(" ", 1)[1]
    assert not os.path.exists(private), "the private folder is removed at exit"
    assert entries(shared) == []


def test_home_nonexistent_falls_back(app_pyz: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root could create /nonexistent; a HOME under a folder it cannot write is the same.
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        home = str(locked / "nonexistent")
    else:
        home = "/nonexistent"
    env = clean_env(HOME=home)
    env.pop("XDG_CACHE_HOME", None)
    try:
        _assert_fallback(as_unprivileged([app_pyz]), env, f"{home}/.cache/packer", tmp_path)
        assert not os.path.exists(home)
    finally:
        if os.geteuid() == 0:
            (tmp_path / "locked").chmod(0o755)


def test_read_only_cache_falls_back(app_pyz: Path, tmp_path: Path) -> None:
    cache = tmp_path / "ro"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        env = clean_env(PACKER_CACHE=str(cache))
        _assert_fallback(as_unprivileged([app_pyz]), env, str(cache), tmp_path)
        assert entries(cache) == []
    finally:
        cache.chmod(0o755)


def test_import_project_code_with_python_isolated(app_pyz: Path, tmp_path: Path) -> None:
    code = (
        "import sys, importlib.util; sys.path.insert(0, sys.argv[1]); import app.util; "
        "assert importlib.util.find_spec('packer') is None; print(app.util.double(21))"
    )
    proc = run([sys.executable, "-I", "-S", "-c", code, app_pyz], cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "42\n"), proc.stderr


def test_mount_one_liner_without_packer(app_pyz: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import _packer_runtime; "
        "_packer_runtime.mount(sys.argv[1]); "
        "import importlib.util; assert importlib.util.find_spec('packer') is None; "
        "import app.cli, json; print(json.dumps(app.cli.info()))"
    )
    proc = run(
        [sys.executable, "-I", "-S", "-c", code, app_pyz],
        env=clean_env(PACKER_CACHE=str(tmp_path / "c")),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ext"] == "msgpack._cmsgpack"


def test_packer_mount_is_a_context_manager_that_undoes_itself(
    app_pyz: Path, tmp_path: Path
) -> None:
    code = (
        "import sys, packer\n"
        "before = list(sys.path)\n"
        "with packer.mount(sys.argv[1]):\n"
        "    import msgpack, greet\n"
        "    assert msgpack.Packer.__module__ == 'msgpack._cmsgpack'\n"
        "    print(greet.hello())\n"
        "assert sys.path == before, sys.path\n"
        "assert 'greet' not in sys.modules and 'msgpack' not in sys.modules\n"
        "try:\n    import greet\nexcept ImportError:\n    print('gone')\n"
    )
    proc = run(
        [sys.executable, "-c", code, app_pyz],
        env=clean_env(PYTHONPATH=str(REPO), PACKER_CACHE=str(tmp_path / "c")),
    )
    assert (proc.returncode, proc.stdout) == (0, "hello from greet\ngone\n"), proc.stderr


def test_interpreter_mode(app_pyz: Path, tmp_path: Path) -> None:
    env = clean_env(PACKER_INTERPRETER="1", PACKER_CACHE=str(tmp_path / "c"))
    proc = run([app_pyz, "-c", "import sys, greet; print(greet.hello(), sys.argv)", "x"], env=env)
    assert (proc.returncode, proc.stdout) == (0, "hello from greet ['-c', 'x']\n"), proc.stderr
    proc = run([app_pyz, "-m", "greet.cli", "y"], env=env)
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "script.py"
    script.write_text("import sys, msgpack\nprint(msgpack.Packer.__module__, sys.argv[1:])\n")
    proc = run([app_pyz, script, "z"], env=env)
    assert (proc.returncode, proc.stdout) == (0, "msgpack._cmsgpack ['z']\n"), proc.stderr
    proc = subprocess.run([app_pyz], input="import greet\nprint(greet.data())\n", env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "greet data\n"), proc.stderr
    proc = run([app_pyz, "--bogus"], env=env)
    assert proc.returncode == 1 and "unknown option --bogus" in proc.stderr


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_from_inside(app_pyz: Path, tmp_path: Path, method: str) -> None:
    proc = run_app(app_pyz, "mp", method, cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [0, 1, 4, 9, 16]


def test_prune_never_removes_what_a_running_archive_uses(app_pyz: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = clean_env(PACKER_CACHE=str(cache))
    pipe = subprocess.PIPE
    proc = subprocess.Popen(
        [app_pyz, "wait"], env=env, stdin=pipe, stdout=pipe, stderr=pipe, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        pruned = packer_cli("cache", "prune", "--all", PACKER_CACHE=str(cache))
        assert pruned.returncode == 0, pruned.stderr
        assert "in use by a running archive" in pruned.stderr
        assert len(entries(cache)) == 1
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "49\n"
    finally:
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    info = packer_cli("cache", "info", "--json", PACKER_CACHE=str(cache))
    assert len(json.loads(info.stdout)["entries"]) == 1
    pruned = packer_cli("cache", "prune", "--all", PACKER_CACHE=str(cache))
    assert pruned.returncode == 0 and pruned.stdout.startswith("removed msgpack-")
    assert entries(cache) == []


def test_console_script_of_a_bundled_distribution_without_source(
    wheelhouse: Path, tmp_path: Path
) -> None:
    out = tmp_path / "greet-tool.pyz"
    proc = packer_cli("build", "-o", out, "--with", "greet", "--console-script", "greet-tool",
                      "--no-index", "--find-links", wheelhouse)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ran = run([out, "a"])
    assert (ran.returncode, ran.stdout) == (0, "greet-tool hello from greet ['a']\n"), ran.stderr
    missing = packer_cli("build", "-o", tmp_path / "x.pyz", "--with", "greet", "--console-script",
                         "nope", "--no-index", "--find-links", wheelhouse)  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr == (
        "packer: console script 'nope': no bundled distribution declares it (declared: "
        "greet-tool)\n"
    )
    assert not (tmp_path / "x.pyz").exists()


def test_entry_point_in_a_bundled_module(wheelhouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.pyz"
    proc = packer_cli("build", "-o", out, "--with", "greet", "-m", "greet.cli:main", "--no-index",
                      "--find-links", wheelhouse)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert run([out]).stdout == "greet-tool hello from greet []\n"


def test_unresolvable_requirement_is_one_line_and_writes_nothing(
    wheelhouse: Path, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree({"main.py": "print('x')\n"})
    out = tmp_path / "out"
    out.mkdir()
    missing = "no-such-dist-xyz==1.0"
    proc = packer_cli("build", src, "-o", out / "a.pyz", "-m", "main", "--with", missing,
                      "--no-index", "--find-links", wheelhouse)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith("packer: uv could not install no-such-dist-xyz==1.0: ")
    assert "no-such-dist-xyz" in proc.stderr and "unsatisfiable" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert list(out.iterdir()) == []
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("greet\nanother-missing-dist\n")
    proc = packer_cli("build", src, "-o", out / "a.pyz", "-m", "main", "-r", reqs, "--no-index",
                      "--find-links", wheelhouse)  # fmt: skip
    assert proc.returncode == 1 and "another-missing-dist" in proc.stderr
    assert list(out.iterdir()) == []


def test_requirements_file_and_config_table(
    wheelhouse: Path, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree(
        {
            "main.py": "import greet\nprint(greet.hello())\n",
            "requirements.txt": "greet==1.0\n",
            "pyproject.toml": (
                '[tool.packer]\nentry = "main"\nrequirements = ["requirements.txt"]\n'
                f'no-index = true\nfind-links = ["{wheelhouse}"]\n'
            ),
        }
    )
    out = tmp_path / "cfg.pyz"
    proc = packer_cli("build", src, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert run([out]).stdout == "hello from greet\n"


def test_pure_bundle_runs_on_every_other_python(
    wheelhouse: Path, make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    interpreters = other_interpreters()
    if not interpreters:
        pytest.skip("no other CPython 3.9+ on this machine")
    src = make_tree(
        {
            "main.py": (
                "import greet, greet_extra_mod\n"
                "print(greet.hello(), greet.data(), greet_extra_mod.VALUE)\n"
            )
        }
    )
    out = tmp_path / "pure.pyz"
    proc = packer_cli(
        "build",
        src,
        "-o",
        out,
        "-m",
        "main",
        "--with",
        "greet",
        "--no-index",
        "--find-links",
        wheelhouse,
    )
    assert proc.returncode == 0, proc.stderr
    for python, version in interpreters:
        ran = run([python, out])
        assert (ran.returncode, ran.stdout) == (
            0,
            "hello from greet greet data from a .pth path\n",
        ), (version, ran.stderr)


def test_native_code_for_another_python_is_refused_in_one_line(
    app_pyz: Path, tmp_path: Path
) -> None:
    interpreters = other_interpreters()
    if not interpreters:
        pytest.skip("no other CPython 3.9+ on this machine")
    python, version = interpreters[-1]
    proc = run([python, app_pyz], env=clean_env(PACKER_CACHE=str(tmp_path / "c")))
    assert proc.returncode == 1
    built_for = "CPython {}.{}".format(*sys.version_info[:2])
    assert (
        proc.stderr.startswith("app.pyz: msgpack ")
        and f"needs {built_for}; this is Python {version[0]}.{version[1]}" in proc.stderr
    )
    assert proc.stderr.count("\n") == 1


def test_bundled_modules_use_their_bytecode(app_pyz: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "compiled = []\n"
        "sys.addaudithook(lambda e, a: compiled.append(str(a[1])) if e == 'compile' else None)\n"
        "import click, greet\n"
        "print([n for n in compiled if 'site-packages' in n])\n"
    )
    env = clean_env(PACKER_INTERPRETER="1", PACKER_CACHE=str(tmp_path / "c"))
    proc = run([app_pyz, "-c", code], env=env)
    assert (proc.returncode, proc.stdout) == (0, "[]\n"), proc.stderr


def test_optional_native_code_for_another_python_raises_import_error(
    wheelhouse: Path, tmp_path: Path
) -> None:
    interpreters = other_interpreters()
    if not interpreters:
        pytest.skip("no other CPython 3.9+ on this machine")
    out, proc = build_app(tmp_path, wheelhouse, "--optional-native", "MsgPack")
    assert proc.returncode == 0, proc.stderr
    info = packer_cli("info", out).stdout
    assert re.search(r"^native: msgpack \S+ \(optional\)$", info, re.M), info
    code = (
        "try:\n    import msgpack.fallback\nexcept ImportError as e:\n    print('no:', e)\n"
        "else:\n    print('yes:', msgpack.__file__)\nimport greet; print(greet.__name__)"
    )
    env = clean_env(PACKER_CACHE=str(tmp_path / "cache"), PACKER_INTERPRETER="1")
    here = run([sys.executable, out, "-c", code], env=env)
    assert here.stdout.startswith(f"yes: {tmp_path / 'cache'}"), here.stderr
    built_for = "CPython {}.{}".format(*sys.version_info[:2])
    for python, version in interpreters:
        ran = run([python, out, "-c", code], env=env)
        assert ran.returncode == 0, ran.stderr
        # The archive starts; the distribution is refused (not some other copy found), and why.
        assert ran.stdout == (
            f"no: app.pyz: msgpack {msgpack_version(info)} needs {built_for}; "
            f"this is Python {'.'.join(map(str, ran_version(python)))} ({python})\ngreet\n"
        ), (version, ran.stdout, ran.stderr)


def msgpack_version(info: str) -> str:
    return re.search(r"^native: msgpack (\S+)", info, re.M)[1]  # type: ignore[index]


def ran_version(python: str) -> tuple[int, ...]:
    out = run([python, "-c", "import sys; print(*sys.version_info[:3])"]).stdout
    return tuple(int(x) for x in out.split())


def test_optional_native_must_name_a_bundled_distribution(wheelhouse: Path, tmp_path: Path) -> None:
    out, proc = build_app(tmp_path, wheelhouse, "--optional-native", "uvloop", bundle=("click",))
    assert proc.returncode == 1
    assert (
        proc.stderr == "packer: --optional-native uvloop: no bundled distribution has that name\n"
    )
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "src"]


# --- a cache that is what the archive says -------------------------------------------------


def _tamper(entry: Path) -> Path:
    init = entry / "msgpack" / "__init__.py"
    init.write_text("raise SystemExit('TAMPERED')\n")
    # Its bytecode is unchecked (never compared with the source): change it too.
    for pyc in (entry / "msgpack" / "__pycache__").glob("__init__.*.pyc"):
        pyc.unlink()
    return init


def test_a_changed_cache_entry_is_caught_by_verify_on_start(app_pyz: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run_app(app_pyz, cache=cache).returncode == 0
    (entry,) = entries(cache)
    _tamper(cache / entry)
    # A warm start trusts an entry that only this user can write: one stat, no hashing.
    assert "TAMPERED" in run_app(app_pyz, cache=cache).stderr
    proc = run_app(app_pyz, cache=cache, PACKER_VERIFY="1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ext"] == "msgpack._cmsgpack"
    assert proc.stderr.count("\n") == 1 and "does not match the archive" in proc.stderr
    # Repaired for good: the next plain start runs the archive's code again.
    assert run_app(app_pyz, cache=cache).returncode == 0
    assert entries(cache) == [entry]


def test_an_extra_file_planted_in_an_entry_is_caught_by_verify_on_start(
    app_pyz: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    assert run_app(app_pyz, cache=cache).returncode == 0
    (entry,) = entries(cache)
    (cache / entry / "sitecustomize.py").write_text("print('planted')\n")
    proc = run_app(app_pyz, cache=cache, PACKER_VERIFY="1")
    assert proc.returncode == 0 and "does not match the archive" in proc.stderr
    assert not (cache / entry / "sitecustomize.py").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another user")
def test_a_cache_entry_planted_by_another_user_is_never_loaded(
    app_pyz: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    assert run_app(app_pyz, cache=cache).returncode == 0
    (entry,) = entries(cache)
    _tamper(cache / entry)
    os.chown(cache / entry, 4242, 4242)  # as if another user had made it first
    proc = run([app_pyz], env=clean_env(PACKER_CACHE=str(cache), TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ext"] == "msgpack._cmsgpack"
    assert "not this user's alone" in proc.stderr and proc.stderr.count("\n") == 1


def test_a_shared_cache_root_is_refused(app_pyz: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: anyone may plant an entry there
    proc = run([app_pyz], env=clean_env(PACKER_CACHE=str(shared), TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "only it can write" in proc.stderr, proc.stderr
    assert entries(shared) == []


def test_prune_keeps_an_extraction_in_progress(tmp_path: Path) -> None:
    import fcntl

    cache = tmp_path / "cache"
    busy = cache / ".tmp-demo-1.0-0123456789abcdef-x"
    busy.mkdir(parents=True)
    lock = os.open(busy / native_cache.LOCK, os.O_WRONLY | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)
    fresh = cache / ".tmp-demo-1.0-0123456789abcdef-y"  # just made, no lock file yet
    fresh.mkdir()
    dead = cache / ".tmp-demo-1.0-0123456789abcdef-z"  # its extractor died long ago
    dead.mkdir()
    os.utime(dead, (1, 1))
    try:
        prune = CliRunner().invoke(
            cli_main, ["cache", "prune", "--all"], env={"PACKER_CACHE": str(cache)}
        )
        assert prune.exit_code == 0, prune.output
        assert entries(cache) == sorted([busy.name, fresh.name])
    finally:
        os.close(lock)
    prune = CliRunner().invoke(
        cli_main, ["cache", "prune", "--all"], env={"PACKER_CACHE": str(cache)}
    )
    assert entries(cache) == [fresh.name]


def test_the_cache_root_is_always_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    home = pwd.getpwuid(os.getuid()).pw_dir
    monkeypatch.delenv("PACKER_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    for value in (None, "", "relative/home"):
        if value is None:
            monkeypatch.delenv("HOME", raising=False)
        else:
            monkeypatch.setenv("HOME", value)
        assert native_cache.cache_root() == os.path.join(home, ".cache", "packer")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert os.path.isabs(native_cache.cache_root())
    monkeypatch.setenv("PACKER_CACHE", "rel/cache")
    assert native_cache.cache_root() == os.path.abspath("rel/cache")


def test_no_room_anywhere_is_one_line(
    app_pyz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import tempfile

    from packer._runtime.format import open_archive as opener

    with opener(str(app_pyz)) as opened:
        manifest = opened.manifest()
    assert manifest is not None
    natives = manifest.runtime.native

    def full(*args: object, **kwargs: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    blocker = tmp_path / "cache"
    blocker.write_text("a file")
    monkeypatch.setenv("PACKER_CACHE", str(blocker))
    monkeypatch.setattr(tempfile, "mkdtemp", full)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(blocker))
    with pytest.raises(packer.ArchiveError, match="No space left on device") as caught:
        native_cache.ensure_extracted(str(app_pyz), natives, lambda message: None)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("app.pyz: ")
