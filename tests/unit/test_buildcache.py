"""The cache between builds: what it gives is what a fresh build computes, and what it cannot
vouch for is computed again."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest
from helpers import packer_cli, write_tree

from packer import members
from packer.buildcache import HERE, MIN_PAYLOAD, BuildCache, cache_folder, default_cache
from packer.zipwriter import FILE_MODE, prepare

SOURCE = b"VALUE = {'a', 'b'}\ndef f():\n    return VALUE, 'some text here', 'some text here'\n"
TEXT = b"".join(b"line %d of a text member that deflates well\n" % i for i in range(400))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BuildCache:
    folder = tmp_path / "build-cache"
    monkeypatch.setenv("PACKER_BUILD_CACHE", str(folder))
    monkeypatch.setattr(members, "_cache_looked_up", False)
    found = default_cache()
    assert found is not None and Path(found.folder) == folder
    return found


def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKER_BUILD_CACHE", "0")
    monkeypatch.setattr(members, "_cache_looked_up", False)


def test_cached_bytecode_is_the_fresh_bytecode(
    cache: BuildCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = members.bytecode("pkg/mod.py", SOURCE)
    assert first is not None and cache.get_pyc(HERE, "pkg/mod.py", SOURCE) == first
    held = [first]  # other references in this process must not change what is compiled
    assert members.bytecode("pkg/mod.py", SOURCE) == first  # from the cache
    _fresh(monkeypatch)
    assert members.bytecode("pkg/mod.py", SOURCE) == first == held[0]  # compiled afresh
    # Another member name, another source or another interpreter is another entry.
    assert cache.get_pyc(HERE, "pkg/other.py", SOURCE) is None
    assert cache.get_pyc(HERE, "pkg/mod.py", SOURCE + b"\n") is None
    assert cache.get_pyc(HERE.replace(b"3.", b"4.", 1), "pkg/mod.py", SOURCE) is None


def test_a_damaged_or_foreign_bytecode_entry_is_not_used(cache: BuildCache) -> None:
    first = members.bytecode("m.py", SOURCE)
    assert first is not None
    path = Path(cache._pyc_path(HERE, "m.py", SOURCE))
    data = path.read_bytes()
    path.write_bytes(data[:-1])  # truncated: its own CRC no longer matches
    assert cache.get_pyc(HERE, "m.py", SOURCE) is None
    cache.put_pyc(HERE, "m.py", SOURCE, b"not bytecode at all, no magic number")
    assert cache.get_pyc(HERE, "m.py", SOURCE) is None
    assert members.bytecode("m.py", SOURCE) == first  # compiled again, and cached again
    assert cache.get_pyc(HERE, "m.py", SOURCE) == first


def test_a_cached_payload_is_the_fresh_one(
    cache: BuildCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(TEXT) >= MIN_PAYLOAD
    first = members._prepare("data.txt", TEXT, FILE_MODE, 6)
    again = members._prepare("data.txt", TEXT, FILE_MODE, 6)  # from the cache
    _fresh(monkeypatch)
    assert first == again == prepare("data.txt", TEXT, FILE_MODE, 6)
    assert zlib.decompress(first.payload, -15) == TEXT


def test_a_planted_payload_never_reaches_a_member(
    cache: BuildCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    digest = hashlib.sha256(TEXT).hexdigest()
    other = zlib.compressobj(6, zlib.DEFLATED, -15)
    planted = other.compress(TEXT.replace(b"line", b"LINE")) + other.flush()
    cache.put_payload(digest, 6, planted)  # a valid entry of other bytes
    member = members._prepare("data.txt", TEXT, FILE_MODE, 6)
    assert zlib.decompress(member.payload, -15) == TEXT
    assert cache.get_payload(digest, 6) == member.payload  # replaced by the right one
    cache.put_payload(digest, 6, b"\xff not deflate")
    assert zlib.decompress(members._prepare("d", TEXT, FILE_MODE, 6).payload, -15) == TEXT


def test_where_it_is_and_when_it_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PACKER_BUILD_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == str(tmp_path / "xdg" / "packer-build")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder() == str(tmp_path / "home" / ".cache" / "packer-build")
    monkeypatch.setenv("PACKER_BUILD_CACHE", "0")
    assert cache_folder() is None and default_cache() is None
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("PACKER_BUILD_CACHE", str(shared))
    assert default_cache() is None  # others could write what goes into archives
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "home", target_is_directory=True)
    monkeypatch.setenv("PACKER_BUILD_CACHE", str(link))
    assert default_cache() is None
    # A private folder in one others can write, without the sticky bit: it could be swapped.
    inside = shared / "mine"
    monkeypatch.setenv("PACKER_BUILD_CACHE", str(inside))
    assert default_cache() is None and inside.is_dir()
    os.chmod(shared, 0o1777)  # as /tmp is
    assert default_cache() is not None


def test_builds_with_a_cold_a_warm_and_no_cache_give_the_same_bytes(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "app/__init__.py": "",
        "app/main.py": "import app.util\ndef main():\n    print(app.util.WORDS)\n",
        "app/util.py": "WORDS = " + repr([f"word {i}" for i in range(300)]) + "\n",
        "app/data.txt": TEXT,
    }
    src = write_tree(tmp_path / "src", files)
    folder = tmp_path / "build-cache"
    built = []
    for name, setting in (("cold", str(folder)), ("warm", str(folder)), ("none", "0")):
        out = tmp_path / f"{name}.pyz"
        proc = packer_cli("build", src, "-m", "app.main:main", "-o", out, "-q",
                          PACKER_BUILD_CACHE=setting)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        built.append(out.read_bytes())
    assert built[0] == built[1] == built[2]
    assert list((folder / "pyc").rglob("*")) and list((folder / "deflate").rglob("*"))


def test_a_wheel_entry_must_name_a_wheel(cache: BuildCache) -> None:
    cache.put_wheel("k", "proj-1.0-py3-none-any.whl", b"PK wheel bytes")
    assert cache.get_wheel("k") == ("proj-1.0-py3-none-any.whl", b"PK wheel bytes")
    for name in ("../escape.whl", "sub/dir.whl", ".hidden.whl", "not-a-wheel.zip"):
        cache.put_wheel("k", name, b"PK wheel bytes")
        assert cache.get_wheel("k") is None, name
    cache.put_wheel("k", "empty-1.0-py3-none-any.whl", b"")
    assert cache.get_wheel("k") is None
    assert cache.get_wheel("never stored") is None


def test_info_and_prune_of_the_build_cache(
    cache: BuildCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import cli

    from packer.buildcache import prune, usage

    members._prepare("data.txt", TEXT, FILE_MODE, 6)
    assert members.bytecode("m.py", SOURCE) is not None
    cache.put_wheel("k", "proj-1.0-py3-none-any.whl", b"PK wheel")
    kinds = usage(cache.folder)
    assert {k: n for k, (n, _) in kinds.items()} == {"pyc": 1, "deflate": 1, "wheel": 1}
    code, out, _ = cli("cache", "info", "--build")
    assert code == 0 and "pyc: 1 entries" in out and cache.folder in out
    # Not used for ten days: only the wheel, backdated; the others were just written.
    (wheel,) = (p for p in (Path(cache.folder) / "wheel").rglob("*") if p.is_file())
    old = wheel.stat().st_mtime - 10 * 86400
    os.utime(wheel, (old, old))
    assert prune(cache.folder, 7, remove_all=False)[0] == 1
    assert cache.get_wheel("k") is None and cache.get_pyc(HERE, "m.py", SOURCE) is not None
    code, out, _ = cli("cache", "prune", "--build", "--all")
    assert code == 0 and out.startswith("2 removed"), out
    assert usage(cache.folder) == {"pyc": (0, 0), "deflate": (0, 0), "wheel": (0, 0)}
    assert not (Path(cache.folder) / "pyc").exists()  # emptied folders go too
    monkeypatch.setenv("PACKER_BUILD_CACHE", "0")
    code, _, err = cli("cache", "info", "--build")
    assert code == 1 and "turned off" in err and err.count("\n") == 1


def test_an_entry_in_use_is_kept_by_age(cache: BuildCache) -> None:
    """Reading an entry marks it used (at most once a day), so prune --older-than keeps it."""
    from packer.buildcache import prune

    cache.put_wheel("k", "proj-1.0-py3-none-any.whl", b"PK wheel")
    (wheel,) = (p for p in (Path(cache.folder) / "wheel").rglob("*") if p.is_file())
    old = wheel.stat().st_mtime - 10 * 86400
    os.utime(wheel, (old, old))
    assert cache.get_wheel("k") is not None  # used now
    assert prune(cache.folder, 7, remove_all=False) == (0, 0)
