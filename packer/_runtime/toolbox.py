"""Read-only archive tools: info, list, verify, extract. Shared by ``packer`` and by every
archive (``PACKER_TOOLS=1 ./app.pyz info``), so they never diverge.

Everything here reads the file as a zip; nothing imports from it or runs it. Hostile input
(not a zip, truncated, bit flips, path tricks, zip bombs) ends in an :class:`ArchiveError`
with one line, never a traceback.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import stat
import struct
import zipfile
import zlib

from .archive import body_digest, read_end_record
from .errors import ArchiveError
from .layout import FORMAT_VERSION, MANIFEST_NAME

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["Limits", "extract", "info", "list_members", "open_zip", "verify"]

# Everything zipfile and zlib raise on damaged or hostile input.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    struct.error,
    zlib.error,
    binascii.Error,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,
    OverflowError,
    KeyError,
    IndexError,
)


class Limits:
    """Caps that stop zip bombs: member count, total unpacked size, compression ratio."""

    def __init__(
        self, max_members: int = 100000, max_size: int = 4 << 30, max_ratio: float = 200.0
    ) -> None:
        self.max_members = max_members
        self.max_size = max_size
        self.max_ratio = max_ratio


def _name(path: str) -> str:
    return os.path.basename(path) or path


def open_zip(
    path: str, limits: Optional[Limits] = None, check_digest: bool = True
) -> zipfile.ZipFile:
    """Open *path* as a zip, checking the declared counts and sizes against *limits*.

    The end record must be whole (zipfile forgives a cut-off comment), and with
    *check_digest* an archive that records a body digest must match it: a damaged archive is
    refused in one line, and ``verify`` says what is wrong.
    """
    limits = limits or Limits()
    name = _name(path)
    if os.path.isdir(path):
        raise ArchiveError("%s: is a folder, not an archive" % path)
    try:
        with open(path, "rb") as fp:
            end = read_end_record(fp, name)
            recorded = end.fields.get("sha256") if check_digest else None
            if recorded is not None and body_digest(fp, end) != recorded:
                raise ArchiveError(
                    "%s: damaged: the body digest does not match (verify lists what is wrong)"
                    % name
                )
    except FileNotFoundError:
        raise ArchiveError("%s: no such file" % path) from None
    except OSError as exc:
        raise ArchiveError("%s: cannot read: %s" % (path, exc.strerror)) from None
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ArchiveError("%s: no such file" % path) from None
    except _READ_ERRORS as exc:
        raise ArchiveError("%s: not a readable zip archive (%s)" % (name, _why(exc))) from None
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        zf.close()
        raise ArchiveError(
            "%s: %d members, more than the limit of %d" % (name, len(infos), limits.max_members)
        )
    total = sum(i.file_size for i in infos)
    if total > limits.max_size:
        zf.close()
        raise ArchiveError(
            "%s: members unpack to %d bytes, more than the limit of %d"
            % (name, total, limits.max_size)
        )
    for i in infos:
        if i.file_size > 1 << 20 and i.file_size > limits.max_ratio * max(i.compress_size, 1):
            zf.close()
            raise ArchiveError(
                "%s: %s expands %.0f times, more than the limit of %.0f (a zip bomb?)"
                % (name, i.filename, i.file_size / max(i.compress_size, 1), limits.max_ratio)
            )
    return zf


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _interpreter(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fp:
            head = fp.read(512)
    except OSError as exc:
        raise ArchiveError("%s: cannot read: %s" % (path, exc.strerror)) from None
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].strip()
    return line.decode("utf-8", "replace")


def _read_json(zf: zipfile.ZipFile, member: str, name: str) -> Optional[Dict[str, Any]]:
    try:
        raw = zf.read(member)
    except KeyError:
        return None
    except _READ_ERRORS as exc:
        raise ArchiveError("%s: cannot read %s: %s" % (name, member, _why(exc))) from None
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArchiveError("%s: %s is not valid JSON: %s" % (name, member, _why(exc))) from None
    if not isinstance(value, dict):
        raise ArchiveError("%s: %s is not a JSON object" % (name, member))
    return value


def _kind(names: Sequence[str]) -> str:
    present = set(names)
    if MANIFEST_NAME in present:
        return "packer"
    if "environment.json" in present and any(n.startswith("_bootstrap/") for n in names):
        return "shiv"
    if "PEX-INFO" in present:
        return "pex"
    if "__main__.py" in present:
        return "zipapp"
    return "zip"


def info(path: str, limits: Optional[Limits] = None) -> Dict[str, Any]:
    """What an archive is and holds, as a JSON-ready dict; never runs or imports it."""
    name = _name(path)
    # One pass over the body for the digest: open_zip would make a second.
    digest = _digest_status(path)
    if digest["status"] == "mismatch":
        raise ArchiveError(
            "%s: damaged: the body digest does not match (verify lists what is wrong)" % name
        )
    with open_zip(path, limits, check_digest=False) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        kind = _kind(names)
        files = [i for i in infos if not i.is_dir()]
        result: Dict[str, Any] = {
            "path": path,
            "kind": kind,
            "interpreter": _interpreter(path),
            "members": len(files),
            "stored_size": sum(i.file_size for i in files),
            "packed_size": os.path.getsize(path),
            "entry_point": None,
            "requires_python": None,
            "packer_version": None,
            "build_id": None,
            "created": None,
            "distributions": [],
            "native": [],
            "digest": {k: v for k, v in digest.items() if k != "signed"},
            "signature": "present (check it with verify --key)" if digest["signed"] else "absent",
        }
        if kind == "packer":
            manifest = _read_json(zf, MANIFEST_NAME, name) or {}
            entry = manifest.get("entry") or {}
            result.update(
                entry_point=entry.get("value") if isinstance(entry, dict) else None,
                requires_python=manifest.get("requires_python"),
                packer_version=manifest.get("packer_version"),
                build_id=manifest.get("build_id"),
                created=manifest.get("created"),
                format=manifest.get("format"),
                bytecode=manifest.get("bytecode"),
                distributions=[
                    {"name": d.get("name"), "version": d.get("version"), "native": d.get("native")}
                    for d in manifest.get("distributions") or []
                    if isinstance(d, dict)
                ],
            )
            runtime = manifest.get("runtime") or {}
            result["native"] = [
                "%s %s%s"
                % (n.get("name"), n.get("version"), " (optional)" if n.get("optional") else "")
                for n in (runtime.get("native") or [] if isinstance(runtime, dict) else [])
                if isinstance(n, dict)
            ]
        elif kind == "shiv":
            env = _read_json(zf, "environment.json", name) or {}
            result.update(
                entry_point=env.get("entry_point") or env.get("script"),
                build_id=env.get("build_id"),
                created=env.get("built_at"),
                shiv=env,
            )
            result["distributions"] = _dist_infos(names, "site-packages/")
        elif kind == "pex":
            pex = _read_json(zf, "PEX-INFO", name) or {}
            result.update(
                entry_point=pex.get("entry_point"),
                requires_python=", ".join(pex.get("interpreter_constraints") or []) or None,
                build_id=pex.get("code_hash") or pex.get("pex_hash"),
                pex={k: pex.get(k) for k in ("pex_hash", "requirements", "build_properties")},
            )
            result["distributions"] = [
                {"name": key, "version": None, "native": None}
                for key in sorted(pex.get("distributions") or {})
            ]
        result["native"] = (
            result["native"]
            or sorted({n.split("/")[0] for n in names if n.endswith((".so", ".pyd", ".dylib"))})
            if kind != "packer"
            else result["native"]
        )
        return result


def _dist_infos(names: Sequence[str], marker: str) -> List[Dict[str, Any]]:
    found = []
    for n in names:
        if marker in n and n.endswith(".dist-info/METADATA"):
            folder = n.split("/")[-2][: -len(".dist-info")]
            dist, _, version = folder.partition("-")
            found.append({"name": dist, "version": version or None, "native": None})
    return sorted(found, key=lambda d: d["name"])


def _digest_status(path: str) -> Dict[str, Any]:
    try:
        with open(path, "rb") as fp:
            end = read_end_record(fp, _name(path))
            recorded = end.fields.get("sha256")
            signed = "ed25519" in end.fields
            if recorded is None:
                return {"status": "absent", "recorded": None, "actual": None, "signed": signed}
            actual = body_digest(fp, end)
    except FileNotFoundError:
        raise ArchiveError("%s: no such file" % path) from None
    except IsADirectoryError:
        raise ArchiveError("%s: is a folder, not an archive" % path) from None
    except OSError as exc:
        raise ArchiveError("%s: cannot read: %s" % (path, exc.strerror)) from None
    status = "ok" if actual == recorded else "mismatch"
    return {"status": status, "recorded": recorded, "actual": actual, "signed": signed}


def list_members(path: str, limits: Optional[Limits] = None) -> List[Dict[str, Any]]:
    """Every member: name, size, packed size, CRC, mode, kind, in central-directory order."""
    with open_zip(path, limits) as zf:
        return [_describe(i) for i in zf.infolist()]


def _describe(i: zipfile.ZipInfo) -> Dict[str, Any]:
    mode = i.external_attr >> 16
    kind = "dir" if i.is_dir() else "symlink" if stat.S_ISLNK(mode) else "file"
    return {
        "name": i.filename,
        "size": i.file_size,
        "packed": i.compress_size,
        "crc": "%08x" % i.CRC,
        "mode": "%o" % (mode & 0o7777) if mode else None,
        "kind": kind,
        "method": {0: "stored", 8: "deflated", 12: "bzip2", 14: "lzma"}.get(
            i.compress_type, str(i.compress_type)
        ),
    }


def verify(path: str, limits: Optional[Limits] = None) -> Tuple[List[str], Dict[str, Any]]:
    """Check an archive; return (every problem found, one line each; facts checked).

    A packer archive is checked against the digest in its zip comment and every member
    against the manifest's SHA-256 and size; any zip has its CRCs checked. A digest detects
    corruption; it does not tell who made the archive.
    """
    # Hashing and inflating release the GIL: the body digest and the members are checked
    # on all cores at once.
    from concurrent.futures import ThreadPoolExecutor

    name = _name(path)
    problems: List[str] = []
    facts: Dict[str, Any] = {"kind": None, "members_checked": 0, "digest": None}
    pool = ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 1)))
    try:
        return _verify(path, name, limits, problems, facts, pool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _verify(
    path: str,
    name: str,
    limits: Optional[Limits],
    problems: List[str],
    facts: Dict[str, Any],
    pool: Any,
) -> Tuple[List[str], Dict[str, Any]]:
    pending_digest = pool.submit(_digest_status, path)
    # Open (and so check the zip structure) while the digest is computed.
    zf = open_zip(path, limits, check_digest=False)
    try:
        digest = pending_digest.result()
    except BaseException:
        zf.close()
        raise
    facts["digest"] = digest["status"]
    if digest["status"] == "mismatch":
        problems.append(
            "%s: body digest mismatch: recorded %s, actual %s"
            % (name, digest["recorded"], digest["actual"])
        )
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        facts["kind"] = kind = _kind(names)
        seen = set()
        for n in names:
            if n in seen:
                problems.append("%s: member %r appears more than once" % (name, n))
            seen.add(n)
        manifest: Dict[str, Any] = {}
        if kind == "packer":
            if digest["status"] == "absent":
                problems.append("%s: no digest in the zip comment" % name)
            try:
                manifest = _read_json(zf, MANIFEST_NAME, name) or {}
            except ArchiveError as exc:
                problems.append(str(exc))
            fmt = manifest.get("format")
            if manifest and fmt != FORMAT_VERSION:
                problems.append("%s: manifest format %r is not %d" % (name, fmt, FORMAT_VERSION))
        recorded = manifest.get("members") if isinstance(manifest.get("members"), dict) else {}
        files = [i for i in infos if not i.is_dir()]
        fd = os.open(path, os.O_RDONLY)
        try:
            checks = [
                pool.submit(
                    _check_member, zf, i, recorded.get(i.filename) if recorded else None, name, fd
                )
                for i in files
            ]
            results = [check.result() for check in checks]
        finally:
            os.close(fd)
        for index, i in enumerate(files):
            expected = recorded.get(i.filename) if recorded else None
            problem = results[index]
            facts["members_checked"] += 1
            if problem:
                problems.append(problem)
            extra = expected is None and bool(manifest) and i.filename != MANIFEST_NAME
            if kind == "packer" and extra:
                problems.append("%s: member %r is not in the manifest" % (name, i.filename))
        for member in sorted(set(recorded or {}) - seen):
            problems.append("%s: member %r is in the manifest but missing" % (name, member))
    return problems, facts


_WHOLE = 64 << 20  # members up to this size are checked in one read and one inflate


def _check_member(
    zf: zipfile.ZipFile,
    i: zipfile.ZipInfo,
    expected: Optional[Dict[str, Any]],
    name: str,
    fd: int,
) -> Optional[str]:
    digest = hashlib.sha256()
    size = 0
    try:
        if (
            i.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
            and max(i.file_size, i.compress_size) <= _WHOLE
        ):
            # Few, large C calls (each releases the GIL), so threads check members in parallel.
            data = _read_whole(fd, i)
            if len(data) != i.file_size:
                raise zipfile.BadZipFile("size %d, the zip says %d" % (len(data), i.file_size))
            if zlib.crc32(data) != i.CRC:
                raise zipfile.BadZipFile("Bad CRC-32 for file %r" % i.filename)
            digest.update(data)
            size = len(data)
        else:
            with zf.open(i) as fp:  # zipfile checks the CRC at the end of the stream
                while True:
                    chunk = fp.read(1 << 20)
                    if not chunk:
                        break
                    digest.update(chunk)
                    size += len(chunk)
    except _READ_ERRORS as exc:
        return "%s: member %r is damaged: %s" % (name, i.filename, _why(exc))
    if expected is None:
        return None
    if size != expected.get("size"):
        return "%s: member %r is %d bytes, the manifest says %s" % (
            name,
            i.filename,
            size,
            expected.get("size"),
        )
    if digest.hexdigest() != expected.get("sha256"):
        return "%s: member %r does not match its SHA-256 in the manifest" % (name, i.filename)
    return None


def _read_whole(fd: int, i: zipfile.ZipInfo) -> bytes:
    header = os.pread(fd, 30, i.header_offset)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local header")
    start = i.header_offset + 30 + int.from_bytes(header[26:28], "little")
    start += int.from_bytes(header[28:30], "little")
    raw = os.pread(fd, i.compress_size, start)
    if len(raw) != i.compress_size:
        raise zipfile.BadZipFile("truncated")
    if i.compress_type == zipfile.ZIP_STORED:
        return raw
    inflater = zlib.decompressobj(-15)
    data = inflater.decompress(raw, i.file_size + 1)
    if not inflater.eof:
        raise zipfile.BadZipFile("deflate stream does not end where the zip says")
    return data


# --- extraction ---------------------------------------------------------------------------


def _unsafe_reason(member: str) -> Optional[str]:
    if not member:
        return "an empty name"
    if "\x00" in member:
        return "a NUL byte"
    if "\\" in member:
        return "a backslash"
    if member.startswith("/") or (len(member) > 1 and member[1] == ":"):
        return "an absolute path"
    parts = member.rstrip("/").split("/")
    if any(part == ".." for part in parts):
        return "a '..' part"
    if any(part == "" for part in parts):
        return "an empty path part"
    return None


def _selected(infos: Sequence[zipfile.ZipInfo], wanted: Sequence[str]) -> List[zipfile.ZipInfo]:
    if not wanted:
        return list(infos)
    chosen = []
    for i in infos:
        for w in wanted:
            w = w.rstrip("/")
            if i.filename.rstrip("/") == w or i.filename.startswith(w + "/"):
                chosen.append(i)
                break
    return chosen


def extract(
    path: str,
    dest: str,
    members: Sequence[str] = (),
    overwrite: bool = False,
    limits: Optional[Limits] = None,
) -> List[str]:
    """Extract *members* (folders select their contents; all when empty) into *dest*.

    Every check runs before anything is written: names that are absolute, hold '..',
    backslashes, drive letters or NUL bytes, duplicates, names that collide on a
    case-insensitive file system, symlinks leading outside *dest*, and a *dest* path that
    passes through a symlink. Existing files are kept unless *overwrite*; the first one is
    named. Returns the files written.
    """
    limits = limits or Limits()
    name = _name(path)
    with open_zip(path, limits) as zf:
        infos = zf.infolist()
        chosen = _selected(infos, members)
        missing = [
            m
            for m in members
            if not any(
                i.filename.rstrip("/") == m.rstrip("/")
                or i.filename.startswith(m.rstrip("/") + "/")
                for i in infos
            )
        ]
        if missing:
            raise ArchiveError("%s: no member %r" % (name, missing[0]))
        real_dest = _check_dest(dest)
        _check_names(name, zf, chosen, real_dest)
        plan = []
        for i in chosen:
            target = os.path.join(real_dest, *i.filename.rstrip("/").split("/"))
            if not i.is_dir() and os.path.lexists(target) and not overwrite:
                raise ArchiveError(
                    "%s: %s exists; not overwritten (use --overwrite)" % (name, target)
                )
            plan.append((i, target))
        written = []
        budget = [limits.max_size]
        for i, target in plan:
            mode = (i.external_attr >> 16) & 0o7777
            if i.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if stat.S_ISLNK(i.external_attr >> 16):
                link = zf.read(i).decode("utf-8")
                if os.path.lexists(target):
                    os.unlink(target)
                os.symlink(link, target)
            else:
                _write_member(zf, i, target, budget, name)
                os.chmod(target, (mode & 0o777) or 0o644)
            written.append(target)
        return written


def _check_dest(dest: str) -> str:
    """*dest* made absolute, refusing a path that passes through a symlink."""
    absolute = os.path.abspath(dest)
    probe = absolute
    while True:
        if os.path.islink(probe):
            raise ArchiveError(
                "%s: the destination passes through a symlink (%s); give the real path"
                % (dest, probe)
            )
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if os.path.exists(absolute) and not os.path.isdir(absolute):
        raise ArchiveError("%s: the destination is not a folder" % dest)
    return absolute


def _check_names(
    name: str, zf: zipfile.ZipFile, chosen: Sequence[zipfile.ZipInfo], dest: str
) -> None:
    seen: Dict[str, str] = {}
    folded: Dict[str, str] = {}
    for i in chosen:
        member = i.filename
        # zipfile cuts a name at its first NUL; the name as stored is kept in orig_filename.
        reason = _unsafe_reason(getattr(i, "orig_filename", member))
        if reason:
            raise ArchiveError("%s: member %r has %s; nothing extracted" % (name, member, reason))
        key = member.rstrip("/")
        if key in seen:
            raise ArchiveError("%s: member %r appears twice; nothing extracted" % (name, member))
        seen[key] = member
        lower = key.lower()
        if lower in folded and folded[lower] != key:
            raise ArchiveError(
                "%s: members %r and %r collide on a case-insensitive file system; "
                "nothing extracted" % (name, folded[lower], member)
            )
        folded[lower] = key
        target = os.path.normpath(os.path.join(dest, *key.split("/")))
        if not _inside(target, dest):
            raise ArchiveError("%s: member %r escapes the destination" % (name, member))
        parent = os.path.realpath(os.path.dirname(target))
        if not _inside(parent, dest) and parent != dest:
            raise ArchiveError(
                "%s: member %r would be written through a symlink leading out of the "
                "destination; nothing extracted" % (name, member)
            )
        if stat.S_ISLNK(i.external_attr >> 16):
            _check_link(name, zf, i, dest, target)


def _inside(path: str, folder: str) -> bool:
    return (path + os.sep).startswith(folder.rstrip(os.sep) + os.sep)


def _check_link(name: str, zf: zipfile.ZipFile, i: zipfile.ZipInfo, dest: str, target: str) -> None:
    """Refuse a symlink member whose target would lead outside *dest*."""
    if i.file_size > 4096:
        raise ArchiveError("%s: symlink member %r is implausibly long" % (name, i.filename))
    try:
        link = zf.read(i).decode("utf-8")
    except _READ_ERRORS as exc:
        raise ArchiveError("%s: member %r is damaged: %s" % (name, i.filename, _why(exc))) from None
    resolved = os.path.normpath(os.path.join(os.path.dirname(target), link))
    if "\x00" in link or os.path.isabs(link) or not _inside(resolved, dest):
        raise ArchiveError(
            "%s: symlink member %r points outside the destination (%s); nothing extracted"
            % (name, i.filename, link)
        )


def _write_member(
    zf: zipfile.ZipFile, i: zipfile.ZipInfo, target: str, budget: List[int], name: str
) -> None:
    tmp = target + ".packer-tmp"
    try:
        with zf.open(i) as src, open(tmp, "wb") as dst:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise ArchiveError("%s: extracting past the size limit; stopped" % name)
                dst.write(chunk)
        os.replace(tmp, target)
    except _READ_ERRORS as exc:
        raise ArchiveError("%s: member %r is damaged: %s" % (name, i.filename, _why(exc))) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
