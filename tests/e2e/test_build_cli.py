"""``packer build`` on the command line: bad input gets one line, exit 1, and nothing written."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import REPO, as_unprivileged, clean_env, cli, run

APP = {
    "pkg/__init__.py": "",
    "pkg/cli.py": "def main():\n    return 0\n",
}


def snapshot(*folders: Path) -> dict[str, bytes | None]:
    """Every file and folder under *folders*, with contents, to show nothing changed."""
    seen: dict[str, bytes | None] = {}
    for folder in folders:
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or path.is_dir():
                seen[str(path)] = None
            elif path.is_file():
                seen[str(path)] = path.read_bytes()
            else:
                seen[str(path)] = b"<special>"
    return seen


def assert_refused(code: int, stdout: str, stderr: str, *needles: str) -> None:
    assert code == 1, (stdout, stderr)
    assert stdout == ""
    assert stderr.startswith("packer: ")
    assert stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in stderr


@pytest.fixture
def app(make_tree: Callable[..., Path]) -> Path:
    return make_tree(APP)


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def test_build_summary_and_verbose_listing(app: Path, outdir: Path) -> None:
    code, stdout, stderr = cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main", "-v")
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert "  pkg/cli.py" in lines and "  _packer/manifest.json" in lines
    assert lines[-1].startswith("a.pyz: ") and "members" in lines[-1] and "build " in lines[-1]
    code, stdout, stderr = cli("build", app, "-o", outdir / "b.pyz", "-m", "pkg.cli:main", "-q")
    assert (code, stdout, stderr) == (0, "", "")


def test_python_dash_m_packer_and_version() -> None:
    proc = run([sys.executable, "-m", "packer", "--version"], env=clean_env(PYTHONPATH=str(REPO)))
    assert proc.returncode == 0
    assert proc.stdout.startswith("packer, version ")


def test_missing_source(tmp_path: Path, outdir: Path) -> None:
    before = snapshot(tmp_path)
    assert_refused(*cli("build", tmp_path / "nope", "-o", outdir / "a.pyz"), "no such folder")
    assert snapshot(tmp_path) == before


def test_source_is_a_file(tmp_path: Path, outdir: Path) -> None:
    (tmp_path / "file.py").write_text("x = 1\n")
    before = snapshot(tmp_path)
    assert_refused(*cli("build", tmp_path / "file.py", "-o", outdir / "a.pyz"), "not a folder")
    assert snapshot(tmp_path) == before


def test_empty_source(tmp_path: Path, outdir: Path) -> None:
    (tmp_path / "empty").mkdir()
    before = snapshot(tmp_path)
    assert_refused(
        *cli("build", tmp_path / "empty", "-o", outdir / "a.pyz", "-m", "x"), "nothing to pack"
    )
    assert snapshot(tmp_path) == before


def test_source_with_only_junk_is_empty(make_tree: Callable[..., Path], outdir: Path) -> None:
    src = make_tree({"__pycache__/x.pyc": b"", ".DS_Store": b""})
    assert_refused(*cli("build", src, "-o", outdir / "a.pyz", "-m", "x"), "nothing to pack")
    assert list(outdir.iterdir()) == []


def _build_as_a_user(app: Path, outdir: Path) -> tuple[int, str, str]:
    command: list[str] = [
        sys.executable,
        "-m",
        "packer",
        "build",
        str(app),
        "-o",
        str(outdir / "a.pyz"),
        "-m",
        "pkg.cli:main",
    ]
    proc = run(as_unprivileged(command), env=clean_env(PYTHONPATH=str(REPO)))
    return proc.returncode, proc.stdout, proc.stderr


def test_unreadable_file(app: Path, outdir: Path) -> None:
    secret = app / "pkg" / "secret.txt"
    secret.write_text("secret")
    secret.chmod(0)
    assert_refused(*_build_as_a_user(app, outdir), "secret.txt", "ermission denied")
    assert list(outdir.iterdir()) == []


def test_unreadable_folder_is_named_as_itself(app: Path, outdir: Path) -> None:
    locked = app / "pkg" / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        code, stdout, stderr = _build_as_a_user(app, outdir)
    finally:
        locked.chmod(0o755)
    assert_refused(code, stdout, stderr, f"{locked}: cannot list folder", "ermission denied")
    assert ".gitignore" not in stderr
    assert list(outdir.iterdir()) == []


def test_broken_symlink(app: Path, outdir: Path) -> None:
    (app / "dangling").symlink_to(app / "does-not-exist")
    before = snapshot(app)
    assert_refused(
        *cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main"),
        "dangling",
        "broken symbolic link",
    )
    assert list(outdir.iterdir()) == [] and snapshot(app) == before


def test_symlink_outside_refused_unless_followed(app: Path, tmp_path: Path, outdir: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "lib.py").write_text("X = 1\n")
    (app / "lib").symlink_to(tmp_path / "elsewhere")
    assert_refused(
        *cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main"),
        "leads outside",
        "--follow-symlinks",
    )
    assert list(outdir.iterdir()) == []
    code, _, stderr = cli(
        "build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main", "--follow-symlinks"
    )
    assert code == 0, stderr


def test_fifo_and_socket_are_skipped_with_a_warning(app: Path, outdir: Path) -> None:
    os.mkfifo(app / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(app / "sock"))
        code, _, stderr = cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main")
    finally:
        sock.close()
    assert code == 0, stderr
    warnings = stderr.splitlines()
    assert any("pipe" in w and "skipped" in w for w in warnings)
    assert any("sock" in w and "skipped" in w for w in warnings)
    assert all(w.startswith("packer: warning: ") for w in warnings)
    assert (outdir / "a.pyz").is_file()


def test_file_name_not_utf8(app: Path, outdir: Path) -> None:
    bad = os.path.join(os.fsencode(app), b"bad\xff.py")
    with open(bad, "wb") as fp:
        fp.write(b"x = 1\n")
    assert_refused(
        *cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main"),
        "not valid UTF-8",
        "bad\\xff.py",
    )
    assert list(outdir.iterdir()) == []


def test_entry_module_missing(app: Path, outdir: Path) -> None:
    assert_refused(
        *cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.nope:main"),
        "module 'pkg.nope' is not in",
    )
    assert list(outdir.iterdir()) == []


def test_entry_function_missing(app: Path, outdir: Path) -> None:
    assert_refused(
        *cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:start"),
        "does not define 'start'",
    )
    assert list(outdir.iterdir()) == []


def test_malformed_entry(app: Path, outdir: Path) -> None:
    assert_refused(
        *cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg/cli.py"),
        "expected 'package.module:function'",
    )
    assert list(outdir.iterdir()) == []


def test_no_entry_at_all(app: Path, outdir: Path) -> None:
    assert_refused(*cli("build", app, "-o", outdir / "a.pyz"), "no entry point")
    assert list(outdir.iterdir()) == []


def test_main_py_and_entry_both_given_is_refused(app: Path, outdir: Path) -> None:
    (app / "__main__.py").write_text("print('main')\n")
    assert_refused(
        *cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main"),
        "__main__.py exists",
        "--exclude __main__.py",
    )
    assert list(outdir.iterdir()) == []
    code, _, stderr = cli(
        "build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main", "--exclude", "/__main__.py"
    )
    assert code == 0, stderr


def test_output_folder_missing(app: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    assert_refused(
        *cli("build", app, "-o", tmp_path / "no" / "such" / "a.pyz", "-m", "pkg.cli:main"),
        "does not exist",
    )
    assert snapshot(tmp_path) == before


def test_output_is_a_folder(app: Path, outdir: Path) -> None:
    assert_refused(*cli("build", app, "-o", outdir, "-m", "pkg.cli:main"), "is a folder")


def test_output_inside_source_is_refused_unless_excluded(app: Path) -> None:
    before = snapshot(app)
    assert_refused(
        *cli("build", app, "-o", app / "app.pyz", "-m", "pkg.cli:main"),
        "inside the source folder",
    )
    assert snapshot(app) == before
    assert_refused(
        *cli("build", app, "-o", app / "pkg" / "app.pyz", "-m", "pkg.cli:main"),
        "inside the source folder",
    )
    (app / "dist").mkdir()
    code, _, stderr = cli(
        "build", app, "-o", app / "dist" / "app.pyz", "-m", "pkg.cli:main", "--exclude", "dist/"
    )
    assert code == 0, stderr
    # A second build with the first output in place does not pack it.
    code, stdout, stderr = cli(
        "build",
        app,
        "-o",
        app / "dist" / "app.pyz",
        "-m",
        "pkg.cli:main",
        "--exclude",
        "dist/",
        "-v",
    )
    assert code == 0 and "dist/" not in stdout


def test_existing_output_untouched_on_refusal(app: Path, outdir: Path) -> None:
    (outdir / "a.pyz").write_bytes(b"old")
    assert_refused(*cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.nope:main"))
    assert (outdir / "a.pyz").read_bytes() == b"old"
    assert [p.name for p in outdir.iterdir()] == ["a.pyz"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--requires-python", ">=three"], "requires-python"),
        (["-p", "/usr/bin/python3\nrm -rf /"], "one non-empty line"),
    ],
)
def test_bad_option_values(app: Path, outdir: Path, args: list[str], needle: str) -> None:
    assert_refused(*cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main", *args), needle)
    assert list(outdir.iterdir()) == []


def test_bad_config_key_names_the_key(app: Path, outdir: Path) -> None:
    (app / "pyproject.toml").write_text('[tool.packer]\nentry = "pkg.cli:main"\nshebnag = false\n')
    assert_refused(*cli("build", app, "-o", outdir / "a.pyz"), "unknown key 'shebnag'")
    (app / "pyproject.toml").write_text("[tool.packer\n")
    assert_refused(*cli("build", app, "-o", outdir / "a.pyz"), "invalid TOML")
    assert_refused(
        *cli("build", app, "-o", outdir / "a.pyz", "--config", app / "missing.toml"),
        "missing.toml: no such TOML file",
    )
    assert list(outdir.iterdir()) == []


@pytest.mark.parametrize("value", ["yesterday", "1e20", str(10**20), "-5"])
def test_bad_source_date_epoch(
    app: Path, outdir: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    assert_refused(
        *cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main"), "SOURCE_DATE_EPOCH"
    )
    assert list(outdir.iterdir()) == []


def test_a_sign_key_that_is_a_folder_is_refused_before_building(
    app: Path, outdir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("cryptography")
    (tmp_path / "keys").mkdir()
    assert_refused(
        *cli(
            "build",
            app,
            "-o",
            outdir / "a.pyz",
            "-m",
            "pkg.cli:main",
            "--sign-key",
            tmp_path / "keys",
        ),
        "is a folder, not a key file",
    )
    assert list(outdir.iterdir()) == []


def test_an_ignored_file_inside_the_source_is_never_overwritten(app: Path) -> None:
    (app / ".gitignore").write_text("secrets.env\n")
    (app / "secrets.env").write_text("TOKEN=1\n")
    assert_refused(
        *cli("build", app, "-o", app / "secrets.env", "-m", "pkg.cli:main"),
        "is not an archive packer wrote; not overwritten",
    )
    assert (app / "secrets.env").read_text() == "TOKEN=1\n"
    # An archive packer wrote there before is replaced, as a rebuild should.
    (app / ".gitignore").write_text("secrets.env\napp.pyz\n")
    for _ in range(2):
        code, _, stderr = cli("build", app, "-o", app / "app.pyz", "-m", "pkg.cli:main")
        assert code == 0, stderr


def test_temporary_files_of_a_killed_build_are_removed(app: Path, outdir: Path) -> None:
    import fcntl

    stale = outdir / ".a.pyz.abc123.tmp"
    stale.write_bytes(b"half an archive")
    live = outdir / ".a.pyz.def456.tmp"  # a build still writing: it holds the lock
    live.write_bytes(b"being written")
    with live.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        code, _, stderr = cli("build", app, "-o", outdir / "a.pyz", "-m", "pkg.cli:main")
        assert code == 0, stderr
        assert sorted(p.name for p in outdir.iterdir()) == [live.name, "a.pyz"]


def test_bad_flag_is_a_usage_error(app: Path) -> None:
    code, _, stderr = cli("build", app, "--compression-level", "12")
    assert code == 2 and "compression-level" in stderr
