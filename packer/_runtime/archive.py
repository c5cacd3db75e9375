"""Read the parts of an archive that the zip format does not cover: digest and manifest.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

from .errors import ArchiveError
from .layout import COMMENT_PREFIX, MANIFEST_NAME

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import IO, Any, Dict, Optional

__all__ = [
    "EndRecord",
    "body_digest",
    "format_comment",
    "parse_comment",
    "read_end_record",
    "read_manifest",
]

_END_SIGNATURE = b"PK\x05\x06"
_END_SIZE = 22
# The end record is the last thing in a zip but for its comment, which is at most 64 KiB.
_MAX_TAIL = _END_SIZE + 0xFFFF
# The digest covers every byte before the end record's comment-length field, so that the
# comment (where the digest itself is kept) can change without changing what is digested.
_COMMENT_LENGTH_OFFSET = 20
_CHUNK = 1 << 20


class EndRecord:
    """Where a zip's end-of-central-directory record is and what its comment says."""

    __slots__ = ("comment", "fields", "offset", "size")

    def __init__(self, offset: int, comment: bytes, size: int) -> None:
        self.offset = offset
        self.comment = comment
        self.size = size
        self.fields = parse_comment(comment)

    @property
    def body_length(self) -> int:
        """How many leading bytes of the file the digest covers."""
        return self.offset + _COMMENT_LENGTH_OFFSET


def read_end_record(fp: IO[bytes], name: str = "archive") -> EndRecord:
    """Find the end-of-central-directory record of the zip open in *fp*."""
    fp.seek(0, os.SEEK_END)
    size = fp.tell()
    if size < _END_SIZE:
        raise ArchiveError("%s: not a zip archive (%d bytes is too short)" % (name, size))
    tail_length = min(size, _MAX_TAIL)
    fp.seek(size - tail_length)
    tail = fp.read(tail_length)
    pos = tail.rfind(_END_SIGNATURE)
    while pos >= 0:
        if pos + _END_SIZE <= tail_length:
            comment_length = int.from_bytes(tail[pos + 20 : pos + 22], "little")
            if pos + _END_SIZE + comment_length == tail_length:
                return EndRecord(size - tail_length + pos, tail[pos + _END_SIZE :], size)
        pos = tail.rfind(_END_SIGNATURE, 0, pos)
    raise ArchiveError("%s: not a zip archive (no end-of-central-directory record)" % name)


def parse_comment(comment: bytes) -> Dict[str, str]:
    """The ``key=value`` fields of a packer zip comment; empty for any other comment."""
    words = comment.split(b" ")
    if not words or words[0] != COMMENT_PREFIX:
        return {}
    fields = {}
    for word in words[1:]:
        key, sep, value = word.partition(b"=")
        if sep and key:
            fields[key.decode("ascii", "replace")] = value.decode("ascii", "replace")
    return fields


def format_comment(fields: Dict[str, str]) -> bytes:
    """The zip comment that records *fields* (kept in the order given)."""
    parts = [COMMENT_PREFIX]
    for key, value in fields.items():
        parts.append(("%s=%s" % (key, value)).encode("ascii"))
    return b" ".join(parts)


def body_digest(fp: IO[bytes], end: EndRecord) -> str:
    """SHA-256 (hex) of the archive body: every byte before the comment-length field."""
    digest = hashlib.sha256()
    fp.seek(0)
    remaining = end.body_length
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    while remaining > 0:
        n = fp.readinto(view[: min(remaining, _CHUNK)])  # type: ignore[attr-defined]
        if not n:
            raise ArchiveError("archive: truncated while reading the body")
        digest.update(view[:n])
        remaining -= n
    return digest.hexdigest()


def read_manifest(archive: zipfile.ZipFile, name: str = "archive") -> Optional[Dict[str, Any]]:
    """The archive's manifest, or None when it has none (it is not a packer archive)."""
    try:
        raw = archive.read(MANIFEST_NAME)
    except KeyError:
        return None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveError("%s: cannot read %s: %s" % (name, MANIFEST_NAME, exc)) from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArchiveError("%s: %s is not valid JSON: %s" % (name, MANIFEST_NAME, exc)) from None
    if not isinstance(manifest, dict):
        raise ArchiveError("%s: %s is not a JSON object" % (name, MANIFEST_NAME))
    return manifest
