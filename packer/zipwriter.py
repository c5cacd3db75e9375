"""A deterministic zip writer: members are prepared (hashed, compressed) in parallel, written in
order, with fixed timestamps and normalised permissions, and the format-2 seal in the comment.

``zipfile.ZipFile`` cannot take data that was compressed elsewhere, so this writes the records
itself (APPNOTE 6.3.x: local headers, central directory, zip64 where sizes need it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import stat
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ._runtime.format import (
    CENTRAL,
    CENTRAL_SIG,
    DEFLATED,
    END,
    END64,
    END64_SIG,
    END_SIG,
    LOCAL,
    LOCAL_SIG,
    LOCATOR64,
    LOCATOR64_SIG,
    MADE_BY,
    MAX16,
    MAX32,
    NATIVE_FOLDER,
    PACKS_FOLDER,
    SEAL_HEAD,
    SEAL_SIG,
    SEAL_SIZE,
    STORED,
    UTF8_FLAG,
    seal_comment,
)

__all__ = [
    "DEFLATED",
    "DIR_MODE",
    "EXEC_MODE",
    "FILE_MODE",
    "STORED",
    "Member",
    "Packs",
    "ZipWriter",
    "directory",
    "dos_datetime",
    "prepare",
    "shebang_line",
]

FILE_MODE = stat.S_IFREG | 0o644
EXEC_MODE = stat.S_IFREG | 0o755
DIR_MODE = stat.S_IFDIR | 0o755

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
    #: The payload's length; given when the payload is streamed (see ZipWriter.add_stream).
    stream_size: int | None = None

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def packed(self) -> int:
        return len(self.payload) if self.stream_size is None else self.stream_size


def prepare(name: str, data: bytes, mode: int, level: int | None) -> Member:
    """Hash and (when *level* is not None) deflate one member; safe to call from threads.

    A member that deflate does not make smaller is stored, so incompressible data costs
    nothing to read back.
    """
    digest = hashlib.sha256(data).hexdigest()
    packed = deflate(data, level) if level is not None and data else None
    return assemble(name, data, mode, digest, packed)


def deflate(data: bytes, level: int) -> bytes:
    """*data* as a raw deflate stream, as zip members hold it."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def assemble(name: str, data: bytes, mode: int, digest: str, packed: bytes | None) -> Member:
    """The member for *data* (whose SHA-256 is *digest*): *packed*, its deflate stream, when
    that is smaller; else stored."""
    if packed is not None and len(packed) < len(data):
        return Member(name, packed, DEFLATED, zlib.crc32(data), len(data), digest, mode)
    return Member(name, data, STORED, zlib.crc32(data), len(data), digest, mode)


def directory(name: str) -> Member:
    """A folder entry (``name`` ends with '/'); written so zipimport sees namespace folders."""
    return Member(name, b"", STORED, 0, 0, "", DIR_MODE)


def shebang_line(interpreter: str) -> bytes:
    """``#!interpreter`` and a newline; refuses what would not be one line Linux honours."""
    from ._runtime.format import MAX_SHEBANG
    from .errors import ConfigError

    text = interpreter.strip()
    line = b"#!" + text.encode("utf-8") + b"\n"
    if not text or any(c in text for c in "\n\r\0") or len(line) > MAX_SHEBANG:
        raise ConfigError(
            f"interpreter {interpreter!r}: must be one non-empty line of at most "
            f"{MAX_SHEBANG - 3} bytes"
        )
    return line


def dos_datetime(epoch: int) -> tuple[int, int]:
    """(time, date) in MS-DOS format for *epoch*, clamped to the range zip can hold, in UTC."""
    t = time.gmtime(min(max(epoch, 315532800), 4354819198))  # 1980-01-01 .. 2107-12-31
    return (
        (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2),
        ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday,
    )


class Sink(Protocol):
    """Where a ZipWriter writes: it only appends."""

    def write(self, data: bytes, /) -> object: ...


class ZipWriter:
    """Writes a prefix (the shebang line) and members to *fp*, hashing everything it writes.

    Offsets are from the start of the file, prefix included, so ``unzip`` sees no extra bytes
    and zipimport needs no adjustment. Only each member's central-directory record is kept,
    never its payload, so memory does not grow with the archive.
    """

    def __init__(self, fp: Sink, prefix: bytes, epoch: int) -> None:
        self._fp = fp
        self._hash = hashlib.sha256()
        self._offset = 0
        self._central: list[tuple[str, bytes]] = []
        self._time, self._date = dos_datetime(epoch)
        self._write(prefix)

    @property
    def count(self) -> int:
        """Members written so far."""
        return len(self._central)

    def _write(self, data: bytes) -> None:
        self._fp.write(data)
        self._hash.update(data)
        self._offset += len(data)

    def add(self, member: Member) -> None:
        """Write one member's local header and payload."""
        name = member.name.encode("utf-8")
        flags = UTF8_FLAG if not member.name.isascii() else 0
        extra = b""
        size, packed = member.size, len(member.payload)
        needed = 20
        if size >= MAX32 or packed >= MAX32:
            extra = struct.pack("<2H2Q", 1, 16, size, packed)
            size = packed = MAX32
            needed = 45
        header = LOCAL.pack(
            LOCAL_SIG, needed, flags, member.method, self._time, self._date,
            member.crc, packed, size, len(name), len(extra),
        )  # fmt: skip
        self._central.append((member.name, self._record(member, self._offset)))
        self._write(header + name + extra)
        self._write(member.payload)

    def add_stream(self, member: Member, chunks: Iterable[bytes]) -> None:
        """Write a member whose (already compressed) payload comes in *chunks*; *member*
        gives its header fields, with an empty payload and ``packed`` set."""
        name = member.name.encode("utf-8")
        flags = UTF8_FLAG if not member.name.isascii() else 0
        if member.size >= MAX32 or member.packed >= MAX32:
            raise ValueError("members of 4 GiB or more are not copied")
        header = LOCAL.pack(
            LOCAL_SIG, 20, flags, member.method, self._time, self._date,
            member.crc, member.packed, member.size, len(name), 0,
        )  # fmt: skip
        self._central.append((member.name, self._record(member, self._offset)))
        self._write(header + name)
        written = 0
        for chunk in chunks:
            self._write(chunk)
            written += len(chunk)
        if written != member.packed:
            raise ValueError(f"{member.name}: {written} bytes, not {member.packed}")

    def finish(self, sign: Callable[[str], str | None] | None = None, *, seal: bool = True) -> str:
        """Write the central directory (sorted by name) and end records; return the digest.

        With *seal*, the comment is the format-2 seal: the digest of every byte but its own
        digits and the signature, which *sign* (given the digest) may supply.
        """
        start = self._offset
        self._central.sort(key=lambda item: item[0])
        for _name, record in self._central:
            self._write(record)
        size = self._offset - start
        count = len(self._central)
        if count >= MAX16 or start >= MAX32 or size >= MAX32:
            end64 = self._offset
            self._write(END64.pack(END64_SIG, 44, MADE_BY, 45, 0, 0, count, count, size, start))
            self._write(LOCATOR64.pack(LOCATOR64_SIG, 0, end64, 1))
            # Saturated, so that a reader without zip64 refuses the file instead of reading
            # another directory.
            count, size, start = MAX16, MAX32, MAX32
        comment_size = SEAL_SIZE if seal else 0
        self._write(END.pack(END_SIG, 0, 0, count, count, size, start, comment_size))
        if not seal:
            return self._hash.hexdigest()
        self._hash.update(SEAL_HEAD)
        self._hash.update(SEAL_SIG)
        digest = self._hash.hexdigest()
        self._fp.write(seal_comment(digest, sign(digest) if sign is not None else None))
        return digest

    def _record(self, member: Member, offset: int) -> bytes:
        name = member.name.encode("utf-8")
        flags = UTF8_FLAG if not member.name.isascii() else 0
        size, packed = member.size, member.packed
        fields: list[int] = []
        if size >= MAX32:
            fields.append(size)
            size = MAX32
        if packed >= MAX32:
            fields.append(packed)
            packed = MAX32
        if offset >= MAX32:
            fields.append(offset)
            offset = MAX32
        extra = struct.pack(f"<2H{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
        needed = 45 if fields else 20
        external = (member.mode & 0xFFFF) << 16 | (_MSDOS_DIR if member.is_dir else 0)
        record = CENTRAL.pack(
            CENTRAL_SIG, MADE_BY, needed, flags, member.method, self._time, self._date,
            member.crc, packed, size, len(name), len(extra), 0, 0, 0, external, offset,
        )  # fmt: skip
        return record + name + extra


#: A pack is copied into the archive as one member without zip64 (see add_stream).
PACK_LIMIT = MAX32


class Packs:
    """The members of the given folders of NATIVE_FOLDER, each folder written as one zip of
    its own (a pack), stored in the archive as ``PACKS_FOLDER/<folder>.zip``.

    The archive's readers list a pack's members under the folder's name; zipimport sees one
    member, where it would read thousands of records at every start. Each pack is spooled to
    a temporary file, so memory does not grow with it.
    """

    def __init__(self, folders: Iterable[str], epoch: int) -> None:
        self._folders = sorted({f if f.endswith("/") else f + "/" for f in folders}, key=len)
        self._epoch = epoch
        self._open: dict[str, tuple[_Spool, ZipWriter]] = {}

    def folder(self, name: str) -> str | None:
        """The folder whose pack *name* goes into, if any."""
        if not name.startswith(NATIVE_FOLDER + "/"):
            return None
        return next((f for f in reversed(self._folders) if name.startswith(f)), None)

    def records(self, names: Iterable[str]) -> int:
        """How many zip records members of these names take: one per name in no pack, one
        per pack."""
        folders = [self.folder(name) for name in names]
        return folders.count(None) + len(set(folders) - {None})

    def take(self, member: Member) -> bool:
        """Add *member* to its pack; False when it is in none (the archive writes it)."""
        folder = self.folder(member.name)
        if folder is None:
            return False
        pack = self._open.get(folder)
        if pack is None:
            spool = _Spool()
            pack = self._open[folder] = (spool, ZipWriter(spool, b"", self._epoch))
        pack[1].add(dataclasses.replace(member, name=member.name[len(folder) :]))
        return True

    def finish(self, writer: ZipWriter) -> None:
        """Write every pack into *writer*, as a stored member."""
        for folder, (spool, inner) in sorted(self._open.items()):
            inner.finish(seal=False)
            size = spool.size
            if size >= PACK_LIMIT:
                from .errors import BuildError

                raise BuildError(
                    f"{folder.rstrip('/')}: its files take 4 GiB or more packed; packer cannot "
                    "store a distribution that large"
                )
            name = f"{PACKS_FOLDER}/{folder[len(NATIVE_FOLDER) + 1 : -1]}.zip"
            member = Member(name, b"", STORED, spool.crc, size, "", FILE_MODE, stream_size=size)
            writer.add_stream(member, spool.chunks())
            spool.close()
        self._open.clear()

    def close(self) -> None:
        for spool, _inner in self._open.values():
            spool.close()
        self._open.clear()


class _Spool:
    """A pack being written: a temporary file (so memory does not grow with the pack) and the
    CRC-32 and size of what went into it, which its member's header needs."""

    def __init__(self) -> None:
        # Closed by Packs.finish() or Packs.close(): it outlives the call that opens it.
        self._file = tempfile.TemporaryFile(prefix="packer-pack-")  # noqa: SIM115
        self.crc = 0
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        return self._file.write(data)

    def chunks(self) -> Iterator[bytes]:
        self._file.seek(0)
        while chunk := self._file.read(1 << 20):
            yield chunk

    def close(self) -> None:
        self._file.close()
