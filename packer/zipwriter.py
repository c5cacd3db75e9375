"""A deterministic zip writer: members are prepared (hashed, compressed) in parallel, written in
order, with fixed timestamps and normalised permissions, and a digest of the body in the comment.

``zipfile.ZipFile`` cannot take data that was compressed elsewhere, so this writes the records
itself (APPNOTE 6.3.x: local headers, central directory, zip64 where sizes need it).
"""

from __future__ import annotations

import hashlib
import stat
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

__all__ = ["DIR_MODE", "EXEC_MODE", "FILE_MODE", "Member", "ZipWriter", "dos_datetime", "prepare"]

DEFLATED = 8
STORED = 0
FILE_MODE = stat.S_IFREG | 0o644
EXEC_MODE = stat.S_IFREG | 0o755
DIR_MODE = stat.S_IFDIR | 0o755

_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2L")  # without the comment length, which the digest leaves out
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64 = struct.Struct("<4sLQL")
_MAX32 = 0xFFFFFFFF
_MAX16 = 0xFFFF
_MADE_BY = (3 << 8) | 20  # Unix, spec 2.0
_UTF8_FLAG = 0x800
_MSDOS_DIR = 0x10


@dataclass(frozen=True)
class Member:
    """One member, ready to write: payload already compressed (or stored)."""

    name: str
    payload: bytes
    method: int
    crc: int
    size: int
    sha256: str
    mode: int

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


def prepare(name: str, data: bytes, mode: int, level: int | None) -> Member:
    """Hash and (when *level* is not None) deflate one member; safe to call from threads.

    A member that deflate does not make smaller is stored, so incompressible data costs
    nothing to read back.
    """
    digest = hashlib.sha256(data).hexdigest()
    crc = zlib.crc32(data)
    payload, method = data, STORED
    if level is not None and data:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        packed = compressor.compress(data) + compressor.flush()
        if len(packed) < len(data):
            payload, method = packed, DEFLATED
    return Member(name, payload, method, crc, len(data), digest, mode)


def directory(name: str) -> Member:
    """A folder entry (``name`` ends with '/'); written so zipimport sees namespace folders."""
    return Member(name, b"", STORED, 0, 0, "", DIR_MODE)


def dos_datetime(epoch: int) -> tuple[int, int]:
    """(time, date) in MS-DOS format for *epoch*, clamped to the range zip can hold, in UTC."""
    t = time.gmtime(min(max(epoch, 315532800), 4354819198))  # 1980-01-01 .. 2107-12-31
    return (
        (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2),
        ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday,
    )


@dataclass
class _Written:
    member: Member
    offset: int


class ZipWriter:
    """Writes a prefix (the shebang line) and members to *fp*, hashing everything it writes.

    Offsets are from the start of the file, prefix included, so ``unzip`` sees no extra bytes
    and zipimport needs no adjustment.
    """

    def __init__(self, fp: IO[bytes], prefix: bytes, epoch: int) -> None:
        self._fp = fp
        self._hash = hashlib.sha256()
        self._offset = 0
        self._written: list[_Written] = []
        self._time, self._date = dos_datetime(epoch)
        self._write(prefix)

    def _write(self, data: bytes) -> None:
        self._fp.write(data)
        self._hash.update(data)
        self._offset += len(data)

    def add(self, member: Member) -> None:
        """Write one member's local header and payload."""
        name = member.name.encode("utf-8")
        flags = _UTF8_FLAG if not member.name.isascii() else 0
        extra = b""
        size, packed = member.size, len(member.payload)
        needed = 20
        if size >= _MAX32 or packed >= _MAX32:
            extra = struct.pack("<2H2Q", 1, 16, size, packed)
            size = packed = _MAX32
            needed = 45
        header = _LOCAL.pack(
            b"PK\x03\x04", needed, flags, member.method, self._time, self._date,
            member.crc, packed, size, len(name), len(extra),
        )  # fmt: skip
        self._written.append(_Written(member, self._offset))
        self._write(header + name + extra)
        self._write(member.payload)

    def finish(self, comment: Callable[[str], bytes]) -> str:
        """Write the central directory (sorted by name) and end records; return the digest.

        *comment* turns the body digest into the zip comment.
        """
        start = self._offset
        for item in sorted(self._written, key=lambda w: w.member.name):
            self._write(self._central(item))
        size = self._offset - start
        count = len(self._written)
        if count >= _MAX16 or start >= _MAX32 or size >= _MAX32:
            end64 = self._offset
            self._write(
                _END64.pack(b"PK\x06\x06", 44, _MADE_BY, 45, 0, 0, count, count, size, start)
            )
            self._write(_LOCATOR64.pack(b"PK\x06\x07", 0, end64, 1))
            count, size, start = min(count, _MAX16), min(size, _MAX32), min(start, _MAX32)
        self._write(_END.pack(b"PK\x05\x06", 0, 0, count, count, size, start))
        digest = self._hash.hexdigest()
        text = comment(digest)
        if len(text) > _MAX16:
            raise ValueError("zip comment too long")
        self._fp.write(struct.pack("<H", len(text)) + text)
        return digest

    def _central(self, item: _Written) -> bytes:
        member = item.member
        name = member.name.encode("utf-8")
        flags = _UTF8_FLAG if not member.name.isascii() else 0
        size, packed, offset = member.size, len(member.payload), item.offset
        fields: list[int] = []
        if size >= _MAX32:
            fields.append(size)
            size = _MAX32
        if packed >= _MAX32:
            fields.append(packed)
            packed = _MAX32
        if offset >= _MAX32:
            fields.append(offset)
            offset = _MAX32
        extra = struct.pack(f"<2H{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
        needed = 45 if fields else 20
        external = (member.mode & 0xFFFF) << 16 | (_MSDOS_DIR if member.is_dir else 0)
        return (
            _CENTRAL.pack(
                b"PK\x01\x02",
                _MADE_BY,
                needed,
                flags,
                member.method,
                self._time,
                self._date,
                member.crc,
                packed,
                size,
                len(name),
                len(extra),
                0,
                0,
                0,
                external,
                offset,
            )
            + name
            + extra
        )
