"""``packer export``: an archive's Python code as a plain library zip for cluster engines."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import clean_env, packer_cli
from rawzip import Raw, archive
from wheels import FASTC, GREET_ENTRY_POINTS, GREET_FILES, build_offline

APP = {
    "app/__init__.py": "",
    "app/cli.py": "import greet\n\ndef main():\n    print('the app ran')\n",
    "app/data.txt": "app data\n",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    greet = ("greet", "1.0", GREET_FILES, GREET_ENTRY_POINTS)
    fastd = ("fastd", "2.0", {"fastd/__init__.py": "", "fastd/_d.so": "x"}, "")
    return build_offline(tmp_path_factory.mktemp("export"), APP, [greet, FASTC, fastd], "-m",
                         "app.cli:main")  # fmt: skip


def test_native_code_is_refused_in_one_line_naming_each(built: Path, tmp_path: Path) -> None:
    proc = packer_cli("export", built, "--to", tmp_path / "lib.zip")
    assert proc.returncode == 1 and proc.stderr == (
        "packer: app.pyz: native code cannot be imported from a zip: fastc 1.0, fastd 2.0 "
        "(leave them out with --leave-out fastc --leave-out fastd)\n"
    )
    proc = packer_cli("export", built, "--to", tmp_path / "lib.zip", "--leave-out", "fastc")
    assert proc.returncode == 1 and "zip: fastd 2.0 (leave it out with --leave-out fastd)" in (
        proc.stderr
    )
    assert list(tmp_path.iterdir()) == []


def test_the_zip_imports_with_zipimport_alone(built: Path, tmp_path: Path) -> None:
    lib = tmp_path / "lib.zip"
    proc = packer_cli("export", built, "--to", lib, "--leave-out", "fastc", "--leave-out", "FASTD")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {lib} (14 members, left out fastc, fastd)\n", proc.stdout
    with zipfile.ZipFile(lib) as zf:
        names = zf.namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"app", "greet", "greet-1.0.dist-info", "greet.pth", "greet_extras"}, tops
    assert proc.stderr == (
        "packer: warning: greet.pth is not read from a zip on sys.path: the paths it adds are "
        "not importable from the export\n"
    )
    code = (
        "import sys, importlib.metadata as m\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import app.cli, greet\n"
        "from importlib.resources import files\n"
        "assert 'packer' not in sys.modules and '_packer_runtime' not in sys.modules\n"
        "eps = m.entry_points(group='greet.plugins')\n"
        "print(greet.hello(), m.version('greet'), [e.value for e in eps],\n"
        "      files('app').joinpath('data.txt').read_text().strip(),\n"
        "      type(greet.__loader__).__name__)\n"
    )
    ran = subprocess.run([sys.executable, "-I", "-c", code, str(lib)], capture_output=True,
                         text=True, env=clean_env(), check=False)  # fmt: skip
    assert (ran.returncode, ran.stdout) == (
        0,
        "hello from greet 1.0 ['greet:hello'] app data zipimporter\n",
    ), ran.stderr


def test_the_same_archive_gives_the_same_zip(built: Path, tmp_path: Path) -> None:
    outs = []
    for name in ("one.zip", "two.zip"):
        out = tmp_path / name
        proc = packer_cli("export", built, "--to", out, "--leave-out", "fastc",
                          "--leave-out", "fastd")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        ("plain", [], "packer: plain.zip: not a packer archive; only those can be exported"),
        ("built", ["--leave-out", "greet"],
         "packer: --leave-out greet: app.pyz bundles no native or extracted distribution of that "
         "name"),
        ("built", ["--to-missing"], "packer: {out}: the output folder {missing} does not exist"),
    ],
)  # fmt: skip
def test_bad_inputs_are_one_line_and_write_nothing(
    built: Path, tmp_path: Path, make: str, args: list[str], message: str
) -> None:
    source = built
    if make == "plain":
        source = tmp_path / "plain.zip"
        source.write_bytes(archive([Raw("a.py", b"print(1)\n")]))
    out = tmp_path / "lib.zip"
    if args == ["--to-missing"]:
        out, args = tmp_path / "missing" / "lib.zip", []
    before = sorted(tmp_path.iterdir())
    proc = packer_cli("export", source, "--to", out, *args)
    expected = message.format(out=out, missing=out.parent)
    assert (proc.returncode, proc.stderr) == (1, expected + "\n")
    assert sorted(tmp_path.iterdir()) == before
