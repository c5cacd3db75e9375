"""Signature forgeries: a genuinely signed archive spliced so that some reader runs other
code. Each forged archive is made with the tests' raw zip writer, shown to run the forger's
``__main__`` under the interpreters it targets, and refused by ``packer verify``."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from forgeries import (
    comment_carries_a_second_zip,
    zip64_record_without_locator,
    zip64_that_old_readers_ignore,
)
from helpers import other_interpreters, packer_cli, run, write_tree
from rawzip import SEAL_SIZE

import packer

pytest.importorskip("cryptography")

APP = {"app/__init__.py": "", "app/cli.py": "def main():\n    print('GENUINE')\n"}


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
