"""What is extracted before it runs (native code, distributions that read files by path) is
written as one pack per distribution: zipimport reads one record for it, and every tool shows
its files as before."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from helpers import clean_env, packer_cli, run
from wheels import FASTC, GREET_FILES, build_offline

APP = {
    "app/__init__.py": "",
    "app/cli.py": ("import greet\n\ndef main():\n    print(greet.hello(), greet.__file__)\n"),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    greet = ("greet", "1.0", GREET_FILES, "")
    return build_offline(tmp_path_factory.mktemp("packs"), APP, [greet, FASTC], "-m",
                         "app.cli:main", "--extract", "greet")  # fmt: skip


def test_each_extracted_distribution_is_one_zip_record(built: Path) -> None:
    with zipfile.ZipFile(built) as zf:
        names = zf.namelist()
        packs = sorted(n for n in names if n.startswith("_packer/packs/"))
        assert packs == ["_packer/packs/fastc-1.0.zip", "_packer/packs/greet-1.0.zip"]
        assert not [n for n in names if n.startswith("_packer/native/")]
        assert all(zf.getinfo(n).compress_type == zipfile.ZIP_STORED for n in packs)
    proc = packer_cli("info", built)
    assert proc.returncode == 0, proc.stderr
    assert f"(zip records: {len(names)}; packs: {', '.join(packs)})" in proc.stdout


def test_the_tools_show_a_packs_files_under_their_folder(built: Path, tmp_path: Path) -> None:
    listed = packer_cli("list", built)
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.splitlines()
    assert "_packer/native/fastc-1.0/fastc/_speed.so" in names
    assert "_packer/native/greet-1.0/greet/data.txt" in names
    assert not [n for n in names if n.startswith("_packer/packs/")]
    checked = packer_cli("verify", built)
    assert checked.returncode == 0 and checked.stdout.startswith(f"{built.name}: OK"), checked
    dest = tmp_path / "out"
    assert packer_cli("extract", built, dest).returncode == 0
    assert (dest / "_packer/native/fastc-1.0/fastc/_speed.so").read_text() == "x"
    plain = tmp_path / "plain.zip"
    assert packer_cli("convert", built, "--to", "zip", "-o", plain).returncode == 0
    with zipfile.ZipFile(plain) as zf:
        assert "_packer/native/greet-1.0/greet/data.txt" in zf.namelist()


def test_it_runs_from_what_the_pack_held(built: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for _ in range(2):  # extracted, then from the cache
        proc = run([built], env=clean_env(PACKER_CACHE=str(cache)))
        assert proc.returncode == 0, proc.stderr
        text, _, path = proc.stdout.strip().rpartition(" ")
        assert text == "hello from greet", proc.stdout
        assert path.startswith(str(cache)) and path.endswith("/greet/__init__.py"), path


def test_a_rebuild_is_identical(built: Path, tmp_path: Path) -> None:
    root = built.parent
    again = tmp_path / "again.pyz"
    proc = packer_cli("build", root / "src", "-o", again, "-m", "app.cli:main", "--with",
                      "greet", "--with", "fastc", "--extract", "greet", "--no-index",
                      "--find-links", root / "wheels", "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert again.read_bytes() == built.read_bytes()
    diff = packer_cli("diff", built, again)
    assert diff.returncode == 0, diff.stdout


def test_a_pack_too_large_is_one_line_and_writes_nothing(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import packer
    from packer import zipwriter

    root = built.parent
    monkeypatch.setattr(zipwriter, "PACK_LIMIT", 100)
    out = tmp_path / "big.pyz"
    with pytest.raises(packer.BuildError) as caught:
        packer.build(root / "src", out, entry="app.cli:main", with_packages=["fastc"],
                     no_index=True, find_links=[str(root / "wheels")])  # fmt: skip
    assert str(caught.value) == (
        "_packer/native/fastc-1.0: its files take 4 GiB or more packed; packer cannot store "
        "a distribution that large"
    )
    assert list(tmp_path.iterdir()) == []
