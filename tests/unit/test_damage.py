"""Property test: damage to real archives, with the digest recomputed afterwards so that it
reaches the structure checks, never escapes as anything but a one-line PackerError, never
writes outside the destination, and what packer accepts zipfile reads the same."""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
from helpers import write_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawzip import SEAL_SIZE, seal

import packer
from packer._runtime import extraction, inspection
from packer._runtime.diff import diff
from packer.convert import convert

APP = {
    "pkg/__init__.py": "",
    "pkg/main.py": "def main():\n    return 0\n",
    "pkg/data/notes.txt": "notes " * 50,
    "run.sh": "#!/bin/sh\necho run\n",
}


def _original() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src = write_tree(Path(tmp) / "src", APP)
        built = packer.build(src, Path(tmp) / "app.pyz", entry="pkg.main:main", compile=False)
        return built.output.read_bytes()


# Built once, at import: the strategy below is made from it, and hypothesis needs the same
# strategy every time it replays an example.
ORIGINAL = _original()
_SIGNATURES = (b"PK\x01\x02", b"PK\x03\x04")
_RECORDS = sorted(
    i for sig in _SIGNATURES for i in range(len(ORIGINAL)) if ORIGINAL.startswith(sig, i)
)
_BOUNDARIES = [0, 1, 0x7F, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x80000000, 0xFFFE]


@st.composite
def damage(draw: st.DrawFn, data: bytes) -> bytes:
    size = len(data)
    kind = draw(st.sampled_from(["flip", "field", "splice", "truncate", "insert"]))
    changed = bytearray(data)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            where = draw(st.integers(0, size - 1))
            changed[where] ^= draw(st.integers(1, 255))
    elif kind == "field":
        # A header field of a local or central record set to a boundary or random value.
        for _ in range(draw(st.integers(1, 3))):
            record = draw(st.sampled_from(_RECORDS))
            offset = record + draw(st.integers(4, 44))
            width = draw(st.sampled_from([2, 4]))
            value = draw(st.sampled_from(_BOUNDARIES) | st.integers(0, 1 << 32))
            value &= (1 << (8 * width)) - 1
            struct.pack_into("<H" if width == 2 else "<L", changed, min(offset, size - 4), value)
    elif kind == "splice":
        # A record copied over another, or moved: duplicate and overlapping entries.
        a, b = draw(st.sampled_from(_RECORDS)), draw(st.sampled_from(_RECORDS))
        length = draw(st.integers(30, 120))
        changed[b : b + length] = data[a : a + length]
    elif kind == "truncate":
        return bytes(changed[: draw(st.integers(0, size - 1))])
    else:
        where = draw(st.integers(0, size))
        changed[where:where] = draw(st.binary(min_size=1, max_size=64))
    if draw(st.integers(0, 9)) and len(changed) > SEAL_SIZE:
        # Recompute the digest, as an attacker would: only the structure checks stand.
        return seal(bytes(changed[:-SEAL_SIZE]))
    return bytes(changed)


def _inside(path: Path, folder: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, top]) == top


@pytest.mark.slow
@settings(
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,  # the archive changes with the code: old saved examples would not replay
)
@given(mutated=damage(ORIGINAL))
def test_damage_with_a_recomputed_digest_is_contained(mutated: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = root / "archive.pyz"
        archive.write_bytes(mutated)
        dest = root / "dest"
        accepted = True
        calls = [
            lambda: inspection.info(str(archive)),
            lambda: inspection.list_members(str(archive)),
            lambda: extraction.extract(str(archive), str(dest)),
            lambda: convert(archive, root / "converted.zip", "zip"),
            lambda: diff(archive, archive),
        ]
        for call in calls:
            try:
                call()
            except packer.PackerError as error:
                assert "\n" not in str(error)
                accepted = False
        try:
            problems, _facts = inspection.verify(str(archive))
        except packer.PackerError as error:
            assert "\n" not in str(error)
            problems = [str(error)]
        assert all("\n" not in p for p in problems)
        allowed = {"archive.pyz", "dest", "converted.zip"}
        assert set(os.listdir(root)) <= allowed
        assert archive.read_bytes() == mutated, "inputs are never modified"
        if dest.exists():
            for path in dest.rglob("*"):
                assert _inside(path, dest), path
        if accepted and not problems:
            # What packer accepted whole, zipfile reads the same: names and bytes.
            ours = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
            with zipfile.ZipFile(archive) as zf:
                theirs = {i.filename for i in zf.infolist() if not i.is_dir()}
                assert ours == theirs
                for name in theirs:
                    data = zf.read(name)
                    assert (
                        hashlib.sha256(data).digest()
                        == hashlib.sha256((dest / name).read_bytes()).digest()
                    )
