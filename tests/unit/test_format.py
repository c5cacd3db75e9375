"""The format module in process: the seal codec, names, the typed manifest and runtime
configuration, the canonical parse; and the differential test, in which zipfile and
zipimport on every installed CPython read what packer accepts exactly as packer does."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from forgeries import EVIL, comment_carries_a_second_zip, zip64_that_old_readers_ignore
from helpers import other_interpreters, write_tree
from rawzip import (
    FOLDER,
    LINK,
    SEAL_SIZE,
    UNSIGNED,
    Raw,
    archive,
    end64_record,
    end_record,
    locals_and_directory,
    locator64,
    manifest_member,
    packer_like,
    seal,
    sealed_archive,
)

import packer
from packer._runtime.format import (
    Limits,
    Manifest,
    NativeDist,
    NotCanonicalError,
    RuntimeConfig,
    name_problem,
    native_key,
    open_archive,
    parse_layout,
    parse_seal,
    seal_comment,
    signed_message,
)
from packer.zipwriter import ZipWriter, prepare

# --- the seal ------------------------------------------------------------------------------


def test_seal_round_trip() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    unsigned = seal_comment(digest)
    assert len(unsigned) == SEAL_SIZE
    parsed, problem = parse_seal(unsigned)
    assert problem is None and parsed is not None
    assert (parsed.format, parsed.digest, parsed.signature) == (2, digest, None)
    signature = "A" * 86 + "=="
    parsed, problem = parse_seal(seal_comment(digest, signature))
    assert parsed is not None and parsed.signature == signature
    assert signed_message(digest) == b"packer/2 sha256=" + digest.encode()


@pytest.mark.parametrize(
    "comment",
    [
        b"packer/2 sha256=" + b"g" * 64 + b" ed25519=" + UNSIGNED,
        b"packer/2 sha256=" + b"0" * 64 + b" ed25519=" + UNSIGNED + b" ",
        b"packer/2 sha256=" + b"0" * 64 + b" ed25518=" + UNSIGNED,
        b"packer/2 sha256=" + b"0" * 64 + b" ed25519=" + b"!" * 88,
        b"packer/1 sha256=abc",
        b"packer/1 sha256=" + b"0" * 64 + b" sha256=" + b"1" * 64,
        b"packer/3 anything",
    ],
)
def test_malformed_seals_are_problems(comment: bytes) -> None:
    parsed, problem = parse_seal(comment)
    assert parsed is None and problem


def test_foreign_comments_are_no_seal() -> None:
    assert parse_seal(b"made by zip 3.0") == (None, None)
    parsed, _ = parse_seal(b"packer/1 sha256=" + b"a" * 64)
    assert parsed is not None and parsed.format == 1


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a/b.py", True), ("a/", True), ("caf\u00e9.txt", True), ("", False), ("/a", False),
     ("a/../b", False), ("a/./b", False), ("a//b", False), ("a\\b", False), ("C:x", False),
     ("a\x00b", False), ("a\nb", False), ("a\x7fb", False), ("..", False)],
)  # fmt: skip
def test_name_rules(name: str, ok: bool) -> None:
    assert (name_problem(name) is None) == ok


# --- manifest and runtime configuration ----------------------------------------------------


def _manifest() -> Manifest:
    native = NativeDist("fast", "1.0", "ab" * 32, "_packer/native/fast-1.0/", ["cp311-cp311-x"],
                        optional=True, top=["fast"])  # fmt: skip
    runtime = RuntimeConfig(
        "_packer/site-packages",
        [("click", "8.1", "click-8.1.dist-info")],
        ["x.pth"],
        [native],
        verify=True,
    )
    return Manifest(2, "0.1", ("callable", "pkg:main"), "/usr/bin/env python3", ">=3.9", None,
                    "cpython-311", [("click", "8.1", False)], runtime,
                    {"pkg/__init__.py": ("0" * 64, 0)})  # fmt: skip


def test_manifest_round_trip() -> None:
    original = _manifest()
    data = original.to_bytes()
    again = Manifest.from_bytes(data)
    assert again.body() == original.body()
    assert again.build_id == original.build_id and len(again.build_id) == 16
    assert again.to_bytes() == data, "serialising is deterministic"
    assert again.runtime.native[0].entry_name == "fast-1.0-" + "ab" * 8


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d.update(format=True), "not a format this packer reads"),
        (lambda d: d.update(format=3), "not a format this packer reads"),
        (lambda d: d.update(surprise=1), "unknown key 'surprise'"),
        (lambda d: d["entry"].update(kind="exec"), "not one of"),
        (lambda d: d.update(entry="pkg:main"), "entry is not an object"),
        (lambda d: d.update(interpreter=["x"]), "interpreter is not a string"),
        (lambda d: d.update(created="x" * 5000), "too long"),
        (lambda d: d["members"].update({"/etc/x": {"sha256": "0" * 64, "size": 1}}), "absolute"),
        (lambda d: d["members"].update({"a": {"sha256": "0" * 63, "size": 1}}), "not a SHA-256"),
        (lambda d: d["members"].update({"a": {"sha256": "0" * 64, "size": -1}}), "not a size"),
        (lambda d: d["members"].update({"a": {"sha256": "0" * 64, "size": True}}), "not a size"),
        (
            lambda d: d["distributions"].append({"name": "x", "version": "1", "native": 0}),
            "not true or false",
        ),
        (lambda d: d["runtime"].update(site="../x"), "is not _packer/site-packages"),
        (lambda d: d["runtime"]["dists"].append(["a", "1", "../a.dist-info"]), "bad .dist-info"),
        (lambda d: d["runtime"]["pth"].append("a/b.pth"), "bad .pth"),
        (lambda d: d["runtime"]["native"][0].update(prefix="_packer/native/../x/"), "'..'"),
        (lambda d: d["runtime"]["native"][0].update(prefix="elsewhere/"), "not a folder under"),
        (lambda d: d["runtime"]["native"][0].update(name="../x"), "not a plain name"),
        (lambda d: d["runtime"]["native"][0].update(key="k"), "not a SHA-256"),
        (lambda d: d["runtime"]["native"][0].update(optional="yes"), "not true or false"),
        (lambda d: d["runtime"].update(verify=1), "not true or false"),
    ],
)
def test_every_manifest_rule(change: object, why: str) -> None:
    body = json.loads(_manifest().to_bytes())
    change(body)  # type: ignore[operator]
    with pytest.raises(packer.ArchiveError, match=why) as caught:
        Manifest.from_dict(body, "x.pyz")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("x.pyz: ")


def test_native_key_covers_names_and_hashes() -> None:
    members = {"_packer/native/a-1/x.so": ("1" * 64, 1), "other": ("2" * 64, 1)}
    key = native_key("_packer/native/a-1/", members)
    assert key == native_key("_packer/native/a-1/", {**members, "other": ("3" * 64, 1)})
    renamed = {"_packer/native/a-1/y.so": ("1" * 64, 1)}
    changed = {"_packer/native/a-1/x.so": ("4" * 64, 1)}
    assert key != native_key("_packer/native/a-1/", renamed)
    assert key != native_key("_packer/native/a-1/", changed)


# --- writer and parser agree ---------------------------------------------------------------


def _written(members: list[tuple[str, bytes]], prefix: bytes = b"#!/x\n") -> bytes:
    out = io.BytesIO()
    writer = ZipWriter(out, prefix, 315532800)
    for name, data in members:
        writer.add(prepare(name, data, 0o100644, 6))
    writer.finish()
    return out.getvalue()


def test_the_writer_writes_what_the_parser_calls_canonical() -> None:
    manifest = Manifest(2, "0", ("module", "m"), None, None, None, None, [], RuntimeConfig(), {})
    data = _written([("a.py", b"1" * 1000), ("_packer/manifest.json", manifest.to_bytes())])
    layout = parse_layout(io.BytesIO(data), "w.pyz")
    assert layout.strict and layout.seal is not None and not layout.zip64
    assert [e.name for e in layout.entries] == ["_packer/manifest.json", "a.py"]
    assert layout.interpreter == "/x"


def test_zip64_round_trip_with_saturated_fields() -> None:
    # 65,535 entries need zip64; the end record's fields are saturated, not truncated.
    members = [(f"m{i:05d}", b"") for i in range(65535)]
    manifest = Manifest(2, "0", ("module", "m"), None, None, None, None, [], RuntimeConfig(), {})
    data = _written([*members, ("_packer/manifest.json", manifest.to_bytes())], prefix=b"")
    pos = len(data) - SEAL_SIZE - 22
    assert struct.unpack_from("<4s4H2LH", data, pos)[4:7] == (0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    layout = parse_layout(io.BytesIO(data), "big.pyz")
    assert layout.zip64 and len(layout.entries) == 65536
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert len(zf.infolist()) == 65536


def test_parse_collects_every_problem() -> None:
    members = [Raw("b", b"1", comment=b"c"), Raw("a\\x", b"2"), Raw("a\\x", b"3")]
    data = sealed_archive([*members, manifest_member(members)])
    with pytest.raises(NotCanonicalError) as caught:
        parse_layout(io.BytesIO(data), "p.pyz")
    problems = caught.value.problems
    assert len(problems) >= 4, problems
    assert any("comment" in p for p in problems) and any("backslash" in p for p in problems)
    assert any("more than once" in p for p in problems)
    assert "verify lists them" in str(caught.value)


def test_limits_are_checked_before_reading() -> None:
    data = archive([Raw(f"f{i}", b"x" * 100) for i in range(10)])
    with pytest.raises(packer.ArchiveError, match="10 members, more than the limit of 5"):
        parse_layout(io.BytesIO(data), "l.zip", Limits(max_members=5))
    with pytest.raises(packer.ArchiveError, match="unpack to 1000 bytes"):
        parse_layout(io.BytesIO(data), "l.zip", Limits(max_size=999))


def test_member_reads_check_size_and_crc(tmp_path: Path) -> None:
    path = tmp_path / "c.zip"
    path.write_bytes(archive([Raw("a", b"hello" * 100, deflate=True, crc=7)]))
    with open_archive(str(path)) as opened, pytest.raises(packer.ArchiveError, match="CRC"):
        opened.read(opened.entries[0])
    path.write_bytes(archive([Raw("a", b"hello" * 100, deflate=True, size=10)]))
    with open_archive(str(path)) as opened, pytest.raises(packer.ArchiveError, match="damaged"):
        opened.read(opened.entries[0])


# --- the differential test -----------------------------------------------------------------

_LISTER = """
import hashlib, json, sys, zipimport
out = {}
for path in sys.argv[1:]:
    try:
        importer = zipimport.zipimporter(path)
        names = sorted(zipimport._zip_directory_cache[path])
        out[path] = {n: hashlib.sha256(importer.get_data(n)).hexdigest()
                     for n in names if not n.endswith("/")}
    except Exception as exc:
        out[path] = "error: %s" % type(exc).__name__
print(json.dumps(out))
"""


def _corpus(root: Path) -> dict[str, bytes]:
    """Valid and hostile archives, by name."""
    src = write_tree(root / "src", {"pkg/__init__.py": "", "pkg/m.py": "X = 1\n",
                                    "ns/data/t.txt": "t"})  # fmt: skip
    built = packer.build(src, root / "built.pyz", entry="pkg.m").output.read_bytes()
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("a.txt", "a")
        zf.writestr("dir/b.txt", "b" * 1000, compress_type=zipfile.ZIP_DEFLATED)
    good = packer_like({"a.py": b"1", "b/c.txt": b"c"})
    overlap = locals_and_directory([Raw("x", b"data")])
    twin = Raw("y", b"data")
    twin.offset = overlap.offsets[0]
    cd = Raw("x", b"data").central(overlap.offsets[0]) + twin.central(0)
    body = overlap.data[: overlap.cd_offset]
    end64_body = locals_and_directory([Raw("e", b"e")])
    end64_at = len(end64_body.data)
    pos = len(good) - SEAL_SIZE - 22
    return {
        "built": built,
        "plain": plain.getvalue(),
        "prefixed": b"#!/bin/sh\n" + plain.getvalue(),
        "raw-good": good,
        "overlap": body + cd + end_record(2, len(cd), overlap.cd_offset, 0),
        "duplicate": archive([Raw("a", b"1"), Raw("a", b"2")]),
        "local-name": archive([Raw("a", b"1", local_name=b"b")]),
        "nul-name": archive([Raw(b"a\x00b", b"1")]),
        "cp437": archive([Raw("\u00e9".encode("cp437"), b"1", flags=0)]),
        "bad-utf8-flag": sealed_archive([Raw(b"\xc3(", b"1", flags=0x800)]),
        "unsorted": sealed_archive([Raw("b", b"1"), Raw("a", b"2")]),
        "gap": sealed_archive([Raw("a", b"1")], prefix=b"junk"),
        "links": archive([Raw("l", b"..", mode=LINK), Raw("d/", mode=FOLDER)]),
        "comment-zip": comment_carries_a_second_zip(good),
        "zip64-ignored": zip64_that_old_readers_ignore(good),
        "zip64-unneeded": end64_body.data
        + end64_record(1, end64_body.cd_size, end64_body.cd_offset)
        + locator64(end64_at)
        + end_record(1, end64_body.cd_size, end64_body.cd_offset, 0),
        "reseal-after-edit": seal(good[:40] + bytes([good[40] ^ 1]) + good[41 : pos + 22]),
        "evil-main": archive(EVIL),
    }


def test_every_reader_reads_what_packer_accepts_alike(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    paths = {}
    for name, data in corpus.items():
        paths[name] = tmp_path / f"{name}.zip"
        paths[name].write_bytes(data)
    readings: dict[str, dict[str, object]] = {name: {} for name in corpus}
    accepted = {}
    for name, path in paths.items():
        try:
            with open_archive(str(path)) as opened:
                accepted[name] = {
                    e.name: hashlib.sha256(opened.read(e)).hexdigest()
                    for e in opened.entries
                    if not e.is_dir
                }
        except packer.ArchiveError:
            pass
        try:
            with zipfile.ZipFile(path) as zf:
                readings[name]["zipfile"] = {
                    i.filename: hashlib.sha256(zf.read(i)).hexdigest()
                    for i in zf.infolist()
                    if not i.is_dir()
                }
        except Exception as exc:  # any refusal: it reads nothing
            readings[name]["zipfile"] = f"error: {type(exc).__name__}"
    interpreters = [(sys.executable, sys.version_info[:2]), *other_interpreters()]
    for python, version in interpreters:
        proc = subprocess.run(
            [python, "-I", "-c", _LISTER, *map(str, paths.values())],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        listed = json.loads(proc.stdout)
        for name, path in paths.items():
            readings[name][f"zipimport {version[0]}.{version[1]}"] = listed[str(path)]
    assert len(interpreters) >= 2, "the differential test needs more than one CPython"
    for name in corpus:
        views = readings[name]
        if name in accepted:
            for reader, seen in views.items():
                assert seen == accepted[name], (name, reader, seen, accepted[name])
    assert {"built", "plain", "prefixed", "raw-good", "cp437", "evil-main"} <= set(accepted)
    for hostile in ("overlap", "duplicate", "local-name", "nul-name", "unsorted", "gap",
                    "comment-zip", "zip64-ignored", "zip64-unneeded", "bad-utf8-flag"):  # fmt: skip
        assert hostile not in accepted, hostile
    disagreeing = [
        name
        for name in corpus
        if len({json.dumps(v, sort_keys=True) for v in readings[name].values()}) > 1
    ]
    assert "zip64-ignored" in disagreeing and not set(disagreeing) & set(accepted)
