"""Convert an archive: ``zip`` (no stub, any zip tool), ``tar`` (a .tar.gz), ``pyz`` (a shebang).

Members are copied as they are stored, without recompressing, and streamed: no member is
held whole. A packer archive gets its manifest's interpreter line and build id rewritten
and a new seal (a signature does not survive: the bytes it covered changed). The input is
never modified, and the output appears only once complete.
"""

from __future__ import annotations

import calendar
import gzip
import io
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ._runtime.format import MANIFEST_NAME, Archive, Limits, open_archive
from ._runtime.inspection import refuse_damaged
from .config import DEFAULT_INTERPRETER
from .errors import BuildError
from .output import atomic_output, new_file_mode
from .zipwriter import FILE_MODE, Member, ZipWriter, prepare, shebang_line

__all__ = ["FORMATS", "convert", "member_epoch"]

FORMATS = ("zip", "tar", "pyz")


def convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    to: str,
    *,
    interpreter: str | None = None,
    limits: Limits | None = None,
) -> Path:
    """Write *source* converted *to* ``zip``, ``tar`` or ``pyz`` at *output*; return its path."""
    src = Path(source)
    out = Path(os.path.abspath(output))
    if to not in FORMATS:
        raise BuildError(f"cannot convert to {to!r}: choose one of {', '.join(FORMATS)}")
    if out.exists() and src.exists() and os.path.samefile(src, out):
        raise BuildError(f"{out}: the output would overwrite the input")
    if not out.parent.is_dir():
        raise BuildError(f"{out}: the output folder {out.parent} does not exist")
    if out.is_dir():
        raise BuildError(f"{out}: is a folder; give the output's file name")
    if to != "pyz" and interpreter is not None:
        raise BuildError("-p/--python only goes with --to pyz")
    with open_archive(str(src), limits) as archive:
        refuse_damaged(archive)
        manifest = archive.manifest() if archive.layout.strict else None
        if to != "tar" and manifest is not None and manifest.runtime.signed_by:
            raise BuildError(
                f"{src.name}: its stub requires its signature at start, which a converted "
                "copy cannot carry (the signed bytes change); rebuild it instead"
            )
        prefix = b""
        if to == "pyz":
            prefix = shebang_line(interpreter or archive.layout.interpreter or DEFAULT_INTERPRETER)
        with atomic_output(out, new_file_mode(executable=to == "pyz")) as fp:
            if to == "tar":
                _write_tar(archive, fp)
            else:
                _write_zip(archive, fp, prefix)
    return out


def _write_zip(archive: Archive, out: BinaryIO, prefix: bytes) -> None:
    entries = archive.entries
    manifest = archive.manifest() if archive.layout.strict else None
    writer = ZipWriter(out, prefix, member_epoch(manifest.created if manifest else None))
    for entry in entries:
        if entry.name == MANIFEST_NAME:
            continue
        mode = entry.mode or (0o40755 if entry.is_dir else 0o100644)
        member = Member(entry.name, b"", entry.method, entry.crc, entry.size, "", mode,
                        stream_size=entry.compressed)  # fmt: skip
        writer.add_stream(member, archive.raw_chunks(entry))
    if manifest is None:
        writer.finish(seal=False)
        return
    manifest.interpreter = prefix[2:].decode("utf-8").strip() if prefix else None
    writer.add(prepare(MANIFEST_NAME, manifest.to_bytes(), FILE_MODE, 6))
    writer.finish()


def member_epoch(created: str | None) -> int:
    """The time every member gets: the packer archive's recorded build time, else 1980."""
    if created is None:
        return 315532800
    try:
        return calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return 315532800


class _Reader(io.RawIOBase):
    """A member's bytes as the file object tarfile reads from."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _write_tar(archive: Archive, out: BinaryIO) -> None:
    """A reproducible .tar.gz of the members: fixed owner, the zip's times and modes."""
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in archive.entries:
            info = tarfile.TarInfo(entry.name.rstrip("/"))
            info.mtime = calendar.timegm((1980, 1, 1, 0, 0, 0, 0, 0, 0))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            mode = entry.mode & 0o7777
            if entry.is_dir:
                info.type = tarfile.DIRTYPE
                info.mode = mode or 0o755
                tar.addfile(info)
            elif entry.is_link:
                info.type = tarfile.SYMTYPE
                info.linkname = archive.read(entry).decode("utf-8", "replace")
                info.mode = 0o777
                tar.addfile(info)
            else:
                info.mode = mode or 0o644
                info.size = entry.size
                tar.addfile(info, _Reader(archive.chunks(entry)))
