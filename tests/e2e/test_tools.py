"""info, list, verify, extract, convert, diff and PACKER_TOOLS: on packer, shiv, pex and stdlib
zipapp archives built here, and on damaged and hostile ones."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import clean_env, cli, run, write_tree
from rawzip import Raw, manifest_member, sealed_archive

import packer
from packer.cli import main as cli_main

APP = {
    "tool/__init__.py": "",
    "tool/cli.py": "import sys\n\ndef main():\n    print('tool ran', sys.argv[1:])\n    return 0\n",
    "tool/data/table.txt": "a,b\n1,2\n",
    "bin/run.sh": "#!/bin/sh\necho run\n",
}


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_tree(tmp_path_factory.mktemp("toolbox") / "src", APP)
    (root / "bin" / "run.sh").chmod(0o755)
    return root


@pytest.fixture(scope="module")
def pyz(src: Path) -> Path:
    return packer.build(src, src.parent / "app.pyz", entry="tool.cli:main").output


@pytest.fixture(scope="module")
def peers(src: Path) -> dict[str, Path]:
    """The same code as a stdlib zipapp, a shiv and a pex, built with the real tools."""
    out = src.parent
    bindir = Path(sys.executable).parent
    made = {
        "zipapp": [sys.executable, "-m", "zipapp", src, "-m", "tool.cli:main", "-o", out / "z.pyz"],
        "shiv": [
            bindir / "shiv",
            "--site-packages",
            src,
            "-e",
            "tool.cli:main",
            "-o",
            out / "s.pyz",
        ],
        "pex": [sys.executable, "-m", "pex", "-D", src, "-e", "tool.cli:main", "-o", out / "p.pex"],
    }
    paths = {"zipapp": out / "z.pyz", "shiv": out / "s.pyz", "pex": out / "p.pex"}
    for kind, command in made.items():
        proc = run(command, timeout=300)
        assert proc.returncode == 0, (kind, proc.stderr)
    return paths


# --- info, list, verify on every kind --------------------------------------------------------


def test_info_of_a_packer_archive(pyz: Path) -> None:
    code, stdout, stderr = cli("info", pyz)
    assert code == 0, stderr
    assert "kind: packer" in stdout and "entry point: tool.cli:main" in stdout
    assert "digest: ok" in stdout and "interpreter: /usr/bin/env python3" in stdout
    code, stdout, _ = cli("info", pyz, "--json")
    data = json.loads(stdout)
    assert data["kind"] == "packer" and data["digest"]["status"] == "ok"
    assert data["build_id"] and data["packer_version"] == packer.__version__
    assert data["members"] > 5 and data["packed_size"] == pyz.stat().st_size


@pytest.mark.parametrize("kind", ["zipapp", "shiv", "pex"])
def test_info_list_verify_of_peer_archives(peers: dict[str, Path], kind: str) -> None:
    path = peers[kind]
    code, stdout, stderr = cli("info", path, "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["kind"] == kind
    if kind in ("shiv", "pex"):
        assert data["entry_point"] and "tool.cli" in data["entry_point"]
    code, stdout, _ = cli("list", path, "--json")
    assert code == 0 and any(row["name"].endswith("tool/cli.py") for row in json.loads(stdout))
    code, stdout, stderr = cli("verify", path)
    assert code == 0, stdout + stderr
    # Its CRCs hold, but with no digest to check against it is never called verified.
    assert f"readable, not verified ({kind} archive" in stdout
    assert "OK" not in stdout


def test_list_forms(pyz: Path) -> None:
    code, stdout, _ = cli("list", pyz)
    assert code == 0 and "tool/cli.py" in stdout.splitlines()
    code, stdout, _ = cli("list", pyz, "--long")
    assert any(
        line.split()[-1] == "bin/run.sh" and line.split()[0] == "755"
        for line in stdout.splitlines()
    )
    code, stdout, _ = cli("list", pyz, "--tree")
    assert "  cli.py" in stdout.splitlines() and "tool/" in stdout.splitlines()


def test_verify_ok_and_json(pyz: Path) -> None:
    code, stdout, _ = cli("verify", pyz)
    assert code == 0 and "OK (packer archive" in stdout
    assert "only a signature checked against a key you trust" in stdout
    code, stdout, _ = cli("verify", pyz, "--json")
    assert json.loads(stdout)["ok"] is True


def _flip(data: bytearray, needle: bytes, offset: int = 0) -> None:
    where = data.index(needle) + offset
    data[where] ^= 0x20


def test_verify_reports_every_problem(src: Path, tmp_path: Path) -> None:
    built = packer.build(src, tmp_path / "a.pyz", entry="tool.cli:main", compress=False).output
    data = bytearray(built.read_bytes())
    _flip(data, b"a,b\n1,2")  # a stored data member
    _flip(data, b"echo run")  # another one
    broken = tmp_path / "broken.pyz"
    broken.write_bytes(bytes(data))
    code, stdout, _ = cli("verify", broken)
    assert code == 1
    lines = stdout.splitlines()
    assert any("digest mismatch" in line for line in lines)
    assert any("tool/data/table.txt" in line for line in lines)
    assert any("bin/run.sh" in line for line in lines)
    assert "FAILED, 3 problems" in stdout


def test_verify_finds_missing_and_extra_members(tmp_path: Path) -> None:
    listed = [Raw("tool/data/table.txt", b"a,b\n"), Raw("tool/cli.py", b"print(1)\n")]
    present = [listed[1], Raw("smuggled.py", b"print('hi')\n")]
    members = sorted([*present, manifest_member(listed)], key=lambda m: m.raw_name)
    edited = tmp_path / "edited.pyz"
    edited.write_bytes(sealed_archive(members))
    code, stdout, _ = cli("verify", edited)
    assert code == 1
    assert "'tool/data/table.txt' is in the manifest but missing" in stdout
    assert "'smuggled.py' is not in the manifest" in stdout
    assert "FAILED, 2 problems" in stdout


def test_verify_lists_every_structural_problem(pyz: Path, tmp_path: Path) -> None:
    # zipfile rewrites it: no seal, extra bytes per member, a member out of order.
    edited = tmp_path / "edited.pyz"
    with zipfile.ZipFile(pyz) as zin, zipfile.ZipFile(edited, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        zout.writestr("smuggled.py", "print('hi')\n")
    code, stdout, _ = cli("verify", edited)
    assert code == 1
    assert "not in name order at 'smuggled.py'" in stdout
    assert "no packer seal" in stdout or "no digest" in stdout, stdout


# --- extract ----------------------------------------------------------------------------------


def test_extract_all_and_some(pyz: Path, tmp_path: Path) -> None:
    dest = tmp_path / "all"
    code, _stdout, stderr = cli("extract", pyz, dest)
    assert code == 0, stderr
    assert (dest / "tool" / "cli.py").read_text() == APP["tool/cli.py"]
    assert os.stat(dest / "bin" / "run.sh").st_mode & stat.S_IXUSR, "exec bits kept"
    # The extracted folder still runs, as a directory app.
    ran = run([sys.executable, dest, "x"])
    assert (ran.returncode, ran.stdout) == (0, "tool ran ['x']\n"), ran.stderr
    some = tmp_path / "some"
    code, _, _ = cli("extract", pyz, some, "tool/data")
    assert code == 0
    assert sorted(p.relative_to(some).as_posix() for p in some.rglob("*") if p.is_file()) == [
        "tool/data/table.txt"
    ]
    code, _, stderr = cli("extract", pyz, tmp_path / "none", "no/such/member")
    assert code == 1 and "no member 'no/such/member'" in stderr


def test_extract_does_not_overwrite_without_permission(pyz: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "tool").mkdir(parents=True)
    (dest / "tool" / "cli.py").write_text("mine")
    code, _, stderr = cli("extract", pyz, dest)
    assert code == 1 and "tool/cli.py exists; not overwritten (use --overwrite)" in stderr
    assert (dest / "tool" / "cli.py").read_text() == "mine"
    assert sorted(p.name for p in dest.rglob("*")) == ["cli.py", "tool"], "nothing else written"
    code, _, _ = cli("extract", pyz, dest, "--overwrite")
    assert code == 0 and (dest / "tool" / "cli.py").read_text() == APP["tool/cli.py"]


def _hostile_zip(path: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w") as zf:
            for name, data, mode in entries:
                info = zipfile.ZipInfo(name)
                info.external_attr = mode << 16
                zf.writestr(info, data)
    return path


FILE = stat.S_IFREG | 0o644
LINK = stat.S_IFLNK | 0o777


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([("ok.txt", b"x", FILE), ("/etc/evil", b"x", FILE)], "an absolute path"),
        ([("ok.txt", b"x", FILE), ("a/../../evil", b"x", FILE)], "a '..' part"),
        ([("ok.txt", b"x", FILE), ("a\\evil", b"x", FILE)], "a backslash"),
        ([("ok.txt", b"x", FILE), ("C:/evil", b"x", FILE)], "an absolute path"),
        ([("ok.txt", b"x", FILE), ("ok.txt", b"y", FILE)], "appears more than once"),
        ([("Readme.txt", b"x", FILE), ("README.txt", b"y", FILE)], "collide on a case-insensitive"),
        ([("ok.txt", b"x", FILE), ("link", b"../../outside", LINK)], "leads outside"),
        ([("ok.txt", b"x", FILE), ("link", b"/etc/passwd", LINK)], "is absolute"),
    ],
)
def test_extract_refuses_hostile_names_before_writing(
    tmp_path: Path, entries: list[tuple[str, bytes, int]], reason: str
) -> None:
    archive = _hostile_zip(tmp_path / "evil.zip", entries)
    dest = tmp_path / "dest"
    code, _, stderr = cli("extract", archive, dest)
    assert code == 1 and reason in stderr and stderr.count("\n") == 1, stderr
    assert not dest.exists() or list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip"] + (
        ["dest"] if dest.exists() else []
    )


def test_extract_refuses_nul_in_names(tmp_path: Path) -> None:
    archive = _hostile_zip(
        tmp_path / "evil.zip", [("ok.txt", b"x", FILE), ("evilXname", b"x", FILE)]
    )
    raw = archive.read_bytes().replace(b"evilXname", b"evil\x00name")
    archive.write_bytes(raw)
    code, _, stderr = cli("extract", archive, tmp_path / "dest")
    assert code == 1 and "NUL" in stderr
    assert not (tmp_path / "dest").exists()


def test_extract_refuses_a_destination_through_a_symlink(pyz: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    code, _, stderr = cli("extract", pyz, tmp_path / "link" / "dest")
    assert code == 1 and "passes through a symlink" in stderr
    assert list(elsewhere.iterdir()) == []


def test_extract_refuses_writing_through_an_existing_symlink_inside_dest(
    pyz: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dest / "tool").symlink_to(elsewhere)
    code, _, stderr = cli("extract", pyz, dest, "--overwrite")
    assert code == 1 and "is a symlink already in the destination; not followed" in stderr
    assert list(elsewhere.iterdir()) == []


def test_zip_bomb_limits(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 50_000_000)
    for command in ("info", "list", "extract"):
        args = [command, bomb] + ([tmp_path / "out"] if command == "extract" else [])
        code, _, stderr = cli(*args)
        assert code == 1 and "expands" in stderr and "limit" in stderr, (command, stderr)
    assert not (tmp_path / "out").exists()
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(50):
            zf.writestr(f"f{i}", b"x")
    code, _, stderr = cli("list", many, "--max-members", "10")
    assert code == 1 and "50 members, more than the limit of 10" in stderr
    code, _, stderr = cli("extract", many, tmp_path / "out", "--max-size", "20")
    assert code == 1 and "more than the limit of 20" in stderr
    assert not (tmp_path / "out").exists()
    code, _, _ = cli("list", bomb, "--max-ratio", "100000")
    assert code == 0
    # convert and diff take the same limits.
    code, _, stderr = cli("convert", many, "--to", "zip", "-o", tmp_path / "c.zip",
                          "--max-members", "10")  # fmt: skip
    assert code == 1 and "more than the limit of 10" in stderr and not (tmp_path / "c.zip").exists()
    code, _, stderr = cli("diff", many, many, "--max-size", "20")
    assert code == 1 and "more than the limit of 20" in stderr
    assert cli("diff", many, many)[0] == 0


# --- convert and diff -------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_convert_to_zip_runs_and_lists_without_warnings(pyz: Path, tmp_path: Path) -> None:
    before = _sha(pyz)
    out = tmp_path / "plain.zip"
    code, _, stderr = cli("convert", pyz, "--to", "zip", "-o", out)
    assert code == 0, stderr
    assert out.read_bytes()[:4] == b"PK\x03\x04"
    if shutil.which("unzip"):
        tested = run(["unzip", "-t", out])
        assert tested.returncode == 0 and "extra bytes" not in tested.stdout + tested.stderr
        assert tested.stderr == ""
    ran = run([sys.executable, out, "z"])
    assert (ran.returncode, ran.stdout) == (0, "tool ran ['z']\n"), ran.stderr
    assert cli("verify", out)[0] == 0
    assert json.loads(cli("info", out, "--json")[1])["interpreter"] is None
    assert _sha(pyz) == before, "the input is never modified"


def test_convert_to_pyz_sets_the_shebang(pyz: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.zip"
    assert cli("convert", pyz, "--to", "zip", "-o", plain)[0] == 0
    out = tmp_path / "again.pyz"
    code, _, stderr = cli("convert", plain, "--to", "pyz", "-o", out, "-p", sys.executable)
    assert code == 0, stderr
    assert out.read_bytes().startswith(b"#!" + sys.executable.encode() + b"\n")
    ran = run([out, "y"])
    assert (ran.returncode, ran.stdout) == (0, "tool ran ['y']\n"), ran.stderr
    assert cli("verify", out)[0] == 0
    # Back to the default interpreter line: the same bytes as the original build.
    back = tmp_path / "back.pyz"
    assert cli("convert", plain, "--to", "pyz", "-o", back, "-p", "/usr/bin/env python3")[0] == 0
    assert cli("diff", pyz, back)[0] == 0


def test_convert_to_tar_is_reproducible(pyz: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one.tar.gz", tmp_path / "two.tar.gz"
    assert cli("convert", pyz, "--to", "tar", "-o", one)[0] == 0
    assert cli("convert", pyz, "--to", "tar", "-o", two)[0] == 0
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        names = tar.getnames()
        assert "tool/cli.py" in names
        assert tar.getmember("bin/run.sh").mode & 0o111
        member = tar.extractfile("tool/data/table.txt")
        assert member is not None and member.read() == b"a,b\n1,2\n"


def test_convert_refuses_bad_requests(pyz: Path, tmp_path: Path) -> None:
    code, _, stderr = cli("convert", pyz, "--to", "zip", "-o", pyz)
    assert code == 1 and "overwrite the input" in stderr
    code, _, stderr = cli("convert", pyz, "--to", "zip", "-o", tmp_path / "x.zip", "-p", "/bin/py")
    assert code == 1 and "only goes with --to pyz" in stderr
    code, _, stderr = cli("convert", pyz, "--to", "zip", "-o", tmp_path / "no" / "x.zip")
    assert code == 1 and "does not exist" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_diff(src: Path, pyz: Path, tmp_path: Path, make_tree: Callable[..., Path]) -> None:
    again = packer.build(src, tmp_path / "again.pyz", entry="tool.cli:main").output
    code, stdout, _ = cli("diff", pyz, again)
    assert (code, stdout) == (0, "identical\n")
    changed = make_tree({**APP, "tool/data/table.txt": "changed\n", "extra.txt": "new\n"})
    del_me = changed / "bin" / "run.sh"
    del_me.unlink()
    other = packer.build(changed, tmp_path / "other.pyz", entry="tool.cli:main").output
    code, stdout, _ = cli("diff", pyz, other)
    assert code == 1
    lines = stdout.splitlines()
    assert "+ extra.txt" in lines and "- bin/run.sh" in lines and "~ tool/data/table.txt" in lines
    assert any(line.startswith("manifest.build_id:") for line in lines)
    code, stdout, _ = cli("diff", pyz, other, "--json")
    data = json.loads(stdout)
    assert data["identical"] is False and data["added"] == ["extra.txt"]


# --- PACKER_TOOLS -----------------------------------------------------------------------------


def test_archive_carries_its_own_tools(pyz: Path, tmp_path: Path) -> None:
    env = clean_env(PACKER_TOOLS="1")
    python = [sys.executable, "-I", "-S"]  # -S: no site-packages, so no packer to lean on
    proc = run([*python, pyz, "info"], env=env)
    assert proc.returncode == 0 and "kind: packer" in proc.stdout, proc.stderr
    assert proc.stdout == "\n".join(packer_info_lines(pyz)) + "\n", "same text as packer info"
    proc = run([*python, pyz, "list", "--json"], env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout)
    proc = run([*python, pyz, "verify"], env=env)
    assert proc.returncode == 0 and "OK (packer archive" in proc.stdout
    proc = run([*python, pyz, "extract", tmp_path / "x"], env=env)
    assert proc.returncode == 0 and (tmp_path / "x" / "tool" / "cli.py").is_file()
    proc = run([*python, pyz, "launch-missiles"], env=env)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: PACKER_TOOLS=1")
    # Without PACKER_TOOLS the same words go to the application.
    proc = run([pyz, "info", "verify"])
    assert (proc.returncode, proc.stdout) == (0, "tool ran ['info', 'verify']\n")


def packer_info_lines(path: Path) -> list[str]:
    from packer._runtime import inspection, render

    return render.info_lines(inspection.info(str(path)))


# --- damaged input ----------------------------------------------------------------------------


def _damaged(pyz: Path, tmp_path: Path) -> dict[str, Path]:
    data = pyz.read_bytes()
    cd = data.rindex(b"PK\x01\x02")
    manifest_at = data.index(b"_packer/manifest.json", data.index(b"PK\x03\x04"))
    cases = {
        "not a zip": b"just some text\n" * 10,
        "empty": b"",
        "truncated in the middle": data[: len(data) // 2],
        "truncated before the end record": data[:-30],
        "truncated by one byte": data[:-1],
        "flip in the central directory": _flipped(data, cd + 20),
        "flip in a member": _flipped(data, len(data) // 3),
        "flip in the manifest": _flipped(data, manifest_at + 60),
        "flip in the digest": _flipped(data, len(data) - 5),
    }
    paths = {}
    for label, content in cases.items():
        path = tmp_path / (label.replace(" ", "-") + ".pyz")
        path.write_bytes(content)
        paths[label] = path
    return paths


def _flipped(data: bytes, where: int) -> bytes:
    changed = bytearray(data)
    changed[where] ^= 0x55
    return bytes(changed)


def test_damaged_archives_get_one_line_errors_from_every_command(pyz: Path, tmp_path: Path) -> None:
    commands = (["info"], ["list"], ["verify"], ["extract", tmp_path / "dest"], ["diff", pyz],
                ["convert", "--to", "zip", "-o", tmp_path / "conv.zip"])  # fmt: skip
    for label, path in _damaged(pyz, tmp_path).items():
        for command in commands:
            args = [command[0], path, *command[1:]]
            result = CliRunner().invoke(cli_main, [os.fspath(a) for a in args])
            assert isinstance(result.exception, SystemExit), (label, command, result.exception)
            assert result.exit_code == 1, (label, command, result.output)
            if command[0] == "verify" and result.stdout:
                assert "FAILED" in result.stdout, (label, result.stdout)
            else:
                assert result.stderr.startswith("packer: "), (label, command, result.stderr)
                assert result.stderr.count("\n") == 1, (label, command, result.stderr)
    assert not (tmp_path / "dest").exists() and not (tmp_path / "conv.zip").exists()


def test_verify_names_what_is_wrong(pyz: Path, tmp_path: Path) -> None:
    damaged = _damaged(pyz, tmp_path)
    expected = {
        "flip in a member": "is damaged",
        "flip in the manifest": "member '_packer/manifest.json' is damaged",
        "flip in the digest": "not a well-formed packer/2 seal",
        "flip in the central directory": "the local header gives other sizes or CRC",
    }
    for label, needle in expected.items():
        code, stdout, stderr = cli("verify", damaged[label])
        assert code == 1, label
        problems = [line for line in stdout.splitlines() if not line.startswith("note: ")]
        assert any(needle in line for line in problems), (label, stdout, stderr)
        assert len(problems) == len(set(problems)), "each problem once"


@pytest.mark.parametrize("kind", ["zipapp", "shiv", "pex"])
def test_every_command_on_peer_archives(
    peers: dict[str, Path], pyz: Path, tmp_path: Path, kind: str
) -> None:
    path = peers[kind]
    before = _sha(path)
    code, stdout, _ = cli("verify", path, "--json")
    assert code == 0 and json.loads(stdout)["kind"] == kind
    for flags in (["--long"], ["--tree"]):
        code, stdout, _ = cli("list", path, *flags)
        assert code == 0 and "cli.py" in stdout
    dest = tmp_path / "out"
    code, stdout, stderr = cli("extract", path, dest)
    assert code == 0, stderr
    assert any(p.name == "cli.py" for p in dest.rglob("*"))
    for to, name in (("zip", "c.zip"), ("tar", "c.tar.gz"), ("pyz", "c.pyz")):
        code, _, stderr = cli("convert", path, "--to", to, "-o", tmp_path / name)
        assert code == 0, (to, stderr)
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        assert zf.testzip() is None and any(n.endswith("tool/cli.py") for n in zf.namelist())
    with tarfile.open(tmp_path / "c.tar.gz") as tar:
        assert any(n.endswith("tool/cli.py") for n in tar.getnames())
    ran = run([tmp_path / "c.pyz", "q"])
    assert (ran.returncode, ran.stdout) == (0, "tool ran ['q']\n"), ran.stderr
    assert cli("diff", path, path)[0] == 0
    code, stdout, _ = cli("diff", path, pyz, "--json")
    assert code == 1 and json.loads(stdout)["identical"] is False
    assert _sha(path) == before
