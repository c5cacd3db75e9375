"""packer.build through the API: what goes in, the format, reproducibility, atomicity."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import packer_cli, run, write_tree

import packer
from packer._runtime.format import MANIFEST_NAME, open_archive

APP = {
    "pkg/__init__.py": "",
    "pkg/cli.py": "import sys\n\ndef main():\n    print('hi', *sys.argv[1:])\n    return 0\n",
    "pkg/data/table.txt": "one\ntwo\n",
    "nspkg/part.py": "PART = 1\n",
    "tool.sh": "#!/bin/sh\necho tool\n",
}


def members(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def test_build_packs_project_files_runtime_stub_and_manifest(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree(APP)
    result = packer.build(src, tmp_path / "app.pyz", entry="pkg.cli:main")
    names = members(result.output)
    # Source only by default (modules compile at their first import, into the runtime
    # cache), but for the runtime, which zipimport loads before that cache can serve.
    assert "pkg/cli.pyc" not in names and "__main__.pyc" not in names
    for expected in (
        "__main__.py",
        "_packer/manifest.json",
        "_packer_runtime/__init__.py",
        "_packer_runtime/__init__.pyc",
        "pkg/cli.py",
        "pkg/data/table.txt",
        "tool.sh",
        "nspkg/",
    ):
        assert expected in names
    # A package is found through its __init__.py, and a folder with no Python below it is no
    # package: their folder entries would be dead weight. A namespace package needs its own.
    assert "pkg/" not in names and "_packer_runtime/" not in names and "pkg/data/" not in names
    assert "_packer/" not in names
    assert names == sorted(names), "central directory is sorted"
    assert len(names) == len(set(names))
    assert result.members == len([n for n in names if not n.endswith("/")])
    assert result.entry == "pkg.cli:main"
    assert len(result.build_id) == 16


def test_manifest_records_every_member_with_hash_and_size(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree(APP)
    result = packer.build(src, tmp_path / "app.pyz", entry="pkg.cli:main", requires_python=">=3.9")
    with zipfile.ZipFile(result.output) as zf:
        manifest = json.loads(zf.read(MANIFEST_NAME))
        files = [n for n in zf.namelist() if not n.endswith("/") and n != MANIFEST_NAME]
        assert sorted(manifest["members"]) == sorted(files)
        for name in files:
            data = zf.read(name)
            assert manifest["members"][name] == {
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
    assert manifest["format"] == 2
    assert manifest["entry"] == {"kind": "callable", "value": "pkg.cli:main"}
    assert manifest["interpreter"] == "/usr/bin/env python3"
    assert manifest["requires_python"] == ">=3.9"
    assert manifest["packer_version"] == packer.__version__
    assert manifest["build_id"] == result.build_id
    assert manifest["created"] is None


def test_digest_in_comment_covers_the_body(make_tree: Callable[..., Path], tmp_path: Path) -> None:
    src = make_tree(APP)
    result = packer.build(src, tmp_path / "app.pyz", entry="pkg.cli:main")
    with open_archive(str(result.output)) as archive:
        assert archive.layout.seal is not None
        assert archive.layout.seal.digest == result.digest == archive.digest()
    # Flip one byte inside a member: the recorded digest no longer matches.
    data = bytearray(result.output.read_bytes())
    where = data.index(b"one\ntwo") if b"one\ntwo" in data else len(data) // 2
    data[where] ^= 0xFF
    broken = tmp_path / "broken.pyz"
    broken.write_bytes(bytes(data))
    with open_archive(str(broken)) as archive:
        assert archive.layout.seal is not None
        assert archive.digest() != archive.layout.seal.digest


def test_bytecode_is_hash_based_unchecked_for_this_interpreter(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree(APP)
    result = packer.build(src, tmp_path / "app.pyz", entry="pkg.cli:main", compile=True)
    with zipfile.ZipFile(result.output) as zf:
        assert "__main__.pyc" in zf.namelist()
        pyc = zf.read("pkg/cli.pyc")
        source = zf.read("pkg/cli.py")
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked
    assert pyc[8:16] == importlib.util.source_hash(source)


def test_no_compile_stores_sources_only(make_tree: Callable[..., Path], tmp_path: Path) -> None:
    src = make_tree(APP)
    result = packer.build(src, tmp_path / "app.pyz", entry="pkg.cli:main", compile=False)
    compiled = [n for n in members(result.output) if n.endswith(".pyc")]
    # Only packer's runtime, which zipimport loads before any cache could serve it.
    assert compiled and all(n.startswith("_packer_runtime/") for n in compiled), compiled


def test_syntax_error_ships_source_with_a_warning(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree({**APP, "pkg/broken.py": "def (:\n"})
    result = packer.build(src, tmp_path / "app.pyz", entry="pkg.cli:main", compile=True)
    names = members(result.output)
    assert "pkg/broken.py" in names and "pkg/broken.pyc" not in names
    assert any("pkg/broken.py" in w and "syntax error" in w for w in result.warnings)


def test_compression_choices(make_tree: Callable[..., Path], tmp_path: Path) -> None:
    src = make_tree({**APP, "big.txt": "x" * 100_000, "noise.bin": os.urandom(50_000)})
    packed = packer.build(src, tmp_path / "a.pyz", entry="pkg.cli:main")
    plain = packer.build(src, tmp_path / "b.pyz", entry="pkg.cli:main", compress=False)
    with zipfile.ZipFile(packed.output) as zf:
        assert zf.getinfo("big.txt").compress_type == zipfile.ZIP_DEFLATED
        # Incompressible data is stored rather than made bigger.
        assert zf.getinfo("noise.bin").compress_type == zipfile.ZIP_STORED
    with zipfile.ZipFile(plain.output) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    assert packed.size < plain.size


def test_permissions_and_timestamps_are_normalised(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree(APP)
    (src / "tool.sh").chmod(0o700)
    (src / "pkg/cli.py").chmod(0o600)
    result = packer.build(src, tmp_path / "app.pyz", entry="pkg.cli:main")
    with zipfile.ZipFile(result.output) as zf:
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert modes["tool.sh"] == stat.S_IFREG | 0o755
    assert modes["pkg/cli.py"] == stat.S_IFREG | 0o644
    assert modes["nspkg/"] == stat.S_IFDIR | 0o755


def test_source_date_epoch_sets_the_recorded_time(
    make_tree: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_tree(APP)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result = packer.build(src, tmp_path / "app.pyz", entry="pkg.cli:main")
    with zipfile.ZipFile(result.output) as zf:
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}
        assert json.loads(zf.read(MANIFEST_NAME))["created"] == "2023-11-14T22:13:20Z"


def _touch_everything(root: Path, when: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.utime(path, (when, when))


def test_rebuilds_are_byte_identical(make_tree: Callable[..., Path], tmp_path: Path) -> None:
    src = make_tree({**APP, **{f"pkg/m{i}.py": f"X = {i}\n" for i in range(30)}})
    (src / "tool.sh").chmod(0o755)
    first = packer.build(src, tmp_path / "one.pyz", entry="pkg.cli:main").output.read_bytes()
    _touch_everything(src, 2_000_000_000)
    (src / "tool.sh").chmod(0o751)  # still executable: same normalised mode
    second = packer.build(src, tmp_path / "two.pyz", entry="pkg.cli:main").output.read_bytes()
    elsewhere = tmp_path / "deeper" / "checkout" / "copy"
    shutil.copytree(src, elsewhere)
    _touch_everything(elsewhere, 1_234_567_890)
    old = os.umask(0o077)
    try:
        third = packer.build(
            elsewhere, tmp_path / "three.pyz", entry="pkg.cli:main"
        ).output.read_bytes()
    finally:
        os.umask(old)
    assert first == second == third


def test_rebuild_in_a_fresh_process_is_byte_identical(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    """Bytecode from another process (other hash seed, other interned strings) is the same."""
    src = make_tree(
        {**APP, "pkg/sets.py": "def f(x):\n    return x in {'alpha', 'beta', 'gamma', 'delta'}\n"}
    )
    here = packer.build(src, tmp_path / "here.pyz", entry="pkg.cli:main").output.read_bytes()
    for seed in ("1", "2"):
        out = tmp_path / f"there{seed}.pyz"
        proc = packer_cli("build", src, "-o", out, "-m", "pkg.cli:main", "-q", PYTHONHASHSEED=seed)
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == here


def test_walk_leaves_out_junk_and_respects_gitignore(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree(
        {
            **APP,
            ".gitignore": "*.log\n/build/\nsecret*\n!secret_ok.txt\n",
            "pkg/.gitignore": "local.py\n",
            "pkg/local.py": "",
            "pkg/keep.py": "",
            "app.log": "",
            "build/out.txt": "",
            "secret.txt": "",
            "secret_ok.txt": "",
            "pkg/__pycache__/cli.cpython-311.pyc": b"junk",
            "pkg/stale.pyc": b"junk",
            ".DS_Store": b"",
            "pkg/cli.py~": "",
            "pkg/.cli.py.swp": "",
            ".git/config": "",
            "venv/pyvenv.cfg": "home = /usr\n",
            "venv/lib/x.py": "",
        }
    )
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    names = members(packer.build(src, tmp_path / "app.pyz", entry="pkg.cli:main").output)
    for absent in (
        "app.log",
        "build/out.txt",
        "secret.txt",
        "pkg/local.py",
        "pkg/stale.pyc",
        ".DS_Store",
        "pkg/cli.py~",
        "pkg/.cli.py.swp",
        ".git/config",
        "venv/lib/x.py",
    ):
        assert absent not in names
    assert not [n for n in names if "__pycache__" in n]
    for present in ("secret_ok.txt", "pkg/keep.py", ".gitignore"):
        assert present in names


def test_gitignore_above_the_source_folder_counts_inside_a_work_tree(tmp_path: Path) -> None:
    repo = write_tree(
        tmp_path / "repo",
        {
            ".gitignore": "*.tmp\napp/generated/\n",
            "app/main.py": "print('x')\n",
            "app/scratch.tmp": "",
            "app/generated/g.py": "",
        },
    )
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    names = members(packer.build(repo / "app", tmp_path / "app.pyz", entry="main").output)
    assert "main.py" in names
    assert "scratch.tmp" not in names and "generated/g.py" not in names
    names = members(
        packer.build(repo / "app", tmp_path / "all.pyz", entry="main", gitignore=False).output
    )
    assert "scratch.tmp" in names and "generated/g.py" in names


def test_include_and_exclude(make_tree: Callable[..., Path], tmp_path: Path) -> None:
    src = make_tree({**APP, "docs/a.md": "", "tests/test_x.py": "", "pkg/notes.md": ""})
    names = members(
        packer.build(
            src, tmp_path / "a.pyz", entry="pkg.cli:main", exclude=["tests/", "*.md"]
        ).output
    )
    assert (
        "tests/test_x.py" not in names and "docs/a.md" not in names and "pkg/notes.md" not in names
    )
    names = members(
        packer.build(src, tmp_path / "b.pyz", entry="pkg.cli:main", include=["pkg/**"]).output
    )
    project = [
        n for n in names if not n.startswith(("_packer", "__main__")) and not n.endswith("/")
    ]
    assert project and all(n.startswith("pkg/") for n in project)
    # A folder pattern takes in everything under the folder, as in .gitignore; a file
    # pattern after it can still leave one out.
    for include in (["pkg/"], ["/pkg"], ["pkg"]):
        got = members(
            packer.build(src, tmp_path / "c.pyz", entry="pkg.cli:main", include=include).output
        )
        assert {n for n in got if n.startswith("pkg/")} == {
            n for n in names if n.startswith("pkg/")
        }, include
        assert "docs/a.md" not in got and "tests/test_x.py" not in got
    got = members(
        packer.build(
            src, tmp_path / "d.pyz", entry="pkg.cli:main", include=["pkg/", "!*.md"]
        ).output
    )
    assert "pkg/notes.md" not in got and "pkg/cli.py" in got


def test_symlinks_inside_are_followed_and_outside_need_permission(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree(APP)
    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    (src / "pkg" / "alias.txt").symlink_to("data/table.txt")
    names = members(packer.build(src, tmp_path / "a.pyz", entry="pkg.cli:main").output)
    assert "pkg/alias.txt" in names
    (src / "link.txt").symlink_to(outside)
    with pytest.raises(packer.SourceError, match="leads outside the source folder"):
        packer.build(src, tmp_path / "b.pyz", entry="pkg.cli:main")
    assert not (tmp_path / "b.pyz").exists()
    result = packer.build(src, tmp_path / "c.pyz", entry="pkg.cli:main", follow_symlinks=True)
    with zipfile.ZipFile(result.output) as zf:
        assert zf.read("link.txt") == b"outside\n"


def test_config_from_pyproject_and_flags_override(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree(
        {
            **APP,
            "pyproject.toml": (
                '[project]\nname = "x"\nrequires-python = ">=3.8"\n'
                '[tool.packer]\nproject = false\nentry = "pkg.cli:main"\n'
                'output = "../from-config.pyz"\n'
                'python = "/opt/python"\nexclude = ["tool.sh"]\n'
            ),
        }
    )
    result = packer.build(src)
    assert result.output == tmp_path / "from-config.pyz"
    with zipfile.ZipFile(result.output) as zf:
        manifest = json.loads(zf.read(MANIFEST_NAME))
        assert "tool.sh" not in zf.namelist()
    assert manifest["interpreter"] == "/opt/python"
    assert manifest["requires_python"] == ">=3.8"
    assert result.output.read_bytes().startswith(b"#!/opt/python\n")
    override = packer.build(
        src, tmp_path / "flag.pyz", python="/usr/bin/python3", requires_python=">=3.10"
    )
    assert override.output.read_bytes().startswith(b"#!/usr/bin/python3\n")


def test_config_file_option_and_unknown_keys(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree(APP)
    good = tmp_path / "packer.toml"
    good.write_text('entry = "pkg.cli:main"\ncompile = false\n')
    result = packer.build(src, tmp_path / "a.pyz", config=good)
    assert not [n for n in members(result.output) if n.endswith(".pyc") and n.startswith("pkg/")]
    bad = tmp_path / "bad.toml"
    bad.write_text('entry = "pkg.cli:main"\ncompresion = false\n')
    with pytest.raises(packer.ConfigError, match="unknown key 'compresion'"):
        packer.build(src, tmp_path / "b.pyz", config=bad)
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text('compile = "yes"\n')
    with pytest.raises(packer.ConfigError, match="compile must be true or false"):
        packer.build(src, tmp_path / "c.pyz", config=wrong_type)
    assert not (tmp_path / "b.pyz").exists() and not (tmp_path / "c.pyz").exists()


def test_output_defaults_to_source_name_beside_it(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree({"__main__.py": "print('main')\n"}, name="myapp")
    result = packer.build(src)
    assert result.output == tmp_path / "myapp.pyz"
    assert result.entry == "__main__.py"


def test_parallel_and_sequential_builds_are_identical(
    make_tree: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import concurrent.futures

    from packer.members import PARALLEL_THRESHOLD

    submitted: list[int] = []

    class Counting(concurrent.futures.ProcessPoolExecutor):
        def submit(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            submitted.append(1)
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Counting)

    # Enough source that the build fans out to worker processes.
    body = "".join(f"def f{i}(x):\n    return x * {i} + {i}\n" for i in range(400))
    files = {f"pkg/m{i}.py": body + f"NAME = 'm{i}'\n" for i in range(80)}
    assert sum(len(v) for v in files.values()) * 10 > PARALLEL_THRESHOLD
    src = make_tree({**APP, **files})
    one = packer.build(src, tmp_path / "one.pyz", entry="pkg.cli:main", jobs=1, compile=True)
    assert submitted == [], "jobs=1 produces every member in this process"
    two = packer.build(src, tmp_path / "two.pyz", entry="pkg.cli:main", jobs=2, compile=True)
    assert len(submitted) >= 2, "jobs=2 hands batches to worker processes"
    assert one.output.read_bytes() == two.output.read_bytes()
    with pytest.raises(packer.ConfigError, match="jobs must be at least 1"):
        packer.build(src, tmp_path / "zero.pyz", entry="pkg.cli:main", jobs=0)


def test_the_installer_is_injectable(make_tree: Callable[..., Path], tmp_path: Path) -> None:
    # No pip and no network: an installer that lays out one distribution as pip would.
    def install(requirements: object, specs: object, options: object, target: Path) -> None:
        assert specs == ("greet==1.0",)
        (target / "greet").mkdir()
        (target / "greet" / "__init__.py").write_text("def hello():\n    return 'hi'\n")
        info = target / "greet-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: greet\nVersion: 1.0\n")
        (info / "RECORD").write_text("greet/__init__.py,,\ngreet-1.0.dist-info/METADATA,,\n")

    src = make_tree({"app.py": "import greet\n\ndef main():\n    print(greet.hello())\n"})
    result = packer.build(
        src, tmp_path / "a.pyz", entry="app:main", with_packages=["greet==1.0"], installer=install
    )
    assert result.distributions == (("greet", "1.0", False),)
    assert "_packer/site-packages/greet/__init__.py" in result.names
    proc = run([result.output])
    assert (proc.returncode, proc.stdout) == (0, "hi\n"), proc.stderr
