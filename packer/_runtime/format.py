"""The packer archive format (version 2): its one definition, used by every side.

The builder, the runtime, the read-side tools, signing, convert and diff all read and write
archives through this module: the member layout, the zip records, the strict ("canonical")
parse, the seal in the zip comment (digest and signature), the typed manifest and runtime
configuration, and the build id. docs/format.md describes the same rules in prose.

It is longer than the other modules on purpose: splitting the definition of one format over
several files is how its readers came to disagree.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import os
import stat
import struct
import zlib

from .errors import ArchiveError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = [
    "APP_MAIN_MODULE",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "NATIVE_FOLDER",
    "PACKS_FOLDER",
    "RESERVED_PREFIXES",
    "RUNTIME_CONFIG_NAME",
    "RUNTIME_PACKAGE",
    "SITE_PACKAGES",
    "STUB_NAME",
    "VARIANTS_FOLDER",
    "Archive",
    "Entry",
    "Layout",
    "Limits",
    "Manifest",
    "NotCanonicalError",
    "RuntimeConfig",
    "Seal",
    "Target",
    "Variant",
    "build_id",
    "file_digest",
    "name_problem",
    "native_key",
    "open_archive",
    "parse_layout",
    "read_runtime_config",
    "runtime_config_text",
    "seal_comment",
    "signed_message",
    "sources_key",
]

# --- members ---------------------------------------------------------------------------------

#: Bumped whenever a reader of an older version could misread a newer archive.
FORMAT_VERSION = 2
#: Formats the tools still read (format 1's digest leaves the zip comment out).
READABLE_FORMATS = (1, 2)
#: The generated entry stub; Python runs it for ``python app.pyz``.
STUB_NAME = "__main__.py"
#: The project's own top-level ``__main__.py`` is stored under this module name.
APP_MAIN_MODULE = "__packer_main__"
#: The runtime package copied into every archive (from ``packer/_runtime`` in the repo).
RUNTIME_PACKAGE = "_packer_runtime"
#: The JSON manifest: every other member with its SHA-256 and size.
MANIFEST_NAME = "_packer/manifest.json"

#: The runtime configuration the stub starts with: the ``repr`` of the manifest's ``runtime``
#: (a Python literal: read without importing json, and kept out of the stub's lines, which
#: every traceback of the application shows).
RUNTIME_CONFIG_NAME = "_packer/runtime-config.py"
#: Bundled pure-Python distributions: a folder the runtime puts on sys.path.
SITE_PACKAGES = "_packer/site-packages"
#: Bundled distributions with native code, one folder each, extracted to the cache.
NATIVE_FOLDER = "_packer/native"
#: Each folder of NATIVE_FOLDER stored as one member, ``PACKS_FOLDER/<folder>.zip``: a zip of
#: its own, stored (not deflated), whose members the tools show under ``NATIVE_FOLDER/<folder>/``.
#: Nothing imports them from the archive (they are extracted first), and zipimport reads every
#: member's record at every start, so thousands of them cost milliseconds each run.
PACKS_FOLDER = "_packer/packs"
#: Pure distributions that some targets of a multi-target archive have and others have not,
#: or have in another version: each in a folder of its own, on sys.path for its targets only.
VARIANTS_FOLDER = "_packer/variants"
#: Top-level names the builder writes itself; the project may not supply them.
RESERVED_PREFIXES = ("_packer/", RUNTIME_PACKAGE + "/", APP_MAIN_MODULE + ".py")

# --- zip records (APPNOTE 6.3) -----------------------------------------------------------------

LOCAL = struct.Struct("<4s5H3L2H")
CENTRAL = struct.Struct("<4s6H3L5H2L")
END = struct.Struct("<4s4H2LH")
END64 = struct.Struct("<4sQ2H2L4Q")
LOCATOR64 = struct.Struct("<4sLQL")
LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
END_SIG = b"PK\x05\x06"
END64_SIG = b"PK\x06\x06"
LOCATOR64_SIG = b"PK\x06\x07"
MAX16 = 0xFFFF
MAX32 = 0xFFFFFFFF
STORED = 0
DEFLATED = 8
UTF8_FLAG = 0x800
#: Version "made by": Unix (so the mode in the external attributes counts), spec 2.0.
MADE_BY = (3 << 8) | 20
#: zipfile and zipimport look for the end record this far from the end of the file.
_TAIL = END.size + MAX16 + END64.size + LOCATOR64.size
#: The newest "version needed to extract" zipfile reads (its MAX_EXTRACT_VERSION).
_MAX_NEED = 63
#: Longest shebang line Linux honours (BINPRM_BUF_SIZE).
MAX_SHEBANG = 256

# --- the seal: digest and signature in the zip comment ---------------------------------------
# (hashlib and json are imported where they are used: a warm start needs neither.)

SEAL_HEAD = b"packer/2 sha256="
SEAL_SIG = b" ed25519="
_DIGEST_CHARS = 64
_SIGNATURE_CHARS = 88  # base64 of a 64-byte Ed25519 signature
#: The format-2 zip comment has this fixed size, so that signing changes no length field.
SEAL_SIZE = len(SEAL_HEAD) + _DIGEST_CHARS + len(SEAL_SIG) + _SIGNATURE_CHARS
UNSIGNED = b"-" * _SIGNATURE_CHARS
_HEX = frozenset("0123456789abcdef")
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_CHUNK = 1 << 20


class Seal:
    """What an archive's zip comment says: its format, digest and signature (if any)."""

    __slots__ = ("digest", "format", "signature")

    def __init__(self, format: int, digest: Optional[str], signature: Optional[str]) -> None:
        self.format = format
        self.digest = digest
        self.signature = signature


def signed_message(digest: str) -> bytes:
    """The bytes an Ed25519 signature of a format-2 archive signs."""
    return SEAL_HEAD + digest.encode("ascii")


def seal_comment(digest: str, signature: Optional[str] = None) -> bytes:
    """The format-2 zip comment for *digest* and an optional base64 *signature*."""
    sig = UNSIGNED if signature is None else signature.encode("ascii")
    if len(digest) != _DIGEST_CHARS or len(sig) != _SIGNATURE_CHARS:
        raise ValueError("a digest of 64 hex digits and a signature of 88 base64 characters")
    return SEAL_HEAD + digest.encode("ascii") + SEAL_SIG + sig


def parse_seal(comment: bytes) -> Tuple[Optional[Seal], Optional[str]]:
    """(seal, problem): the seal of a packer zip comment, or (None, None) for another's.

    A comment that claims to be packer's (``packer/``) but is malformed gives a problem.
    """
    if not comment.startswith(b"packer/"):
        return None, None
    if comment.startswith(SEAL_HEAD):
        body = comment[len(SEAL_HEAD) :]
        digest = body[:_DIGEST_CHARS].decode("ascii", "replace")
        rest = body[_DIGEST_CHARS:]
        sig = rest[len(SEAL_SIG) :]
        if (
            len(comment) != SEAL_SIZE
            or not _HEX.issuperset(digest)
            or not rest.startswith(SEAL_SIG)
            or not (sig == UNSIGNED or _B64.issuperset(sig.decode("ascii", "replace")))
        ):
            return None, "the zip comment is not a well-formed packer/2 seal"
        signature = None if sig == UNSIGNED else sig.decode("ascii")
        return Seal(2, digest, signature), None
    if comment.startswith(b"packer/1 "):
        fields = {}
        for word in comment.split(b" ")[1:]:
            key, sep, value = word.partition(b"=")
            if not sep or key in fields:
                return None, "the zip comment is not a well-formed packer/1 seal"
            fields[key] = value.decode("ascii", "replace")
        old = fields.get(b"sha256")
        if old is None or len(old) != 64 or not _HEX.issuperset(old):
            return None, "the zip comment is not a well-formed packer/1 seal"
        return Seal(1, old, fields.get(b"ed25519")), None
    return None, "the zip comment names a packer format this packer does not know"


def file_digest(fp: IO[bytes], layout: Layout) -> str:
    """SHA-256 (hex) of what the archive's seal covers.

    Format 2: every byte of the file but the 64 digest digits and the 88 signature
    characters of the comment. Format 1: every byte before the comment-length field.
    """
    import hashlib

    digest = hashlib.sha256()
    if layout.seal is not None and layout.seal.format == 1:
        _hash_range(fp, 0, layout.end_offset + 20, digest)
        return digest.hexdigest()
    start = layout.size - SEAL_SIZE
    _hash_range(fp, 0, start + len(SEAL_HEAD), digest)
    digest.update(SEAL_SIG)
    return digest.hexdigest()


def _hash_range(fp: IO[bytes], start: int, end: int, digest: Any) -> None:
    # pread, into one buffer reused: safe beside other threads reading members from the same
    # descriptor, and no fresh megabyte of memory (a page fault per page) for every read.
    fd = fp.fileno()
    buffer = bytearray(min(_CHUNK, max(end - start, 1)))
    view = memoryview(buffer)
    at = start
    while at < end:
        want = min(len(buffer), end - at)
        if hasattr(os, "preadv"):
            n = os.preadv(fd, [view[:want]], at)
            chunk: Any = view[:n]
        else:  # pragma: no cover - systems without preadv
            chunk = os.pread(fd, want, at)
            n = len(chunk)
        if not n:
            raise ArchiveError("archive: truncated while computing its digest")
        digest.update(chunk)
        at += n


# --- limits ----------------------------------------------------------------------------------


class Limits:
    """Caps that stop zip bombs, checked on the central directory before anything is read:
    member count, total unpacked size, the whole archive's expansion, and each large
    member's. Every reader applies them (verify, extract, convert, diff, info, list)."""

    __slots__ = ("max_members", "max_ratio", "max_size")

    def __init__(
        self, max_members: int = 200000, max_size: int = 4 << 30, max_ratio: float = 200.0
    ) -> None:
        self.max_members = max_members
        self.max_size = max_size
        self.max_ratio = max_ratio


#: Members up to this size may expand past the ratio (a file of zeros): they cannot add up
#: to much, and the total and whole-archive checks still hold.
_RATIO_FLOOR = 1 << 20


# --- names -----------------------------------------------------------------------------------


def name_problem(name: str) -> Optional[str]:
    """Why *name* is not a member name packer accepts (None when it is fine)."""
    if not name:
        return "an empty name"
    if "\x00" in name:
        return "a NUL byte"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a control character"
    if "\\" in name:
        return "a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    parts = (name[:-1] if name.endswith("/") else name).split("/")
    if any(part == ".." for part in parts):
        return "a '..' part"
    if any(part in ("", ".") for part in parts):
        return "an empty or '.' path part"
    return None


# --- the parse -------------------------------------------------------------------------------


class Entry:
    """One member as the central directory says, checked against its local header."""

    __slots__ = (
        "compressed",
        "crc",
        "data_offset",
        "header_offset",
        "method",
        "mode",
        "name",
        "raw_name",
        "size",
    )

    def __init__(
        self,
        name: str,
        raw_name: bytes,
        method: int,
        crc: int,
        compressed: int,
        size: int,
        mode: int,
        header_offset: int,
    ) -> None:
        self.name = name
        self.raw_name = raw_name
        self.method = method
        self.crc = crc
        self.compressed = compressed
        self.size = size
        self.mode = mode
        self.header_offset = header_offset
        self.data_offset = -1

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.mode)


class Layout:
    """Where everything is in an archive file, as every reader will see it."""

    __slots__ = (
        "by_name", "end_offset", "entries", "packs", "prefix", "records", "seal", "size",
        "strict", "zip64",
    )  # fmt: skip

    def __init__(self) -> None:
        self.size = 0
        self.prefix = b""
        #: The members, a pack's under their own names (see PACKS_FOLDER), in name order.
        self.entries: List[Entry] = []
        self.by_name: Dict[str, Entry] = {}
        #: The pack members themselves, as the zip lists them.
        self.packs: List[Entry] = []
        #: Records in the central directory (a pack is one).
        self.records = 0
        self.end_offset = 0
        self.seal: Optional[Seal] = None
        self.strict = False
        self.zip64 = False

    @property
    def interpreter(self) -> Optional[str]:
        if not self.prefix.startswith(b"#!"):
            return None
        return self.prefix[2:].rstrip(b"\n").decode("utf-8", "replace").strip()


class NotCanonicalError(ArchiveError):
    """The file is not an archive every reader would read alike; ``problems`` lists why."""

    def __init__(self, name: str, problems: List[str], strict: bool) -> None:
        self.problems = problems
        self.strict = strict
        what = "not a canonical packer archive" if strict else "not a readable zip archive"
        more = " (and %d more; verify lists them)" % (len(problems) - 1) if problems[1:] else ""
        super().__init__("%s: %s: %s%s" % (name, what, problems[0], more))


def parse_layout(
    fp: IO[bytes],
    name: str,
    limits: Optional[Limits] = None,
    strict: bool = False,
    pack: bool = False,
) -> Layout:
    """Read *fp*'s zip structure and refuse anything two readers could read differently.

    A packer archive (its comment is a packer seal, or it holds a manifest) must be
    canonical: one end record ending the file, a contiguous central directory in name order,
    local records tiling the space before it and matching it, zip64 only where needed.
    Any other zip is read leniently, but overlapping, duplicate or mismatched records are
    refused all the same. Raises :class:`NotCanonicalError` listing every problem found.
    *strict* holds any archive to the canonical rules. The members of each pack (see
    PACKS_FOLDER) are read by the same rules and listed under their folder's name; *pack*
    reads one such inner zip (canonical, but no manifest, seal, comment or prefix).
    """
    limits = limits or Limits()
    problems: List[str] = []
    layout = Layout()
    fp.seek(0, os.SEEK_END)
    size = layout.size = fp.tell()
    if size < END.size:
        raise ArchiveError("%s: not a zip archive (%d bytes is too short)" % (name, size))
    tail_start = max(0, size - _TAIL)
    fp.seek(tail_start)
    tail = fp.read(size - tail_start)
    # zipfile and zipimport both take the last end-record signature in the tail.
    pos = tail.rfind(END_SIG, max(0, len(tail) - END.size - MAX16))
    if pos < 0 or pos + END.size > len(tail):
        raise ArchiveError("%s: not a zip archive (no end-of-central-directory record)" % name)
    end_offset = layout.end_offset = tail_start + pos
    (_, disk, cd_disk, disk_count, count, cd_size, cd_offset, comment_length) = END.unpack_from(
        tail, pos
    )
    comment = tail[pos + END.size :]
    seal, seal_problem = parse_seal(comment)
    layout.seal = seal
    strict = layout.strict = strict or pack or seal is not None or seal_problem is not None
    if pack and comment:
        problems.append("it has a zip comment")
    elif seal_problem:
        problems.append(seal_problem)
    if comment_length != len(comment):
        problems.append(
            "the end record's comment is %d bytes, but %d bytes follow it"
            % (comment_length, len(comment))
        )
    if disk or cd_disk or disk_count != count:
        problems.append("the end record describes a multi-disk archive")
    # zip64: zipfile looks for the locator just before the end record, zipimport 3.13 for the
    # zip64 end record 56 bytes before that. Both or neither, and consistent.
    at = pos - LOCATOR64.size
    has_locator = at >= 0 and tail[at : at + 4] == LOCATOR64_SIG
    at64 = pos - LOCATOR64.size - END64.size
    has_end64 = at64 >= 0 and tail[at64 : at64 + 4] == END64_SIG
    cd_end = end_offset
    if has_locator or has_end64:
        if not (has_locator and has_end64):
            _fail(problems, name, strict, "a zip64 end record without its locator, or the reverse")
        layout.zip64 = True
        _, locator_disk, end64_at, disks = LOCATOR64.unpack_from(tail, at)
        fields = END64.unpack_from(tail, at64)
        (_, record_size, _made, _need, d1, d2, n1, n2, size64, offset64) = fields
        if locator_disk or disks > 1 or d1 or d2 or n1 != n2:
            problems.append("the zip64 records describe a multi-disk archive")
        if end64_at != tail_start + at64 or record_size != END64.size - 12:
            problems.append("the zip64 locator does not point at the zip64 end record")
        # zipimport before 3.13 reads only the 16- and 32-bit fields, from the end record's
        # own position: unless they are saturated (so that it refuses the file), it reads
        # another directory than zipfile does.
        if not (count == MAX16 and cd_size == MAX32 and cd_offset == MAX32):
            problems.append(
                "the end record's fields are not saturated beside zip64 records (Python "
                "before 3.13 would read another directory)"
            )
        count, cd_size, cd_offset = n2, size64, offset64
        cd_end = tail_start + at64
        if strict and count < MAX16 and cd_offset < MAX32 and cd_size < MAX32:
            problems.append("zip64 records where none are needed")
    if count > limits.max_members:
        raise ArchiveError(
            "%s: %d members, more than the limit of %d" % (name, count, limits.max_members)
        )
    shift = cd_end - cd_size - cd_offset  # bytes before the zip's own offset 0 (a prefix)
    if cd_size > cd_end or cd_offset > cd_end or shift < 0:
        _fail(problems, name, strict, "the central directory's size or offset is impossible")
    if strict and shift:
        problems.append("the central directory does not end where the end record begins")
    fp.seek(cd_offset + shift)
    directory = fp.read(cd_size)
    if len(directory) != cd_size:
        _fail(problems, name, strict, "the central directory is cut off")
    _read_central(layout, directory, count, shift, strict, problems, pack)
    layout.records = len(layout.entries)
    if not strict and MANIFEST_NAME in layout.by_name:
        # A manifest makes it a packer archive, whatever its comment says: read it again by
        # the canonical rules (a seal stripped off must not buy the lenient ones).
        return parse_layout(fp, name, limits, strict=True)
    if layout.entries and not problems:
        _check_locals(fp, layout, cd_offset + shift, shift, strict, problems)
    if pack and layout.prefix:
        problems.append("there are bytes before its first member")
    elif strict:
        _check_prefix(fp, layout, problems)
    if strict and not pack and not problems:
        _expand_packs(fp, layout, name, limits, problems)
    _check_tree(layout, strict, problems)
    _check_limits(layout, limits, name)
    if problems:
        raise NotCanonicalError(name, problems, strict)
    return layout


def _fail(problems: List[str], name: str, strict: bool, problem: str) -> None:
    """Record a problem that makes reading further pointless, and stop."""
    problems.append(problem)
    raise NotCanonicalError(name, problems, strict)


def _read_central(
    layout: Layout,
    data: bytes,
    count: int,
    shift: int,
    strict: bool,
    problems: List[str],
    pack: bool = False,
) -> None:
    at = 0
    previous = None
    has_manifest = False
    for index in range(count):
        if at + CENTRAL.size > len(data) or data[at : at + 4] != CENTRAL_SIG:
            problems.append("the central directory holds %d records, not %d" % (index, count))
            return
        (_, made_by, need, flags, method, _t, _d, crc, compressed, size, name_length,
         extra_length, comment_length, disk, _internal, external, offset) = CENTRAL.unpack_from(
            data, at
        )  # fmt: skip
        at += CENTRAL.size
        raw = data[at : at + name_length]
        extra = data[at + name_length : at + name_length + extra_length]
        at += name_length + extra_length + comment_length
        if at > len(data):
            problems.append("the central directory is cut off")
            return
        name = _decode_name(raw, flags)
        shown = repr(name)
        if b"\0" in raw:  # zipfile cuts a name at a NUL, zipimport keeps it
            problems.append("member %s has a NUL byte in its name" % shown)
        if flags & UTF8_FLAG and _is_bad_utf8(raw):
            problems.append("member %s has a name that is not UTF-8" % shown)
        if flags & 0x61:
            problems.append("member %s is encrypted or patched (flags %#x)" % (shown, flags))
        if need & 0xFF > _MAX_NEED:  # zipfile refuses to read those
            problems.append("member %s needs zip version %d" % (shown, need & 0xFF))
        elif strict and need not in (20, 45):
            problems.append("member %s gives version %d as needed to extract" % (shown, need))
        if method not in (STORED, DEFLATED):
            problems.append("member %s uses compression method %d" % (shown, method))
        if disk:
            problems.append("member %s is on another disk" % shown)
        compressed, size, offset, zip64_problem = _zip64_extra(extra, compressed, size, offset)
        if zip64_problem:
            problems.append("member %s: %s" % (shown, zip64_problem))
        mode = external >> 16 if made_by >> 8 == 3 else 0
        entry = Entry(name, raw, method, crc, compressed, size, mode, offset + shift)
        if strict:
            problem = name_problem(name)
            if problem:
                problems.append("member %s has %s" % (shown, problem))
            if flags & 0x8:
                problems.append("member %s uses a data descriptor" % shown)
            elif flags & ~UTF8_FLAG:
                problems.append("member %s has flags %#x" % (shown, flags))
            if bool(flags & UTF8_FLAG) != (not raw.isascii()):
                problems.append("member %s: the UTF-8 flag does not match its name" % shown)
            if comment_length:
                problems.append("member %s has a comment" % shown)
            needed = size >= MAX32 or compressed >= MAX32 or offset >= MAX32
            if bool(extra) != needed or (extra and zip64_problem is None and extra[:2] != b"\1\0"):
                problems.append("member %s has extra fields it does not need" % shown)
            if made_by >> 8 != 3:
                problems.append("member %s was not made on Unix (no mode)" % shown)
            elif entry.is_dir != stat.S_ISDIR(mode) or not (
                stat.S_ISDIR(mode) or stat.S_ISREG(mode)
            ):
                problems.append("member %s is neither a plain file nor a folder" % shown)
            if entry.is_dir and (size or compressed):
                problems.append("folder member %s has contents" % shown)
            if previous is not None and name <= previous:
                problems.append("the central directory is not in name order at %s" % shown)
        has_manifest = has_manifest or name == MANIFEST_NAME
        if name in layout.by_name:
            problems.append("member %s appears more than once" % shown)
        else:
            layout.by_name[name] = entry
        layout.entries.append(entry)
        previous = name
    if at != len(data):
        problems.append("the central directory has %d bytes after its records" % (len(data) - at))
    if pack:
        return
    if strict and not has_manifest:
        problems.append("no %s" % MANIFEST_NAME)
    if strict and layout.seal is None:
        problems.append("no packer seal (digest) in the zip comment")


def _is_bad_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _decode_name(raw: bytes, flags: int) -> str:
    """The name as zipfile and zipimport decode it; a NUL shows as '\\x00'."""
    if flags & UTF8_FLAG:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", "backslashreplace")
    return raw.decode("cp437")


def _zip64_extra(
    extra: bytes, compressed: int, size: int, offset: int
) -> Tuple[int, int, int, Optional[str]]:
    """Sizes and offset with the zip64 extra field applied, as zipfile applies it."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, at)
        body = extra[at + 4 : at + 4 + length]
        at += 4 + length
        if tag != 1:
            continue
        values = []
        for k in range(len(body) // 8):
            values.append(struct.unpack_from("<Q", body, 8 * k)[0])
        wanted = [size == MAX32, compressed == MAX32, offset == MAX32]
        if len(values) < sum(wanted) or len(body) % 8:
            return compressed, size, offset, "a malformed zip64 extra field"
        if wanted[0]:
            size = values.pop(0)
        if wanted[1]:
            compressed = values.pop(0)
        if wanted[2]:
            offset = values.pop(0)
        if values:
            return compressed, size, offset, "a zip64 extra field with fields it does not need"
    if at != len(extra):
        return compressed, size, offset, "a malformed extra field"
    return compressed, size, offset, None


def _check_locals(
    fp: IO[bytes], layout: Layout, cd_start: int, shift: int, strict: bool, problems: List[str]
) -> None:
    """Every local header matches its central record, and no two members' bytes overlap."""
    regions = []
    for entry in layout.entries:
        shown = repr(entry.name)
        fp.seek(entry.header_offset)
        header = fp.read(LOCAL.size)
        if len(header) != LOCAL.size or header[:4] != LOCAL_SIG:
            problems.append("member %s has no local header where the directory says" % shown)
            continue
        (_, _need, flags, method, _t, _d, crc, compressed, size, name_length,
         extra_length) = LOCAL.unpack(header)  # fmt: skip
        raw = fp.read(name_length)
        extra = fp.read(extra_length)
        if raw != entry.raw_name:
            problems.append("member %s has another name in its local header" % shown)
        if method != entry.method:
            problems.append("member %s: the local header gives another method" % shown)
        if strict or not flags & 0x8:  # a data descriptor leaves these fields 0
            lc, ls, _, _ = _zip64_extra(extra, compressed, size, 0)
            if crc != entry.crc or lc != entry.compressed or ls != entry.size:
                problems.append("member %s: the local header gives other sizes or CRC" % shown)
        entry.data_offset = entry.header_offset + LOCAL.size + name_length + extra_length
        regions.append((entry.header_offset, entry.data_offset + entry.compressed, entry.name))
    regions.sort()
    # The next record starts where one ends (strict) or later (lenient): never inside it.
    for index, (start, end, member) in enumerate(regions):
        if index and start < regions[index - 1][1]:
            problems.append("members %r and %r overlap" % (regions[index - 1][2], member))
        elif strict and index and start != regions[index - 1][1]:
            problems.append("there are unlisted bytes before member %r" % member)
        if end > cd_start:
            problems.append("member %r runs into the central directory" % member)
    if regions:
        if strict and regions[-1][1] != cd_start:
            problems.append("there are unlisted bytes before the central directory")
        layout.prefix = _first_bytes(fp, regions[0][0])


def _first_bytes(fp: IO[bytes], length: int) -> bytes:
    fp.seek(0)
    return fp.read(min(length, MAX_SHEBANG + 1))


def _check_prefix(fp: IO[bytes], layout: Layout, problems: List[str]) -> None:
    """Before the first member: nothing, or one shebang line."""
    if not layout.entries:
        return
    first = min(entry.header_offset for entry in layout.entries)
    prefix = layout.prefix
    if first == 0:
        return
    if (
        first > MAX_SHEBANG
        or len(prefix) != first
        or not prefix.startswith(b"#!")
        or not prefix.endswith(b"\n")
        or b"\n" in prefix[:-1]
        or b"\r" in prefix
        or b"\0" in prefix
    ):
        problems.append("the bytes before the first member are not one shebang line")


class _Window:
    """Bytes *start* to *start* + *length* of *fp*, read as a file of their own: a stored
    pack, parsed where it lies."""

    def __init__(self, fp: IO[bytes], start: int, length: int) -> None:
        self._fp = fp
        self._start = start
        self._length = length
        self._at = 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._at, os.SEEK_END: self._length}[whence]
        self._at = max(0, base + offset)
        return self._at

    def tell(self) -> int:
        return self._at

    def read(self, n: int = -1) -> bytes:
        left = max(0, self._length - self._at)
        n = left if n is None or n < 0 else min(n, left)
        self._fp.seek(self._start + self._at)
        data = self._fp.read(n)
        self._at += len(data)
        return data


def _expand_packs(
    fp: IO[bytes], layout: Layout, name: str, limits: Limits, problems: List[str]
) -> None:
    """List each pack's members in its place (see PACKS_FOLDER), read by the same rules.

    A pack must be stored, so that its members lie in the file where their offsets say, and
    its CRC must hold, as zipfile would check it. Its members' offsets become the file's;
    a name the archive holds outside the pack too is refused.
    """
    packs = [e for e in layout.entries if e.name.startswith(PACKS_FOLDER + "/")]
    if not packs:
        return
    merged = [e for e in layout.entries if not e.name.startswith(PACKS_FOLDER + "/")]
    inside: Dict[str, str] = {}
    for pack in packs:
        shown = repr(pack.name)
        folder = pack.name[len(PACKS_FOLDER) + 1 : -len(".zip")]
        if pack.is_dir or not pack.name.endswith(".zip") or not folder:
            problems.append("member %s is not a pack (%s/FOLDER.zip)" % (shown, PACKS_FOLDER))
            continue
        if pack.method != STORED or pack.compressed != pack.size:
            problems.append("pack %s is compressed (a pack is stored)" % shown)
            continue
        crc = 0
        fp.seek(pack.data_offset)
        left = pack.size
        while left > 0:
            chunk = fp.read(min(left, _CHUNK))
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
        if left or crc != pack.crc:
            problems.append("pack %s is damaged: bad CRC-32" % shown)
            continue
        try:
            window: Any = _Window(fp, pack.data_offset, pack.size)  # all parse_layout uses
            inner = parse_layout(window, pack.name, limits, pack=True)
        except NotCanonicalError as exc:
            problems.extend("pack %s: %s" % (shown, problem) for problem in exc.problems)
            continue
        except ArchiveError as exc:
            problems.append(str(exc))
            continue
        base = "%s/%s/" % (NATIVE_FOLDER, folder)
        for entry in inner.entries:
            entry.name = base + entry.name
            entry.raw_name = entry.name.encode("utf-8")
            entry.header_offset += pack.data_offset
            entry.data_offset += pack.data_offset
            if entry.name in layout.by_name or entry.name in inside:
                problems.append("member %r is in pack %s and elsewhere too" % (entry.name, shown))
            inside[entry.name] = pack.name
            merged.append(entry)
    if len(merged) > limits.max_members:
        raise ArchiveError(
            "%s: %d members, more than the limit of %d" % (name, len(merged), limits.max_members)
        )
    merged.sort(key=lambda e: e.name)
    layout.entries = merged
    layout.by_name = {e.name: e for e in merged}
    layout.packs = packs


def _check_tree(layout: Layout, strict: bool, problems: List[str]) -> None:
    """No member is both a file and a folder (``x`` and ``x/y``)."""
    files = {e.name for e in layout.entries if not e.is_dir}
    for entry in layout.entries:
        parts = entry.name.rstrip("/").split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                problems.append("member %r is a file and also holds %r" % (folder, entry.name))
                return


def _check_limits(layout: Layout, limits: Limits, name: str) -> None:
    total = 0
    for entry in layout.entries:
        total += entry.size
        if entry.size > _RATIO_FLOOR and entry.size > limits.max_ratio * max(entry.compressed, 1):
            raise ArchiveError(
                "%s: member %r expands %.0f times, more than the limit of %.0f (a zip bomb?)"
                % (name, entry.name, entry.size / max(entry.compressed, 1), limits.max_ratio)
            )
    if total > limits.max_size:
        raise ArchiveError(
            "%s: members unpack to %d bytes, more than the limit of %d"
            % (name, total, limits.max_size)
        )
    if total > _RATIO_FLOOR and total > limits.max_ratio * max(layout.size, 1):
        raise ArchiveError(
            "%s: members unpack to %.0f times the archive's size, more than the limit of %.0f "
            "(a zip bomb?)" % (name, total / max(layout.size, 1), limits.max_ratio)
        )


# --- reading members -------------------------------------------------------------------------


class Archive:
    """An archive file opened for reading: its checked layout and its members' bytes.

    Only regular files are opened (a FIFO or a device would hang or never end). Member
    reads are checked against the central directory's size and CRC and never inflate past
    the size it declares.
    """

    def __init__(self, path: str, limits: Optional[Limits] = None) -> None:
        self.path = path
        self.name = os.path.basename(path) or path
        self.limits = limits or Limits()
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise ArchiveError("%s: no such file" % path) from None
        except IsADirectoryError:
            raise ArchiveError("%s: is a folder, not an archive" % path) from None
        except OSError as exc:
            raise ArchiveError("%s: cannot read: %s" % (path, exc.strerror)) from None
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            raise ArchiveError("%s: is a folder, not an archive" % path)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise ArchiveError("%s: not a regular file" % path)
        self.fp = os.fdopen(fd, "rb")
        try:
            self.layout = parse_layout(self.fp, self.name, self.limits)
        except OSError as exc:
            self.fp.close()
            raise ArchiveError("%s: cannot read: %s" % (path, exc.strerror)) from None
        except BaseException:
            self.fp.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.fp.close()

    @property
    def entries(self) -> List[Entry]:
        return self.layout.entries

    def chunks(self, entry: Entry, size: int = _CHUNK) -> Iterator[bytes]:
        """The member's bytes in pieces, checked against its size and CRC at the end."""
        if entry.data_offset < 0:
            raise ArchiveError("%s: member %r has no readable data" % (self.name, entry.name))
        fd = self.fp.fileno()
        at = entry.data_offset
        left = entry.compressed
        inflater = zlib.decompressobj(-15) if entry.method == DEFLATED else None
        crc = 0
        produced = 0
        try:
            while True:
                if inflater is None:
                    if left <= 0:
                        break
                    data = os.pread(fd, min(left, size), at)
                    raw = data
                else:
                    if inflater.eof:
                        break
                    raw = inflater.unconsumed_tail
                    if not raw and left > 0:
                        raw = os.pread(fd, min(left, size), at)
                        if not raw:
                            raise ArchiveError("%s: member %r is cut off" % (self.name, entry.name))
                        at += len(raw)
                        left -= len(raw)
                    data = inflater.decompress(raw, max(1, min(size, entry.size - produced + 1)))
                    if not data and not raw:
                        break
                if inflater is None:
                    if not data:
                        raise ArchiveError("%s: member %r is cut off" % (self.name, entry.name))
                    at += len(data)
                    left -= len(data)
                produced += len(data)
                if produced > entry.size:
                    break
                crc = zlib.crc32(data, crc)
                if data:
                    yield data
            if inflater is not None and not inflater.eof and produced <= entry.size:
                raise ArchiveError(
                    "%s: member %r is damaged: its deflate stream does not end where the zip "
                    "says" % (self.name, entry.name)
                )
        except zlib.error as exc:
            raise ArchiveError(
                "%s: member %r is damaged: %s" % (self.name, entry.name, exc)
            ) from None
        if produced != entry.size:
            found = "more than" if produced > entry.size else "%d bytes, not" % produced
            raise ArchiveError(
                "%s: member %r is damaged: %s the %d bytes the zip says"
                % (self.name, entry.name, found, entry.size)
            )
        if crc != entry.crc:
            raise ArchiveError("%s: member %r is damaged: bad CRC-32" % (self.name, entry.name))

    def read(self, entry: Entry) -> bytes:
        """The member's bytes, whole (for small members: manifests, links, stubs)."""
        return b"".join(self.chunks(entry, max(entry.compressed, entry.size, 1)))

    def raw_chunks(self, entry: Entry, size: int = 1 << 16) -> Iterator[bytes]:
        """The member's stored bytes, still compressed, in pieces (for copying it as is)."""
        fd = self.fp.fileno()
        at, end = entry.data_offset, entry.data_offset + entry.compressed
        while at < end:
            chunk = os.pread(fd, min(end - at, size), at)
            if not chunk:
                raise ArchiveError("%s: member %r is cut off" % (self.name, entry.name))
            yield chunk
            at += len(chunk)

    def digest(self) -> Optional[str]:
        """What the seal's digest should be, recomputed; None without a seal."""
        if self.layout.seal is None:
            return None
        return file_digest(self.fp, self.layout)

    def manifest(self) -> Optional[Manifest]:
        """The manifest, validated; None when the archive has none."""
        entry = self.layout.by_name.get(MANIFEST_NAME)
        if entry is None:
            return None
        # A manifest lists the archive's members: one far larger than that list could be
        # is refused before it is read (parsing JSON costs many times its size in memory).
        count = len(self.layout.entries)
        limit = min(_MAX_MANIFEST, _MANIFEST_PER_MEMBER * (count + 16))
        if entry.size > limit:
            raise ArchiveError(
                "%s: %s is %d bytes, more than the limit of %d for %d members"
                % (self.name, MANIFEST_NAME, entry.size, limit, count)
            )
        return Manifest.from_bytes(self.read(entry), self.name, count)


def open_archive(path: str, limits: Optional[Limits] = None) -> Archive:
    """Open *path* for reading: see :class:`Archive`."""
    return Archive(path, limits)


# --- the manifest ----------------------------------------------------------------------------

_MAX_MANIFEST = 256 << 20
#: Room per member in the manifest: its name (at most 4,096 bytes), hash, size and quoting.
_MANIFEST_PER_MEMBER = 4096 + 256
_MAX_TEXT = 4096
_ENTRY_KINDS = ("callable", "module", "interpreter")


class _Check:
    """Type checks for one JSON document, raising ArchiveError with one line."""

    def __init__(self, name: str, what: str) -> None:
        self.name = name
        self.what = what

    def fail(self, where: str, why: str) -> ArchiveError:
        return ArchiveError("%s: %s: %s %s" % (self.name, self.what, where, why))

    def table(self, value: Any, where: str, allowed: Sequence[str]) -> Dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "is not an object")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.fail(where, "has an unknown key %r" % unknown[0][:_MAX_TEXT])
        return value

    def text(self, value: Any, where: str, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(where, "is not a string")
        if len(value) > _MAX_TEXT or "\x00" in value:
            raise self.fail(where, "is too long or holds a NUL byte")
        return value

    def member(self, value: Any, where: str) -> str:
        text = self.text(value, where)
        problem = name_problem(text)
        if problem:
            raise self.fail(where, "names a path with %s: %r" % (problem, text))
        return str(text)

    def flag(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, "is not true or false")
        return value

    def items(self, value: Any, where: str, limit: int = 100000) -> List[Any]:
        if not isinstance(value, list):
            raise self.fail(where, "is not a list")
        if len(value) > limit:
            raise self.fail(where, "has more than %d items" % limit)
        return value

    def indexes(self, value: Any, where: str) -> List[int]:
        """Target indexes (checked against the targets by RuntimeConfig)."""
        items = self.items(value, where, 1000)
        if not all(type(i) is int and 0 <= i < 1000 for i in items):
            raise self.fail(where, "holds something that is not a target index")
        return items

    def dists(self, value: Any, where: str) -> List[Tuple[str, str, str]]:
        out = []
        for item in self.items(value, where):
            if not isinstance(item, list) or len(item) != 3:
                raise self.fail(where, "holds an item that is not [name, version, info]")
            dist, version, info = (self.text(v, where) for v in item)
            if name_problem(info) or "/" in info or not info.endswith(".dist-info"):
                raise self.fail(where, "names a bad .dist-info folder: %r" % info)
            out.append((dist, version, info))
        return out

    def pth(self, value: Any, where: str) -> List[str]:
        out = []
        for item in self.items(value, where):
            text = self.member(item, where)
            if "/" in text or not text.endswith(".pth"):
                raise self.fail(where, "names a bad .pth file: %r" % text)
            out.append(text)
        return out


class NativeDist:
    """A bundled distribution with native code, extracted to the cache to be imported."""

    __slots__ = ("key", "name", "optional", "prefix", "tags", "targets", "top", "version")

    def __init__(
        self,
        name: str,
        version: str,
        key: str,
        prefix: str,
        tags: Sequence[str] = (),
        optional: bool = False,
        top: Sequence[str] = (),
        targets: Sequence[int] = (),
    ) -> None:
        self.name = name
        self.version = version
        self.key = key
        self.prefix = prefix
        self.tags = tuple(tags)
        self.optional = optional
        self.top = tuple(top)
        #: The targets (indexes into RuntimeConfig.targets) it serves; empty: every one.
        self.targets = tuple(targets)

    @property
    def entry_name(self) -> str:
        """The cache folder's name."""
        return "%s-%s-%s" % (self.name, self.version, self.key[:16])

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "key": self.key,
            "prefix": self.prefix,
            "tags": list(self.tags),
        }
        if self.optional:
            out["optional"] = True
            out["top"] = list(self.top)
        if self.targets:
            out["targets"] = list(self.targets)
        return out

    @classmethod
    def from_dict(cls, value: Any, check: _Check, where: str) -> NativeDist:
        table = check.table(value, where, ("name", "version", "key", "prefix", "tags",
                                           "optional", "top", "targets"))  # fmt: skip
        name = check.text(table.get("name"), where + ".name")
        version = check.text(table.get("version"), where + ".version")
        for part, text in (("name", name), ("version", version)):
            if name_problem(text) or "/" in text:
                raise check.fail(where + "." + part, "is not a plain name: %r" % text)
        key = check.text(table.get("key"), where + ".key")
        if len(key) != 64 or not _HEX.issuperset(key):
            raise check.fail(where + ".key", "is not a SHA-256")
        prefix = check.member(table.get("prefix"), where + ".prefix")
        if not prefix.startswith(NATIVE_FOLDER + "/") or not prefix.endswith("/"):
            raise check.fail(where + ".prefix", "is not a folder under %s" % NATIVE_FOLDER)
        tags = [check.text(t, where + ".tags") for t in check.items(table.get("tags", []),
                                                                  where + ".tags")]  # fmt: skip
        optional = check.flag(table.get("optional", False), where + ".optional")
        top = [check.text(t, where + ".top") for t in check.items(table.get("top", []),
                                                                where + ".top")]  # fmt: skip
        targets = check.indexes(table.get("targets", []), where + ".targets")
        return cls(name, version, key, prefix, tags, optional, top, targets)


class Target:
    """One interpreter and platform a multi-target archive was resolved for."""

    __slots__ = ("name", "platform", "python")

    def __init__(self, name: str, python: Tuple[int, int], platform: str) -> None:
        self.name = name
        #: (major, minor) of the CPython it was resolved for.
        self.python = (int(python[0]), int(python[1]))
        #: A wheel platform tag: manylinux_2_28_x86_64, macosx_13_0_arm64, win_amd64...
        self.platform = platform

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "python": list(self.python), "platform": self.platform}

    @classmethod
    def from_dict(cls, value: Any, check: _Check, where: str) -> Target:
        table = check.table(value, where, ("name", "python", "platform"))
        name = check.text(table.get("name"), where + ".name")
        python = check.items(table.get("python"), where + ".python")
        if len(python) != 2 or not all(type(v) is int and 0 <= v < 1000 for v in python):
            raise check.fail(where + ".python", "is not [major, minor]")
        platform = check.text(table.get("platform"), where + ".platform")
        return cls(name, (python[0], python[1]), platform)


class Variant:
    """A pure distribution in a folder of its own, for some targets only."""

    __slots__ = ("dists", "folder", "pth", "targets")

    def __init__(
        self,
        folder: str,
        dists: Sequence[Tuple[str, str, str]],
        targets: Sequence[int],
        pth: Sequence[str] = (),
    ) -> None:
        self.folder = folder
        self.dists = [(d[0], d[1], d[2]) for d in dists]
        self.targets = tuple(targets)
        self.pth = list(pth)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "folder": self.folder,
            "dists": [list(d) for d in self.dists],
            "targets": list(self.targets),
        }
        if self.pth:
            out["pth"] = list(self.pth)
        return out

    @classmethod
    def from_dict(cls, value: Any, check: _Check, where: str) -> Variant:
        table = check.table(value, where, ("folder", "dists", "targets", "pth"))
        folder = check.member(table.get("folder"), where + ".folder")
        if not folder.startswith(VARIANTS_FOLDER + "/") or folder.count("/") != 2:
            raise check.fail(where + ".folder", "is not a folder in %s" % VARIANTS_FOLDER)
        dists = check.dists(table.get("dists", []), where + ".dists")
        targets = check.indexes(table.get("targets", []), where + ".targets")
        pth = check.pth(table.get("pth", []), where + ".pth")
        return cls(folder, dists, targets, pth)


class RuntimeConfig:
    """What the runtime needs at start-up; the stub passes it, the manifest keeps a copy.

    A multi-target archive lists its *targets*; what only some of them have says which
    (native distributions and *variants*), and the runtime takes the target that fits the
    interpreter running it.
    """

    __slots__ = (
        "dists",
        "export_path",
        "inherit_path",
        "native",
        "pth",
        "signed_by",
        "site",
        "sources",
        "targets",
        "variants",
        "verify",
    )

    def __init__(
        self,
        site: Optional[str] = None,
        dists: Sequence[Tuple[str, str, str]] = (),
        pth: Sequence[str] = (),
        native: Sequence[NativeDist] = (),
        verify: bool = False,
        signed_by: Optional[str] = None,
        targets: Sequence[Target] = (),
        variants: Sequence[Variant] = (),
        inherit_path: bool = False,
        export_path: bool = False,
        sources: Optional[str] = None,
    ) -> None:
        self.site = site
        self.dists = [(d[0], d[1], d[2]) for d in dists]
        self.pth = list(pth)
        self.native = list(native)
        self.verify = verify
        #: The Ed25519 public key (hex) whose signature the stub requires before running.
        self.signed_by = signed_by
        self.targets = list(targets)
        self.variants = list(variants)
        #: Whether the interpreter's own site-packages stay importable (after the archive's).
        self.inherit_path = inherit_path
        #: Whether the archive's import path is put in PYTHONPATH for its child processes.
        self.export_path = export_path
        #: SHA-256 over every module's source (:func:`sources_key`): names the cache folder
        #: where an interpreter without stored bytecode keeps what it compiles.
        self.sources = sources

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if self.site is not None:
            out["site"] = self.site
            out["dists"] = [list(d) for d in self.dists]
            out["pth"] = list(self.pth)
        if self.native:
            out["native"] = [n.to_dict() for n in self.native]
        if self.targets:
            out["targets"] = [t.to_dict() for t in self.targets]
        if self.variants:
            out["variants"] = [v.to_dict() for v in self.variants]
        if self.verify:
            out["verify"] = True
        if self.signed_by is not None:
            out["signed_by"] = self.signed_by
        if self.inherit_path:
            out["inherit_path"] = True
        if self.export_path:
            out["export_path"] = True
        if self.sources is not None:
            out["sources"] = self.sources
        return out

    @classmethod
    def from_dict(cls, value: Any, name: str = "archive", where: str = "runtime") -> RuntimeConfig:
        check = _Check(name, "the runtime configuration")
        table = check.table(value, where, ("site", "dists", "pth", "native", "verify",
                                           "signed_by", "targets", "variants", "inherit_path",
                                           "export_path", "sources"))  # fmt: skip
        site = table.get("site")
        if site is not None and site != SITE_PACKAGES:
            raise check.fail(where + ".site", "is not %s" % SITE_PACKAGES)
        dists = check.dists(table.get("dists", []), where + ".dists")
        pth = check.pth(table.get("pth", []), where + ".pth")
        native = [
            NativeDist.from_dict(item, check, "%s.native[%d]" % (where, i))
            for i, item in enumerate(check.items(table.get("native", []), where + ".native"))
        ]
        targets = [
            Target.from_dict(item, check, "%s.targets[%d]" % (where, i))
            for i, item in enumerate(check.items(table.get("targets", []), where + ".targets", 100))
        ]
        variants = [
            Variant.from_dict(item, check, "%s.variants[%d]" % (where, i))
            for i, item in enumerate(check.items(table.get("variants", []), where + ".variants"))
        ]
        served = [n.targets for n in native] + [v.targets for v in variants]
        if any(index >= len(targets) for indexes in served for index in indexes):
            raise check.fail(where, "names a target it does not have")
        if any(not v.targets for v in variants):
            raise check.fail(where + ".variants", "holds a variant for no target")
        verify = check.flag(table.get("verify", False), where + ".verify")
        signed_by = check.text(table.get("signed_by"), where + ".signed_by", optional=True)
        if signed_by is not None and (len(signed_by) != 64 or not _HEX.issuperset(signed_by)):
            raise check.fail(where + ".signed_by", "is not an Ed25519 public key in hex")
        inherit = check.flag(table.get("inherit_path", False), where + ".inherit_path")
        export = check.flag(table.get("export_path", False), where + ".export_path")
        sources = check.text(table.get("sources"), where + ".sources", optional=True)
        if sources is not None and (len(sources) != 64 or not _HEX.issuperset(sources)):
            raise check.fail(where + ".sources", "is not a SHA-256")
        return cls(
            site, dists, pth, native, verify, signed_by, targets, variants, inherit, export,
            sources,
        )  # fmt: skip


def sources_key(members: Dict[str, Tuple[str, int]]) -> str:
    """SHA-256 over the names and SHA-256s of every ``.py`` member: what bytecode compiled
    from them depends on (with the interpreter, whose cache tag it is kept under)."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(members):
        if name.endswith(".py"):
            digest.update(("%s\0%s\n" % (name, members[name][0])).encode("utf-8"))
    return digest.hexdigest()


def runtime_config_text(config: RuntimeConfig) -> str:
    """The text of the archive's runtime configuration member."""
    return (
        "# packer's runtime configuration for this archive (a copy of the manifest's runtime)\n"
        "%r\n" % (config.to_dict(),)
    )


def read_runtime_config(text: str, name: str = "archive", trusted: bool = False) -> RuntimeConfig:
    """Parse :func:`runtime_config_text` back. The archive running itself (*trusted*) evaluates
    its own literal, which needs no import; anyone else parses it with ``ast.literal_eval``."""
    try:
        if trusted:
            value = eval(compile(text, RUNTIME_CONFIG_NAME, "eval"), {"__builtins__": {}}, {})
        else:
            import ast

            value = ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, NameError):
        raise ArchiveError("%s: %s is not a Python literal" % (name, RUNTIME_CONFIG_NAME)) from None
    return RuntimeConfig.from_dict(value, name)


class Manifest:
    """``_packer/manifest.json``: what the archive is, and every member's SHA-256 and size."""

    __slots__ = (
        "build_id",
        "bytecode",
        "created",
        "distributions",
        "entry",
        "format",
        "interpreter",
        "lock",
        "members",
        "packer_version",
        "requires_python",
        "runtime",
    )

    def __init__(
        self,
        format: int,
        packer_version: str,
        entry: Tuple[str, str],
        interpreter: Optional[str],
        requires_python: Optional[str],
        created: Optional[str],
        bytecode: Optional[str],
        distributions: Sequence[Tuple[str, str, bool, Optional[str]]],
        runtime: RuntimeConfig,
        members: Dict[str, Tuple[str, int]],
        build_id: str = "",
        lock: Optional[Tuple[str, Sequence[str]]] = None,
    ) -> None:
        self.format = format
        self.packer_version = packer_version
        self.entry = entry
        self.interpreter = interpreter
        self.requires_python = requires_python
        self.created = created
        self.bytecode = bytecode
        #: (name, version, has native code, why it is extracted when it is pure, or None)
        self.distributions = [
            (d[0], d[1], d[2], d[3] if len(d) > 3 else None) for d in distributions
        ]
        self.runtime = runtime
        self.members = members
        self.build_id = build_id
        #: The lock file the dependencies were installed from: its SHA-256 and its pins.
        self.lock = (lock[0], list(lock[1])) if lock is not None else None

    def body(self) -> Dict[str, Any]:
        """The manifest as JSON-ready data, without its build id."""
        return {
            "format": self.format,
            "packer_version": self.packer_version,
            "entry": {"kind": self.entry[0], "value": self.entry[1]},
            "interpreter": self.interpreter,
            "requires_python": self.requires_python,
            "created": self.created,
            "bytecode": self.bytecode,
            "distributions": [
                {"name": n, "version": v, "native": native, **({"extracted": why} if why else {})}
                for n, v, native, why in self.distributions
            ],
            "runtime": self.runtime.to_dict(),
            "members": {
                name: {"sha256": digest, "size": size}
                for name, (digest, size) in sorted(self.members.items())
            },
            **({"lock": {"sha256": self.lock[0], "pins": self.lock[1]}} if self.lock else {}),
        }

    def to_bytes(self) -> bytes:
        """The manifest member's bytes, with the build id computed from the rest."""
        import json

        body = self.body()
        self.build_id = build_id(body)
        body["build_id"] = self.build_id
        return json.dumps(body, sort_keys=True, indent=1).encode("utf-8") + b"\n"

    @classmethod
    def from_bytes(cls, raw: bytes, name: str = "archive", max_members: int = 200000) -> Manifest:
        import json

        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ArchiveError("%s: %s is not UTF-8" % (name, MANIFEST_NAME)) from None
        except RecursionError:
            raise ArchiveError("%s: %s is nested too deeply" % (name, MANIFEST_NAME)) from None
        except ValueError as exc:
            raise ArchiveError(
                "%s: %s is not valid JSON: %s" % (name, MANIFEST_NAME, exc)
            ) from None
        return cls.from_dict(value, name, max_members)

    @classmethod
    def from_dict(cls, value: Any, name: str = "archive", max_members: int = 200000) -> Manifest:
        """Validate *value* as a manifest; ArchiveError with one line for anything malformed."""
        check = _Check(name, MANIFEST_NAME)
        table = check.table(value, "the manifest", (
            "format", "packer_version", "build_id", "created", "entry", "interpreter",
            "requires_python", "bytecode", "distributions", "runtime", "members", "lock",
        ))  # fmt: skip
        fmt = table.get("format")
        if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt not in READABLE_FORMATS:
            raise check.fail("format", "is %r, not a format this packer reads" % (fmt,))
        entry = check.table(table.get("entry"), "entry", ("kind", "value"))
        kind = check.text(entry.get("kind"), "entry.kind")
        if kind not in _ENTRY_KINDS:
            raise check.fail("entry.kind", "is %r, not one of %s" % (kind, ", ".join(_ENTRY_KINDS)))
        dists = []
        for i, item in enumerate(check.items(table.get("distributions", []), "distributions")):
            where = "distributions[%d]" % i
            item = check.table(item, where, ("name", "version", "native", "extracted"))
            dists.append((
                check.text(item.get("name"), where + ".name"),
                check.text(item.get("version"), where + ".version"),
                check.flag(item.get("native"), where + ".native"),
                check.text(item.get("extracted"), where + ".extracted", optional=True),
            ))  # fmt: skip
        members_table = table.get("members")
        if not isinstance(members_table, dict):
            raise check.fail("members", "is not an object")
        if len(members_table) > max_members:
            raise check.fail("members", "lists more than %d members" % max_members)
        members = {}
        for member, record in members_table.items():
            check.member(member, "members")
            record = check.table(record, "members[%r]" % member[:200], ("sha256", "size"))
            digest, size = record.get("sha256"), record.get("size")
            if not isinstance(digest, str) or len(digest) != 64 or not _HEX.issuperset(digest):
                raise check.fail("members[%r].sha256" % member[:200], "is not a SHA-256")
            if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 1 << 63:
                raise check.fail("members[%r].size" % member[:200], "is not a size")
            members[member] = (digest, size)
        build = check.text(table.get("build_id", ""), "build_id")
        lock = None
        if "lock" in table:
            record = check.table(table["lock"], "lock", ("sha256", "pins"))
            digest = check.text(record.get("sha256"), "lock.sha256")
            if len(digest) != 64 or not _HEX.issuperset(digest):
                raise check.fail("lock.sha256", "is not a SHA-256")
            pins = [
                check.text(p, "lock.pins") for p in check.items(record.get("pins"), "lock.pins")
            ]
            lock = (digest, pins)
        return cls(
            fmt,
            check.text(table.get("packer_version"), "packer_version"),
            (kind, check.text(entry.get("value"), "entry.value")),
            check.text(table.get("interpreter"), "interpreter", optional=True),
            check.text(table.get("requires_python"), "requires_python", optional=True),
            check.text(table.get("created"), "created", optional=True),
            check.text(table.get("bytecode"), "bytecode", optional=True),
            dists,
            RuntimeConfig.from_dict(table.get("runtime", {}), name),
            members,
            build,
            lock,
        )


def build_id(body: Dict[str, Any]) -> str:
    """The first 16 hex digits of the SHA-256 of the manifest without its build id."""
    import hashlib
    import json

    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()[:16]


def native_key(prefix: str, members: Dict[str, Tuple[str, int]]) -> str:
    """A native distribution's cache key: the SHA-256 over the names and SHA-256s of every
    member under *prefix* as the manifest records them (its bytecode included, whose names
    carry the interpreter's tag)."""
    import hashlib

    digest = hashlib.sha256()
    for member in sorted(members):
        if member.startswith(prefix):
            digest.update(
                ("%s\0%s\n" % (member[len(prefix) :], members[member][0])).encode("utf-8")
            )
    return digest.hexdigest()
