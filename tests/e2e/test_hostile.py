"""Hostile archives made with the tests' raw zip writer: every tool refuses each in one line,
with no traceback and nothing written outside (or, before the refusal, inside) DEST."""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import packer_cli
from rawzip import (
    FOLDER,
    LINK,
    SEAL_SIZE,
    Raw,
    archive,
    end_record,
    locals_and_directory,
    manifest_member,
    packer_like,
    sealed_archive,
)

import packer
from packer._runtime import extraction, inspection
from packer._runtime.diff import diff
from packer._runtime.format import Limits, open_archive
from packer.convert import convert


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def _refused_everywhere(path: Path, tmp_path: Path, expected: str) -> None:
    """Every command refuses *path* with one line holding *expected*; DEST stays empty."""
    dest = tmp_path / "dest"
    commands = [
        ["info", path],
        ["list", path],
        ["extract", path, dest],
        ["convert", path, "--to", "zip", "-o", tmp_path / "out.zip"],
        ["diff", path, path],
    ]
    for command in commands:
        proc = packer_cli(*command)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1, (command, proc.stderr)
        assert expected in proc.stderr, (command, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = packer_cli("verify", path)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert expected in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert _tree(dest) == set()
    assert not (tmp_path / "out.zip").exists()


# --- extraction that cannot escape ---------------------------------------------------------


def test_a_chain_of_links_cannot_write_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [Raw("l0", b".", mode=LINK)]
    members += [Raw(f"l{i}", f"l{i - 1}/..".encode(), mode=LINK) for i in range(1, 30)]
    members.append(Raw("t", ("l29/" + str(outside).lstrip("/")).encode(), mode=LINK))
    members.append(Raw("t/file", b"pwned"))
    path = tmp_path / "chain.zip"
    path.write_bytes(archive(members))
    _refused_everywhere(path, tmp_path, "'t' is a file and also holds 't/file'")
    # Without the file below it, the chain itself is refused before anything is written.
    path.write_bytes(archive(members[:-1]))
    with pytest.raises(packer.ArchiveError, match=r"'l1' -> 'l0/\.\.' leads through another"):
        extraction.extract(str(path), str(tmp_path / "dest"))
    assert _tree(tmp_path / "dest") == set()
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("../../escape", "leads outside"),
        ("/etc/passwd", "absolute"),
        ("x/../../../y", "leads outside"),
        ("b", "leads to another link"),
        ("../b/../c", "leads through another link"),
    ],
)
def test_link_targets_are_resolved_as_the_kernel_would(
    tmp_path: Path, target: str, why: str
) -> None:
    members = [Raw("a/", mode=FOLDER), Raw("a/l", target.encode(), mode=LINK),
               Raw("b", b"a", mode=LINK), Raw("file", b"x")]  # fmt: skip
    if target == "b":
        members = [Raw("a", b"b", mode=LINK), Raw("b", b"a", mode=LINK)]  # a loop
    path = tmp_path / "links.zip"
    path.write_bytes(archive(members))
    with pytest.raises(packer.ArchiveError, match=why):
        extraction.extract(str(path), str(tmp_path / "dest"))
    assert _tree(tmp_path / "dest") == set()


def test_a_link_inside_is_made_last_and_works(tmp_path: Path) -> None:
    members = [Raw("data/", mode=FOLDER), Raw("data/real.txt", b"real"),
               Raw("data/alias.txt", b"real.txt", mode=LINK)]  # fmt: skip
    path = tmp_path / "ok.zip"
    path.write_bytes(archive(members))
    extraction.extract(str(path), str(tmp_path / "dest"))
    alias = tmp_path / "dest" / "data" / "alias.txt"
    assert alias.is_symlink() and alias.read_text() == "real"


def test_links_already_in_dest_are_refused_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x").write_text("keep")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    path = tmp_path / "a.zip"
    path.write_bytes(archive([Raw("sub/x", b"pwned")]))
    with pytest.raises(packer.ArchiveError, match="symlink already in the destination"):
        extraction.extract(str(path), str(dest), overwrite=True)
    # A stale temporary name that is a link is never written through either.
    (dest / "sub").unlink()
    (dest / "y.packer-tmp").symlink_to(outside / "x")
    for i in range(20):
        (dest / f".y.{i:08x}.packer-tmp").symlink_to(outside / "x")
    path.write_bytes(archive([Raw("y", b"pwned")]))
    extraction.extract(str(path), str(dest))
    assert (dest / "y").read_bytes() == b"pwned"
    assert (outside / "x").read_text() == "keep"


@pytest.mark.parametrize(
    ("names", "why"),
    [
        (["x", "x/y"], "is a file and also holds"),
        (["Readme", "README"], "collide on a case-insensitive"),
        (["caf\u00e9", "cafe\u0301"], "collide on a case-insensitive or normalising"),
        (["a/../../evil"], "'..' part"),
        (["/abs"], "absolute path"),
        (["c:x"], "absolute path"),
        (["back\\slash"], "backslash"),
        (["nul\x00name"], "NUL byte"),
        (["esc\x1b[31mred"], "control character"),
        (["a//b"], "empty or '.' path part"),
    ],
)
def test_bad_names_and_clashes_are_refused_before_writing(
    tmp_path: Path, names: list[str], why: str
) -> None:
    path = tmp_path / "bad.zip"
    path.write_bytes(archive([Raw(n, b"data") for n in sorted(names)]))
    with pytest.raises(packer.ArchiveError, match=why):
        extraction.extract(str(path), str(tmp_path / "dest"))
    assert _tree(tmp_path / "dest") == set()
    proc = packer_cli("extract", path, tmp_path / "dest")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "\x1b" not in proc.stderr  # names are shown escaped


def test_a_file_in_dest_where_a_folder_goes_is_refused_before_writing(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "pkg").write_text("a file")
    path = tmp_path / "a.zip"
    path.write_bytes(archive([Raw("aaa.txt", b"1"), Raw("pkg/mod.py", b"2")]))
    with pytest.raises(packer.ArchiveError, match="needs a folder"):
        extraction.extract(str(path), str(dest), overwrite=True)
    assert _tree(dest) == {"pkg"}


# --- limits --------------------------------------------------------------------------------


@pytest.mark.slow
def test_many_small_bombs_hit_the_total_limits(tmp_path: Path) -> None:
    mib = bytes(1 << 20)
    members = [Raw(f"f{i:04d}", mib, deflate=True) for i in range(4096)]
    path = tmp_path / "bomb.zip"
    path.write_bytes(archive(members))
    assert path.stat().st_size < 8 << 20
    _refused_everywhere(path, tmp_path, "times the archive's size")
    with pytest.raises(packer.ArchiveError, match="more than the limit of 1000"):
        inspection.verify(str(path), Limits(max_size=1000, max_ratio=1e9))


def test_overlapping_entries_are_refused_everywhere(tmp_path: Path) -> None:
    data = bytes(1 << 16)
    big = Raw("big", data, deflate=True)
    parts = locals_and_directory([big])
    # A second central record pointing at the same bytes.
    twin = Raw("twin", data, deflate=True)
    twin.offset = parts.offsets[0]
    cd = big.central(parts.offsets[0]) + twin.central(0)
    head = parts.data[: parts.cd_offset]
    path = tmp_path / "overlap.zip"
    path.write_bytes(head + cd + end_record(2, len(cd), parts.cd_offset, 0))
    _refused_everywhere(path, tmp_path, "overlap")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda m: setattr(m, "local_name", b"other"), "another name in its local header"),
        (lambda m: setattr(m, "local_crc", 1), "other sizes or CRC"),
        (lambda m: setattr(m, "flags", 0x8), "data descriptor"),
        (lambda m: setattr(m, "central_extra", b"\x55\x54\x05\x00\x01\x00\x00\x00\x00"),
         "extra fields"),
        (lambda m: setattr(m, "comment", b"hi"), "has a comment"),
        (lambda m: setattr(m, "mode", 0o010644), "neither a plain file nor a folder"),
    ],
)  # fmt: skip
def test_a_packer_archive_must_be_canonical(
    tmp_path: Path, change: Callable[[Raw], None], why: str
) -> None:
    members = [Raw("a.py", b"print(1)\n"), Raw("b.py", b"print(2)\n")]
    manifest = manifest_member(members)
    change(members[0])
    ordered = sorted([*members, manifest], key=lambda m: m.raw_name)
    path = tmp_path / "bad.pyz"
    path.write_bytes(sealed_archive(ordered))
    _refused_everywhere(path, tmp_path, why)


def test_unsorted_or_gapped_packer_archives_are_refused(tmp_path: Path) -> None:
    members = [Raw("b.py", b"2"), Raw("a.py", b"1")]
    members.append(manifest_member(members))
    path = tmp_path / "unsorted.pyz"
    path.write_bytes(sealed_archive(members))
    _refused_everywhere(path, tmp_path, "not in name order")
    ordered = sorted(members, key=lambda m: m.raw_name)
    path.write_bytes(sealed_archive(ordered, prefix=b"#!/bin/sh\n#!two lines\n"))
    _refused_everywhere(path, tmp_path, "not one shebang line")


def test_a_second_end_record_in_the_comment_is_what_every_reader_reads(tmp_path: Path) -> None:
    # Every reader takes the last end record: here an empty zip's. So does packer, which then
    # sees no seal and no manifest, and never calls the file a packer archive or signed.
    good = packer_like({"a.py": b"1"})
    body = good[: -SEAL_SIZE - 22]
    comment = good[-SEAL_SIZE:] + end_record(0, 0, 0, 0)
    path = tmp_path / "two.pyz"
    path.write_bytes(body + end_record(2, 0, 0, len(comment)) + comment)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == []
    data = inspection.info(str(path))
    assert (data["kind"], data["members"], data["digest"]["status"]) == ("zip", 0, "absent")
    proc = packer_cli("verify", path, "--require-signature")
    assert proc.returncode == 1 and "not signed" in proc.stdout, proc.stdout


# --- the manifest --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manifest", "why"),
    [
        (b"[" * 30000 + b"]" * 30000, "nested too deeply"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"format": 2', "not valid JSON"),
        (json.dumps({"format": "2"}).encode(), "not a format this packer reads"),
        (json.dumps({"format": 2, "members": [], "entry": {"kind": "module", "value": "m"},
                     "packer_version": "0"}).encode(), "members is not an object"),
        (json.dumps({"format": 2, "members": {}, "entry": {"kind": "shell", "value": "m"},
                     "packer_version": "0"}).encode(), "not one of callable, module"),
        (json.dumps({"format": 2, "members": {"../x": {"sha256": "0" * 64, "size": 1}},
                     "entry": {"kind": "module", "value": "m"}, "packer_version": "0"}).encode(),
         "'..' part"),
        (json.dumps({"format": 2, "members": {}, "entry": {"kind": "module", "value": "m"},
                     "packer_version": "0", "runtime": {"native": [{
                         "name": "x", "version": "1", "key": "0" * 64, "tags": [],
                         "prefix": "_packer/native/../../../tmp/"}]}}).encode(), "'..' part"),
        (json.dumps({"format": 2, "members": {}, "entry": {"kind": "module", "value": "m"},
                     "packer_version": 7}).encode(), "packer_version is not a string"),
    ],
)  # fmt: skip
def test_a_malformed_manifest_is_one_line(tmp_path: Path, manifest: bytes, why: str) -> None:
    members = [Raw("_packer/manifest.json", manifest, deflate=True), Raw("a.py", b"1")]
    path = tmp_path / "m.pyz"
    path.write_bytes(sealed_archive(members))
    for command in (["info", path], ["convert", path, "--to", "zip", "-o", tmp_path / "o"],
                    ["diff", path, path]):  # fmt: skip
        proc = packer_cli(*command)
        assert proc.returncode == 1, proc.stdout
        assert proc.stderr.count("\n") == 1 and why in proc.stderr, proc.stderr
    proc = packer_cli("verify", path)
    assert proc.returncode == 1 and why in proc.stdout, proc.stdout
    with pytest.raises(packer.ArchiveError, match=r"m\.pyz"):
        packer.mount(str(path))


def test_a_manifest_far_larger_than_its_archive_is_refused_unread(tmp_path: Path) -> None:
    listed = {f"m{i:07d}": {"sha256": "0" * 64, "size": 1} for i in range(300000)}
    text = json.dumps({"format": 2, "members": listed}).encode()
    members = [Raw("_packer/manifest.json", text, deflate=True)]
    path = tmp_path / "huge.pyz"
    path.write_bytes(sealed_archive(members))
    with open_archive(str(path)) as opened, pytest.raises(packer.ArchiveError, match="limit"):
        opened.manifest()


# --- other inputs --------------------------------------------------------------------------


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pyz"
    os.mkfifo(fifo)
    for command in ("info", "verify", "list"):
        proc = packer_cli(command, fifo)
        assert proc.returncode == 1 and "not a regular file" in proc.stderr, proc.stderr


def test_names_and_manifest_text_are_shown_escaped(tmp_path: Path) -> None:
    path = tmp_path / "esc.zip"
    path.write_bytes(archive([Raw("evil\x1b]0;title\x07.txt", b"x")]))
    proc = packer_cli("list", path)
    assert proc.returncode == 0
    assert "\x1b" not in proc.stdout and "\\x1b" in proc.stdout


def test_a_truncated_seal_or_mismatched_digest_is_one_line(tmp_path: Path) -> None:
    good = packer_like({"a.py": b"print(1)\n"})
    path = tmp_path / "t.pyz"
    path.write_bytes(good[:-10])
    proc = packer_cli("info", path)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    changed = bytearray(good)
    changed[good.index(b"print(1)")] ^= 1
    path.write_bytes(bytes(changed))
    proc = packer_cli("extract", path, tmp_path / "dest")
    assert proc.returncode == 1 and "digest does not match" in proc.stderr, proc.stderr
    assert not (tmp_path / "dest").exists()


def test_the_raw_writer_makes_archives_packer_accepts(tmp_path: Path) -> None:
    # The hostile cases above differ from this one only in what they break.
    path = tmp_path / "good.pyz"
    path.write_bytes(packer_like({"a.py": b"print(1)\n", "pkg/b.txt": b"b"}))
    problems, facts = inspection.verify(str(path))
    assert problems == [] and facts["digest"] == "ok"
    extraction.extract(str(path), str(tmp_path / "dest"))
    assert (tmp_path / "dest" / "pkg" / "b.txt").read_bytes() == b"b"
    diff(path, path)
    convert(path, tmp_path / "c.zip", "zip")
    assert zlib.crc32((tmp_path / "dest" / "a.py").read_bytes()) == zlib.crc32(b"print(1)\n")


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (b"{'site': '_packer/site-packages', 'dists': [], 'pth': [], 'inherit_path': True}\n",
         "differs from the manifest's runtime configuration"),
        (b"__import__('os').system('touch pwned')\n", "is not a Python literal"),
        (b"{'site': '_packer/elsewhere'}\n", "runtime.site is not _packer/site-packages"),
    ],
)  # fmt: skip
def test_a_runtime_configuration_other_than_the_manifests_fails_verify(
    tmp_path: Path, config: bytes, problem: str
) -> None:
    """What the archive starts with (its configuration member) is what info shows, or verify
    says so; the member is parsed, never run."""
    files = {"a.py": b"print(1)\n", "_packer/runtime-config.py": config}
    path = tmp_path / "c.pyz"
    path.write_bytes(packer_like(files, runtime={"site": "_packer/site-packages", "dists": [],
                                                 "pth": []}))  # fmt: skip
    proc = packer_cli("verify", path, cwd=tmp_path)
    assert proc.returncode == 1 and problem in proc.stdout, proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pyz"]
