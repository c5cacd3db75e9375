"""Convert an archive: ``zip`` (no stub, any zip tool), ``tar`` (a .tar.gz), ``pyz`` (a shebang).

Members are copied as they are stored, without recompressing; a packer archive gets its
manifest's interpreter line and build id and its body digest rewritten to match. The input
is never modified, and the output appears only once complete.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import hashlib
import io
import json
import os
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from ._runtime.archive import format_comment
from ._runtime.layout import MANIFEST_NAME
from ._runtime.toolbox import Limits, open_zip
from .config import DEFAULT_INTERPRETER
from .errors import ArchiveError, BuildError
from .zipwriter import Member, ZipWriter

__all__ = ["FORMATS", "convert"]

FORMATS = ("zip", "tar", "pyz")
_LOCAL = struct.Struct("<4s5H3L2H")


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
    with open_zip(str(src), limits) as zf, _atomic(out) as fp:
        if to == "tar":
            _write_tar(zf, fp, src.name)
        else:
            prefix = b""
            if to == "pyz":
                line = interpreter or _existing_interpreter(src) or DEFAULT_INTERPRETER
                if not line.strip() or "\n" in line or "\0" in line:
                    raise BuildError(f"interpreter {line!r}: must be one non-empty line")
                prefix = b"#!" + line.strip().encode("utf-8") + b"\n"
            _write_zip(zf, fp, src, prefix)
    if to == "pyz":
        mask = os.umask(0)
        os.umask(mask)
        out.chmod(0o777 & ~mask)
    return out


@contextlib.contextmanager
def _atomic(out: Path) -> Iterator[io.BufferedWriter]:
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fp:
            yield fp
        mask = os.umask(0)
        os.umask(mask)
        tmp.chmod(0o666 & ~mask)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"{out}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _existing_interpreter(path: Path) -> str | None:
    with path.open("rb") as fp:
        head = fp.read(512)
    if head.startswith(b"#!"):
        return head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return None


def _raw(path: Path, fp: io.BufferedReader, info: zipfile.ZipInfo, name: str) -> bytes:
    """A member's stored bytes, exactly as they are in the file (still compressed)."""
    fp.seek(info.header_offset)
    header = fp.read(_LOCAL.size)
    if len(header) != _LOCAL.size or header[:4] != b"PK\x03\x04":
        raise ArchiveError(f"{name}: bad local header for {info.filename!r}")
    fields = _LOCAL.unpack(header)
    fp.seek(info.header_offset + _LOCAL.size + fields[-2] + fields[-1])
    data = fp.read(info.compress_size)
    if len(data) != info.compress_size:
        raise ArchiveError(f"{name}: {info.filename!r} is truncated")
    return data


def _write_zip(zf: zipfile.ZipFile, out: io.BufferedWriter, src: Path, prefix: bytes) -> None:
    name = src.name
    infos = zf.infolist()
    manifest_info = next((i for i in infos if i.filename == MANIFEST_NAME), None)
    epoch = _epoch(infos)
    writer = ZipWriter(out, prefix, epoch)
    with src.open("rb") as raw:
        for info in infos:
            if info is manifest_info:
                continue
            mode = (info.external_attr >> 16) or (0o40755 if info.is_dir() else 0o100644)
            payload = b"" if info.is_dir() else _raw(src, raw, info, name)
            writer.add(
                Member(
                    info.filename, payload, info.compress_type, info.CRC, info.file_size, "", mode
                )
            )
    if manifest_info is not None:
        manifest = json.loads(zf.read(manifest_info).decode("utf-8"))
        manifest.pop("build_id", None)
        manifest["interpreter"] = prefix[2:].decode("utf-8").strip() if prefix else None
        canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        manifest["build_id"] = hashlib.sha256(canonical).hexdigest()[:16]
        data = json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8") + b"\n"
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        packed = compressor.compress(data) + compressor.flush()
        writer.add(Member(MANIFEST_NAME, packed, 8, zlib.crc32(data), len(data), "", 0o100644))
        writer.finish(lambda digest: format_comment({"sha256": digest}))
    else:
        writer.finish(lambda digest: b"")


def _epoch(infos: list[zipfile.ZipInfo]) -> int:
    if not infos:
        return 315532800
    year, month, day, hour, minute, second = infos[0].date_time
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def _write_tar(zf: zipfile.ZipFile, out: io.BufferedWriter, name: str) -> None:
    """A reproducible .tar.gz of the members: fixed owner, the zip's times and modes."""
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for info in zf.infolist():
            entry = tarfile.TarInfo(info.filename.rstrip("/"))
            entry.mtime = calendar.timegm((*info.date_time, 0, 0, 0))
            entry.uid = entry.gid = 0
            entry.uname = entry.gname = ""
            mode = (info.external_attr >> 16) & 0o7777
            if info.is_dir():
                entry.type = tarfile.DIRTYPE
                entry.mode = mode or 0o755
                tar.addfile(entry)
                continue
            try:
                data = zf.read(info)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise ArchiveError(f"{name}: member {info.filename!r} is damaged: {exc}") from None
            entry.mode = mode or 0o644
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
