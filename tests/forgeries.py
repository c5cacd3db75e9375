"""Forged archives: a genuinely signed archive spliced so that some reader runs the forger's
``__main__`` (it prints FORGED), built with the raw zip writer. The forgery tests and the
differential test use them."""

from __future__ import annotations

import struct

from rawzip import SEAL_SIZE, Raw, end64_record, end_record, locals_and_directory, locator64

__all__ = [
    "EVIL",
    "comment_carries_a_second_zip",
    "zip64_record_without_locator",
    "zip64_that_old_readers_ignore",
]

EVIL = [Raw("__main__.py", b"print('FORGED')\n")]


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
