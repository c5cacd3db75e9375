"""The bytecode cache between builds: same bytes as a fresh compile, and nothing planted."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from packer import members
from packer.pyccache import PycCache, default_cache

MAGIC = importlib.util.MAGIC_NUMBER
SOURCE = b"VALUE = {'a', 'b'}\ndef f():\n    return VALUE\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PycCache:
    folder = tmp_path / "pyc"
    monkeypatch.setenv("PACKER_BYTECODE_CACHE", str(folder))
    monkeypatch.setattr(members, "_cache_looked_up", False)
    found = default_cache()
    assert found is not None and Path(found.folder) == folder
    return found


def test_a_cached_pyc_is_the_fresh_one(cache: PycCache, monkeypatch: pytest.MonkeyPatch) -> None:
    first = members.bytecode("pkg/mod.py", SOURCE)
    assert first is not None and cache.get(MAGIC, "pkg/mod.py", SOURCE) == first
    monkeypatch.setenv("PACKER_BYTECODE_CACHE", "0")
    monkeypatch.setattr(members, "_cache_looked_up", False)
    assert members.bytecode("pkg/mod.py", SOURCE) == first  # compiled afresh: the same bytes
    # Another member name or another source is another entry.
    assert cache.get(MAGIC, "pkg/other.py", SOURCE) is None
    assert cache.get(MAGIC, "pkg/mod.py", SOURCE + b"\n") is None


def test_an_entry_that_does_not_match_its_source_is_ignored(cache: PycCache) -> None:
    cache.put(MAGIC, "m.py", SOURCE, b"planted bytes, no header")
    assert cache.get(MAGIC, "m.py", SOURCE) is None
    other = members.bytecode("m.py", b"x = 1\n")
    assert other is not None
    cache.put(MAGIC, "m.py", SOURCE, other)  # a real pyc, but of another source
    assert cache.get(MAGIC, "m.py", SOURCE) is None


def test_a_folder_others_can_write_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    monkeypatch.setenv("PACKER_BYTECODE_CACHE", str(folder))
    assert default_cache() is None
    monkeypatch.setenv("PACKER_BYTECODE_CACHE", "0")
    assert default_cache() is None
    monkeypatch.delenv("PACKER_BYTECODE_CACHE")
    assert default_cache() is None  # off unless asked for
