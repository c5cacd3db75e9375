"""keygen, sign, build --sign-key, verify --key / --require-signature, verify-on-start."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import clean_env, run

import packer
from packer.cli import main as cli_main

APP = {"app/__init__.py": "", "app/cli.py": "def main():\n    print('ran')\n    return 0\n",
       "app/data.txt": "payload-to-damage\n"}  # fmt: skip


def cli(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_main, [os.fspath(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    code, _, stderr = cli("keygen", "-o", tmp_path / "key")
    assert code == 0, stderr
    return tmp_path / "key", tmp_path / "key.pub"


def test_keygen_writes_a_private_key_only_its_owner_reads(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    code, _, stderr = cli("keygen", "-o", private)
    assert code == 1 and "exists; not overwritten" in stderr


def test_sign_then_verify_with_the_key(
    keys: tuple[Path, Path], make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    private, public = keys
    archive = packer.build(make_tree(APP), tmp_path / "a.pyz", entry="app.cli:main").output
    code, _, _ = cli("verify", archive, "--require-signature")
    assert code == 1
    code, stdout, stderr = cli("sign", archive, "--key", private)
    assert code == 0, stderr
    code, stdout, _ = cli("verify", archive, "--key", public)
    assert code == 0 and "signature valid" in stdout
    assert run([archive]).stdout == "ran\n", "a signed archive still runs"
    # Another key does not vouch for it.
    cli("keygen", "-o", tmp_path / "other")
    code, stdout, _ = cli("verify", archive, "--key", tmp_path / "other.pub")
    assert code == 1 and "the signature does not match this key" in stdout


def test_signed_builds_are_reproducible_and_tampering_shows(
    keys: tuple[Path, Path], make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    private, public = keys
    src = make_tree(APP)
    one = packer.build(src, tmp_path / "one.pyz", entry="app.cli:main", sign_key=private).output
    two = packer.build(src, tmp_path / "two.pyz", entry="app.cli:main", sign_key=private).output
    assert one.read_bytes() == two.read_bytes()
    assert cli("verify", one, "--key", public)[0] == 0
    stored = packer.build(
        src, tmp_path / "s.pyz", entry="app.cli:main", sign_key=private, compress=False
    ).output
    data = bytearray(stored.read_bytes())
    data[data.index(b"payload-to-damage")] ^= 1
    tampered = tmp_path / "tampered.pyz"
    tampered.write_bytes(bytes(data))
    code, stdout, _ = cli("verify", tampered, "--key", public)
    assert code == 1 and "no longer matches" in stdout


def test_verify_on_start(make_tree: Callable[..., Path], tmp_path: Path) -> None:
    src = make_tree(APP)
    archive = packer.build(
        src, tmp_path / "v.pyz", entry="app.cli:main", verify_on_start=True, compress=False
    ).output
    assert run([archive]).stdout == "ran\n"
    data = bytearray(archive.read_bytes())
    data[data.index(b"payload-to-damage")] ^= 1
    damaged = tmp_path / "damaged.pyz"
    damaged.write_bytes(bytes(data))
    damaged.chmod(0o755)
    proc = run([damaged])
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        proc.stderr
        == "damaged.pyz: refusing to run: the archive does not match its digest (damaged)\n"
    )
    # Any archive checks itself with PACKER_VERIFY=1.
    plain = packer.build(src, tmp_path / "p.pyz", entry="app.cli:main", compress=False).output
    data = bytearray(plain.read_bytes())
    data[data.index(b"payload-to-damage")] ^= 1
    plain.write_bytes(bytes(data))
    assert run([plain]).returncode == 0, "unchecked by default"
    proc = run([plain], env=clean_env(PACKER_VERIFY="1"))
    assert proc.returncode == 1 and "refusing to run" in proc.stderr


def test_signing_refuses_damaged_or_foreign_archives(
    keys: tuple[Path, Path], make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    private, _ = keys
    plain = tmp_path / "plain.zip"
    import zipfile

    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("a.txt", "x")
    code, _, stderr = cli("sign", plain, "--key", private)
    assert code == 1 and "no digest to sign" in stderr
    code, _, stderr = cli("sign", plain, "--key", tmp_path / "missing")
    assert code == 1 and "no such key file" in stderr
