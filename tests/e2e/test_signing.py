"""keygen, sign, build --sign-key, verify --key / --require-signature, verify-on-start."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import clean_env, cli, run

import packer

APP = {"app/__init__.py": "", "app/cli.py": "def main():\n    print('ran')\n    return 0\n",
       "app/data.txt": "payload-to-damage\n"}  # fmt: skip


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


@pytest.mark.slow
def test_bit_flips_in_a_verify_on_start_archive_give_one_line(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    import random
    import zipfile

    src = make_tree(APP)
    archive = packer.build(src, tmp_path / "v.pyz", entry="app.cli:main", verify_on_start=True)
    data = archive.output.read_bytes()
    with zipfile.ZipFile(archive.output) as zf:
        stub = zf.getinfo("__main__.py")
        assert stub.compress_type == zipfile.ZIP_STORED, "the checking stub is stored"
        assert "__main__.pyc" not in zf.namelist(), "and runs from its source"
        start = stub.header_offset
        end = start + 30 + len(stub.filename) + stub.compress_size
    # The check begins in the stub itself, which Python's own zipimport finds through its
    # central record and the end record: a flip there is outside what any check can catch.
    cd_at = int.from_bytes(data[-177 - 6 : -177 - 2], "little")
    name_at = data.index(b"__main__.py", cd_at)
    record = (data.rindex(b"PK\x01\x02", cd_at, name_at), name_at + len(b"__main__.py"))
    places = [
        i
        for i in range(len(data) - 177 - 22)
        if not (start <= i < end or record[0] <= i < record[1])
    ]
    chooser = random.Random(1234)
    damaged = tmp_path / "damaged.pyz"
    for where in chooser.sample(places, 60):
        changed = bytearray(data)
        changed[where] ^= 1 << chooser.randrange(8)
        damaged.write_bytes(bytes(changed))
        damaged.chmod(0o755)
        proc = run([damaged])
        assert proc.returncode == 1 and proc.stdout == "", (where, proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1, (where, proc.stderr)
        assert "refusing to run" in proc.stderr or "can't find '__main__'" in proc.stderr, (
            where,
            proc.stderr,
        )


def test_signing_a_symlink_signs_the_file_and_keeps_the_link(
    keys: tuple[Path, Path], make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    private, public = keys
    real = packer.build(make_tree(APP), tmp_path / "real.pyz", entry="app.cli:main").output
    link = tmp_path / "link.pyz"
    link.symlink_to(real)
    code, _, stderr = cli("sign", link, "--key", private)
    assert code == 0, stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert cli("verify", real, "--key", public, "--require-signature")[0] == 0


def test_format_1_archives_are_read_but_never_trusted(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    import base64
    import hashlib
    import json

    from rawzip import Raw, end_record, locals_and_directory

    _, public = keys
    files = [Raw("a.py", b"print(1)\n")]
    listed = {"a.py": {"sha256": hashlib.sha256(b"print(1)\n").hexdigest(), "size": 9}}
    manifest = {"format": 1, "packer_version": "0.1.0", "entry": {"kind": "module", "value": "a"},
                "members": listed}  # fmt: skip
    members = [Raw("_packer/manifest.json", json.dumps(manifest).encode()), *files]
    parts = locals_and_directory(members)
    head = parts.data + end_record(2, parts.cd_size, parts.cd_offset, 0)[:-2]
    digest = hashlib.sha256(head).hexdigest()
    signature = base64.b64encode(b"\0" * 64).decode()
    comment = f"packer/1 sha256={digest} ed25519={signature}".encode()
    old = tmp_path / "old.pyz"
    old.write_bytes(head + len(comment).to_bytes(2, "little") + comment)
    code, stdout, _ = cli("verify", old)
    assert code == 0, stdout
    assert "format 1: its digest does not cover the whole file; rebuild to get format 2" in stdout
    code, stdout, _ = cli("info", old)
    assert "rebuild to get format 2" in stdout
    for command in (["list", old], ["extract", old, tmp_path / "out"]):
        code, _, stderr = cli(*command)
        assert code == 0 and "note: format 1: its digest does not cover" in stderr, stderr
    code, stdout, _ = cli("verify", old, "--key", public, "--require-signature")
    assert code == 1 and "its signature is not trusted" in stdout


def test_the_archives_own_tools_say_they_cannot_vouch_for_it(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    archive = packer.build(make_tree(APP), tmp_path / "a.pyz", entry="app.cli:main").output
    proc = run([archive, "verify"], env=clean_env(PACKER_TOOLS="1"))
    assert proc.returncode == 0, proc.stderr
    assert "cannot vouch for it" in proc.stdout and "packer verify" in proc.stdout


def test_the_stubs_own_ed25519_agrees_with_cryptography() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from packer._runtime.ed25519 import ed25519_valid

    for n in range(12):
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        message = os.urandom(n * 13)
        signature = key.sign(message)
        assert ed25519_valid(public, signature, message)
        assert not ed25519_valid(public, signature, message + b"!")
        flipped = bytearray(signature)
        flipped[n * 5 % 64] ^= 0x10
        assert not ed25519_valid(public, bytes(flipped), message)
        assert not ed25519_valid(public, signature[:63], message)
        other = (
            ed25519.Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        assert not ed25519_valid(other, signature, message)


def test_an_archive_built_signed_to_verify_on_start_requires_its_signature(
    keys: tuple[Path, Path], make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    private, _public = keys
    archive = packer.build(
        make_tree(APP), tmp_path / "s.pyz", entry="app.cli:main", sign_key=private,
        verify_on_start=True,
    ).output  # fmt: skip
    assert run([archive]).stdout == "ran\n"
    # Re-signed by another key: the digest still matches, the signature is not the one
    # the stub was built to require.
    cli("keygen", "-o", tmp_path / "other")
    code, _, stderr = cli("sign", archive, "--key", tmp_path / "other")
    assert code == 0, stderr
    proc = run([archive])
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (
        "s.pyz: refusing to run: it is not signed by the key it was built to require\n"
    )
    code, _, stderr = cli("convert", archive, "--to", "zip", "-o", tmp_path / "s.zip")
    assert code == 1 and "rebuild it instead" in stderr
    assert not (tmp_path / "s.zip").exists()
