"""Property test: random damage to real archives never escapes as anything but PackerError,
and nothing is ever written outside the destination."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from helpers import write_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import packer
from packer._runtime import toolbox
from packer.convert import convert
from packer.diff import diff

APP = {
    "pkg/__init__.py": "",
    "pkg/main.py": "def main():\n    return 0\n",
    "pkg/data/notes.txt": "notes " * 50,
    "run.sh": "#!/bin/sh\necho run\n",
}


def _original() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src = write_tree(Path(tmp) / "src", APP)
        return packer.build(src, Path(tmp) / "app.pyz", entry="pkg.main:main").output.read_bytes()


# Built once, at import: the strategy below is made from it, and hypothesis needs the same
# strategy every time it replays an example.
ORIGINAL = _original()


@st.composite
def damage(draw: st.DrawFn, data: bytes) -> bytes:
    size = len(data)
    tail = max(0, size - 400)  # the central directory and end record live near the end
    kind = draw(st.sampled_from(["flip", "flip-tail", "truncate", "overwrite", "insert"]))
    changed = bytearray(data)
    if kind in ("flip", "flip-tail"):
        low = tail if kind == "flip-tail" else 0
        for _ in range(draw(st.integers(1, 8))):
            where = draw(st.integers(low, size - 1))
            changed[where] ^= draw(st.integers(1, 255))
        return bytes(changed)
    if kind == "truncate":
        return bytes(changed[: draw(st.integers(0, size - 1))])
    if kind == "overwrite":
        start = draw(st.integers(0, size - 1))
        blob = draw(st.binary(min_size=1, max_size=64))
        changed[start : start + len(blob)] = blob
        return bytes(changed)
    where = draw(st.integers(0, size))
    return bytes(changed[:where] + draw(st.binary(min_size=1, max_size=64)) + changed[where:])


@settings(
    max_examples=2500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,  # the archive changes with the code: old saved examples would not replay
)
@given(mutated=damage(ORIGINAL))
def test_random_damage_is_contained(mutated: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = root / "archive.pyz"
        archive.write_bytes(mutated)
        dest = root / "dest"
        calls = [
            lambda: toolbox.info(str(archive)),
            lambda: toolbox.list_members(str(archive)),
            lambda: toolbox.verify(str(archive)),
            lambda: toolbox.extract(str(archive), str(dest)),
            lambda: convert(archive, root / "converted.zip", "zip"),
            lambda: diff(archive, archive),
        ]
        for call in calls:
            try:
                call()
            except packer.PackerError as error:
                assert "\n" not in str(error)
        allowed = {"archive.pyz", "dest", "converted.zip"}
        assert set(os.listdir(root)) <= allowed
        assert archive.read_bytes() == mutated, "inputs are never modified"
        if dest.exists():
            for path in dest.rglob("*"):
                assert os.path.realpath(path).startswith(str(dest)) or path.is_symlink()
