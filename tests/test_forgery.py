"""Signature forgeries: a genuinely signed archive spliced so that some reader runs other
code. Each forged archive is made with the tests' raw zip writer, shown to run the forger's
``__main__`` under the interpreters it targets, and refused by ``packer verify``."""

from __future__ import annotations

import struct
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import other_interpreters, packer_cli, run, write_tree
from rawzip import SEAL_SIZE, Raw, end64_record, end_record, locals_and_directory, locator64

import packer

pytest.importorskip("cryptography")

APP = {"app/__init__.py": "", "app/cli.py": "def main():\n    print('GENUINE')\n"}
EVIL = [Raw("__main__.py", b"print('FORGED')\n")]


def _interpreters() -> list[tuple[str, tuple[int, int]]]:
    return [(sys.executable, sys.version_info[:2]), *other_interpreters()]


@pytest.fixture
def signed(tmp_path: Path) -> tuple[bytes, Path]:
    """A genuine archive signed with a fresh key, and the public key."""
    from packer.signing import keygen

    private, public = keygen(tmp_path / "key")
    src = write_tree(tmp_path / "src", APP)
    result = packer.build(src, tmp_path / "genuine.pyz", entry="app.cli:main", sign_key=private)
    ok = packer_cli("verify", result.output, "--key", public, "--require-signature")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    return result.output.read_bytes(), public


def _end(data: bytes) -> tuple[int, int, int, int]:
    """(end record offset, count, central directory size, offset) of a genuine archive."""
    pos = len(data) - SEAL_SIZE - 22
    _sig, _d, _cd, _n, count, size, offset, _c = struct.unpack_from("<4s4H2LH", data, pos)
    return pos, count, size, offset


def comment_carries_a_second_zip(genuine: bytes) -> bytes:
    """The genuine end record's comment grows to hold a whole second zip, which ends with
    the genuine seal: every reader takes the last end record, the forger's."""
    pos, count, cd_size, cd_offset = _end(genuine)
    start = pos + 22
    evil = locals_and_directory(EVIL, start=start)
    tail = evil.data + end_record(1, evil.cd_size, evil.cd_offset, SEAL_SIZE)
    tail += genuine[-SEAL_SIZE:]
    return genuine[:pos] + end_record(count, cd_size, cd_offset, len(tail)) + tail


def _pieces(genuine: bytes) -> tuple[int, bytes, bytes, bytes, bytearray, int]:
    """The genuine archive's entry count, members and central directory (with the offset of
    its last record), and the forger's local records and directory to go after the members."""
    _pos, count, cd_size, cd_offset = _end(genuine)
    members = genuine[:cd_offset]
    evil = locals_and_directory(EVIL, start=len(members))
    evil_locals = evil.data[: evil.cd_offset - len(members)]
    evil_cd = evil.data[evil.cd_offset - len(members) :]
    directory = bytearray(genuine[cd_offset : cd_offset + cd_size])
    return count, members, evil_locals, evil_cd, directory, directory.rfind(b"PK\x01\x02")


def zip64_record_without_locator(genuine: bytes) -> bytes:
    """A zip64 end record (and no locator) 76 bytes before the end record, hidden with the
    forger's directory in the comment of the last central-directory record: zipfile and
    zipimport before 3.13 read the genuine directory, zipimport 3.13 the forger's."""
    count, members, evil_locals, evil_cd, directory, last = _pieces(genuine)
    new_cd_at = len(members) + len(evil_locals)
    evil_cd_at = new_cd_at + len(directory)
    end64_at = evil_cd_at + len(evil_cd)
    hidden = evil_cd + end64_record(len(EVIL), end64_at - evil_cd_at, evil_cd_at) + b"\0" * 20
    struct.pack_into("<H", directory, last + 32, len(hidden))
    directory += hidden
    body = members + evil_locals + bytes(directory)
    return body + end_record(count, len(directory), new_cd_at, SEAL_SIZE) + genuine[-SEAL_SIZE:]


def zip64_that_old_readers_ignore(genuine: bytes) -> bytes:
    """Valid zip64 records give the genuine directory (zipfile, zipimport 3.13); the end
    record's own fields, which zipimport before 3.13 uses, give the forger's, hidden in the
    comment of the last genuine central-directory record."""
    count, members, evil_locals, evil_cd, directory, last = _pieces(genuine)
    struct.pack_into("<H", directory, last + 32, len(evil_cd))
    new_cd_at = len(members) + len(evil_locals)
    evil_cd_at = new_cd_at + len(directory)
    directory += evil_cd
    body = members + evil_locals + bytes(directory)
    end64_at = len(body)
    body += end64_record(count, len(directory), new_cd_at) + locator64(end64_at)
    eocd_at = len(body)
    return (
        body
        + end_record(len(EVIL), eocd_at - evil_cd_at, evil_cd_at, SEAL_SIZE)
        + genuine[-SEAL_SIZE:]
    )


FORGERIES = {
    "comment": (comment_carries_a_second_zip, lambda v: True),
    "zip64-no-locator": (zip64_record_without_locator, lambda v: v >= (3, 13)),
    "zip64-ignored": (zip64_that_old_readers_ignore, lambda v: v < (3, 13)),
}


@pytest.mark.parametrize("kind", sorted(FORGERIES))
def test_a_forged_signed_archive_runs_the_forger_but_does_not_verify(
    kind: str, signed: tuple[bytes, Path], tmp_path: Path
) -> None:
    genuine, public = signed
    forge, fooled = FORGERIES[kind]
    forged = tmp_path / "forged.pyz"
    forged.write_bytes(forge(genuine))
    forged.chmod(0o755)
    ran = {}
    for python, version in _interpreters():
        if version < (3, 9):
            continue
        proc = run([python, forged], env=None)
        ran[version] = proc.stdout.strip()
        expected = "FORGED" if fooled(version) else "GENUINE"
        assert ran[version] == expected, (version, proc.stdout, proc.stderr)
    assert "FORGED" in ran.values()
    # zipfile (what the old verify read) sees the genuine members in the zip64 variants.
    with zipfile.ZipFile(forged) as zf:
        assert ("app/cli.py" in zf.namelist()) == (kind != "comment")
    proc = packer_cli("verify", forged, "--key", public, "--require-signature")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "not a canonical packer archive" in proc.stderr + proc.stdout or "FAILED" in proc.stdout
    for command in (["info"], ["list"], ["extract", "--", str(tmp_path / "out")]):
        refused = packer_cli(*command[:1], forged, *command[2:])
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert (
            refused.stderr.count("\n") == 1 and "not a canonical packer archive" in refused.stderr
        )
    assert not (tmp_path / "out").exists()


def test_the_seal_covers_the_comment_length_and_the_signature_field_name(
    signed: tuple[bytes, Path], tmp_path: Path
) -> None:
    genuine, public = signed
    for where in (len(genuine) - SEAL_SIZE - 2, len(genuine) - 88 - 3):
        changed = bytearray(genuine)
        changed[where] ^= 0x01
        target = tmp_path / "changed.pyz"
        target.write_bytes(bytes(changed))
        proc = packer_cli("verify", target, "--key", public, "--require-signature")
        assert proc.returncode == 1, proc.stdout
