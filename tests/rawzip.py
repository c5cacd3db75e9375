"""A raw zip writer for the tests' hostile archives: every field can be set or broken.

It shares no code with packer's writer or parser, so a bug there cannot hide here: the
records are packed from APPNOTE's layouts directly, and the format-2 seal is computed from
docs/format.md's words.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SEAL_HEAD = b"packer/2 sha256="
SEAL_SIG = b" ed25519="
UNSIGNED = b"-" * 88
SEAL_SIZE = len(SEAL_HEAD) + 64 + len(SEAL_SIG) + 88
FILE = 0o100644
FOLDER = 0o040755
LINK = 0o120777


@dataclass
class Raw:
    """One member; anything left None is computed to be consistent."""

    name: str | bytes
    data: bytes = b""
    deflate: bool = False
    mode: int = FILE
    crc: int | None = None
    local_crc: int | None = None
    size: int | None = None
    csize: int | None = None
    flags: int | None = None
    local_name: bytes | None = None
    local_extra: bytes = b""
    central_extra: bytes = b""
    comment: bytes = b""
    made_by: int = (3 << 8) | 20
    offset: int | None = None  # set by the writer; force it to point elsewhere
    payload: bytes = field(default=b"", init=False)

    def __post_init__(self) -> None:
        if self.deflate:
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.payload = packer.compress(self.data) + packer.flush()
        else:
            self.payload = self.data

    @property
    def raw_name(self) -> bytes:
        return self.name if isinstance(self.name, bytes) else self.name.encode("utf-8")

    def _flags(self) -> int:
        if self.flags is not None:
            return self.flags
        return 0 if self.raw_name.isascii() else 0x800

    def fields(self) -> tuple[int, int, int]:
        crc = zlib.crc32(self.data) if self.crc is None else self.crc
        size = len(self.data) if self.size is None else self.size
        csize = len(self.payload) if self.csize is None else self.csize
        return crc, csize, size

    def local(self) -> bytes:
        crc, csize, size = self.fields()
        crc = crc if self.local_crc is None else self.local_crc
        name = self.raw_name if self.local_name is None else self.local_name
        head = struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, self._flags(), 8 if self.deflate else 0, 0, 33,
            crc, csize, size, len(name), len(self.local_extra),
        )  # fmt: skip
        return head + name + self.local_extra + self.payload

    def central(self, offset: int) -> bytes:
        crc, csize, size = self.fields()
        name = self.raw_name
        head = struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", self.made_by, 20, self._flags(),
            8 if self.deflate else 0, 0, 33, crc, csize, size, len(name),
            len(self.central_extra), len(self.comment), 0, 0, (self.mode & 0xFFFF) << 16,
            offset if self.offset is None else self.offset,
        )  # fmt: skip
        return head + name + self.central_extra + self.comment


def end_record(count: int, cd_size: int, cd_offset: int, comment_length: int) -> bytes:
    return struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, comment_length
    )


def end64_record(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, (3 << 8) | 45, 45, 0, 0, count, count, cd_size, cd_offset
    )


def locator64(end64_offset: int) -> bytes:
    return struct.pack("<4sLQL", b"PK\x06\x07", 0, end64_offset, 1)


@dataclass
class Parts:
    """An archive written in pieces: where each piece starts, for forgeries to splice."""

    data: bytes
    offsets: list[int]
    cd_offset: int
    cd_size: int


def locals_and_directory(members: Sequence[Raw], prefix: bytes = b"", start: int = 0) -> Parts:
    """Local records then a central directory (in the order given), offsets from *start*."""
    body = bytearray(prefix)
    offsets = []
    for m in members:
        offsets.append(start + len(body))
        body += m.local()
    cd_offset = start + len(body)
    for m, at in zip(members, offsets, strict=True):
        body += m.central(at)
    return Parts(bytes(body), offsets, cd_offset, start + len(body) - cd_offset)


def archive(members: Sequence[Raw], prefix: bytes = b"", comment: bytes = b"") -> bytes:
    """A zip of *members* (in the order given) with *comment*."""
    parts = locals_and_directory(members, prefix)
    return (
        parts.data
        + end_record(len(members), parts.cd_size, parts.cd_offset, len(comment))
        + (comment)
    )


def seal_digest(data: bytes) -> str:
    """The format-2 digest of a file whose last SEAL_SIZE bytes are its seal."""
    cut = len(data) - SEAL_SIZE
    return hashlib.sha256(data[: cut + len(SEAL_HEAD)] + SEAL_SIG).hexdigest()


def seal(data_without_seal: bytes, signature: bytes = UNSIGNED) -> bytes:
    """*data_without_seal* (ending in an end record announcing SEAL_SIZE comment bytes) with
    a correct format-2 seal appended."""
    placeholder = SEAL_HEAD + b"0" * 64 + SEAL_SIG + signature
    digest = seal_digest(data_without_seal + placeholder)
    return data_without_seal + SEAL_HEAD + digest.encode() + SEAL_SIG + signature


def sealed_archive(members: Sequence[Raw], prefix: bytes = b"") -> bytes:
    """A zip of *members* that ends in a correct, unsigned format-2 seal."""
    parts = locals_and_directory(members, prefix)
    head = parts.data + end_record(len(members), parts.cd_size, parts.cd_offset, SEAL_SIZE)
    return seal(head)


def manifest_member(members: Iterable[Raw], **overrides: object) -> Raw:
    """A format-2 manifest listing *members* (files only) with their real hashes."""
    listed = {}
    for m in members:
        name = m.raw_name.decode("utf-8", "replace")
        if not name.endswith("/"):
            listed[name] = {"sha256": hashlib.sha256(m.data).hexdigest(), "size": len(m.data)}
    body: dict[str, object] = {
        "format": 2,
        "packer_version": "0",
        "build_id": "0" * 16,
        "created": None,
        "entry": {"kind": "module", "value": "__packer_main__"},
        "interpreter": None,
        "requires_python": None,
        "bytecode": None,
        "distributions": [],
        "runtime": {},
        "members": listed,
    }
    body.update(overrides)
    return Raw("_packer/manifest.json", json.dumps(body, sort_keys=True).encode())


def packer_like(files: dict[str, bytes], **manifest: object) -> bytes:
    """A canonical-looking packer archive of *files* (sorted, sealed, with a manifest)."""
    members = [Raw(name, data) for name, data in files.items()]
    members.append(manifest_member(members, **manifest))
    members.sort(key=lambda m: m.raw_name)
    return sealed_archive(members)


def signature_of(key_pem: bytes, digest: str) -> bytes:
    """The base64 Ed25519 signature packer makes of *digest* (for forgeries that re-sign)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_pem, password=None)
    return base64.b64encode(key.sign(SEAL_HEAD + digest.encode()))  # type: ignore[union-attr,call-arg]
