"""Packs: a native folder stored as one zip member, read by every tool under its own names.

The archives here are written with the tests' raw writer, so that each rule of the reader is
met by an archive that breaks it alone.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from rawzip import Raw, archive, end_record, manifest_member, sealed_archive

from packer._runtime.errors import ArchiveError
from packer._runtime.extraction import extract
from packer._runtime.format import open_archive
from packer._runtime.inspection import info, verify
from packer.zipwriter import Packs

FOLDER = "_packer/native/fast-1.0"
INNER = {
    "fast/__init__.py": b"VALUE = 1\n",
    "fast/_speed.so": b"\x7fELF" + bytes(300),
    "fast-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: fast\nVersion: 1.0\n",
}
OUTER = {"__main__.py": b"print('hi')\n", "app/__init__.py": b""}


def pack(files: dict[str, bytes], **changes: object) -> bytes:
    """A pack as the builder writes one: sorted, deflated members, no comment."""
    members = [Raw(name, data, deflate=True) for name, data in sorted(files.items())]
    return archive(members, **changes)  # type: ignore[arg-type]


def packed_archive(
    tmp_path: Path,
    inner: bytes | None = None,
    *,
    pack_name: str = "_packer/packs/fast-1.0.zip",
    deflate_pack: bool = False,
    pack_crc: int | None = None,
    outer: dict[str, bytes] | None = None,
    listed: dict[str, bytes] | None = None,
) -> Path:
    """A sealed packer archive holding *outer* files and one pack; its manifest lists the
    pack's members under FOLDER (or *listed*, when given)."""
    outer = OUTER if outer is None else outer
    members = [Raw(name, data) for name, data in outer.items()]
    logical = {f"{FOLDER}/{n}": d for n, d in INNER.items()} if listed is None else listed
    members.append(manifest_member([*members, *(Raw(n, d) for n, d in logical.items())]))
    members.append(Raw(pack_name, pack(INNER) if inner is None else inner, deflate=deflate_pack,
                       crc=pack_crc))  # fmt: skip
    members.sort(key=lambda m: m.raw_name)
    path = tmp_path / "app.pyz"
    path.write_bytes(sealed_archive(members))
    return path


def test_a_packs_members_are_listed_and_read_under_their_folder(tmp_path: Path) -> None:
    path = packed_archive(tmp_path)
    with open_archive(str(path)) as opened:
        names = [e.name for e in opened.entries]
        assert names == sorted([*OUTER, "_packer/manifest.json",
                                *(f"{FOLDER}/{n}" for n in INNER)])  # fmt: skip
        for name, data in INNER.items():
            assert opened.read(opened.layout.by_name[f"{FOLDER}/{name}"]) == data
        assert [p.name for p in opened.layout.packs] == ["_packer/packs/fast-1.0.zip"]
        assert opened.layout.records == len(OUTER) + 2
    # zipfile and zipimport see one member; read as a zip, it holds the same files.
    with zipfile.ZipFile(path) as zf:
        assert "_packer/packs/fast-1.0.zip" in zf.namelist()
        assert not any(n.startswith("_packer/native/") for n in zf.namelist())
        with zipfile.ZipFile(io.BytesIO(zf.read("_packer/packs/fast-1.0.zip"))) as inner:
            assert {n: inner.read(n) for n in inner.namelist()} == INNER
    problems, facts = verify(str(path))
    assert problems == [], problems
    assert facts["members_checked"] == len(OUTER) + 1 + len(INNER)
    shown = info(str(path))
    assert (shown["members"], shown["zip_records"]) == (len(OUTER) + 1 + len(INNER), 4)


def test_extract_writes_a_packs_files_where_they_belong(tmp_path: Path) -> None:
    path = packed_archive(tmp_path)
    dest = tmp_path / "out"
    extract(str(path), str(dest))
    for name, data in INNER.items():
        assert (dest / FOLDER / name).read_bytes() == data
    assert not (dest / "_packer" / "packs").exists()


def test_verify_names_a_changed_file_inside_a_pack(tmp_path: Path) -> None:
    listed = {f"{FOLDER}/{n}": d for n, d in INNER.items()}
    listed[f"{FOLDER}/fast/__init__.py"] = b"VALUE = 2\n"  # the manifest expects other bytes
    path = packed_archive(tmp_path, listed=listed)
    problems, _facts = verify(str(path))
    assert any(f"{FOLDER}/fast/__init__.py" in line for line in problems), problems


def _refused(path: Path) -> str:
    with pytest.raises(ArchiveError) as caught:
        open_archive(str(path)).close()
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"deflate_pack": True}, "is compressed (a pack is stored)"),
        ({"pack_crc": 1234}, "is damaged: bad CRC-32"),
        ({"pack_name": "_packer/packs/fast-1.0.tar"}, "is not a pack"),
        ({"pack_name": "_packer/packs/.zip"}, "is not a pack"),
        ({"inner": pack(INNER, comment=b"hi")}, "it has a zip comment"),
        ({"inner": pack(INNER, prefix=b"#!/bin/sh\n")}, "bytes before its first member"),
        ({"inner": pack({"../escape.py": b"x"})}, "'../escape.py'"),
        ({"inner": pack({"/abs.py": b"x"})}, "'/abs.py'"),
        ({"inner": b"not a zip at all" * 4}, "not a zip archive"),
        (
            {"inner": archive([Raw("b.py", b"b"), Raw("a.py", b"a")])},
            "not in name order",
        ),
        (
            {"outer": {**OUTER, f"{FOLDER}/fast/__init__.py": b"VALUE = 1\n"}},
            "is in pack '_packer/packs/fast-1.0.zip' and elsewhere too",
        ),
    ],
)
def test_a_hostile_pack_is_refused_in_one_line(
    tmp_path: Path, kwargs: dict[str, object], why: str
) -> None:
    path = packed_archive(tmp_path, **kwargs)  # type: ignore[arg-type]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert why in _refused(path)
    with pytest.raises(ArchiveError):
        extract(str(path), str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_overlapping_records_inside_a_pack_are_refused(tmp_path: Path) -> None:
    first, second = Raw("a.py", b"a" * 40), Raw("b.py", b"b" * 40)
    body = first.local()
    second.offset = 0  # its central record points at the first one's bytes
    cd = first.central(0) + second.central(0)
    inner = body + cd + end_record(2, len(cd), len(body), 0)
    assert "pack '_packer/packs/fast-1.0.zip'" in _refused(packed_archive(tmp_path, inner))


def test_the_build_counts_a_pack_as_one_record() -> None:
    # The entry-count limit (65,535 where zipimport reads no zip64) is checked on the names
    # before the work: a native folder of many files takes one record, not one per file.
    packs = Packs(["_packer/native/a-1", "_packer/native/b-2/"], 0)
    names = ["app/__init__.py", "_packer/native/c-3/x.so"]
    names += [f"_packer/native/a-1/m{i}.py" for i in range(70_000)]
    names += ["_packer/native/b-2/y.so"]
    try:
        assert packs.records(names) == 2 + 2
        assert packs.folder("_packer/native/a-1/m1.py") == "_packer/native/a-1/"
        assert packs.folder("_packer/native/a-10/m1.py") is None
    finally:
        packs.close()
