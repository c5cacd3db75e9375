"""What one build computed that the next can reuse: bytecode, deflated members, and the
wheel of a project that has not changed.

A rebuild after a small change should cost about what reading the sources costs. Two kinds
of entries, each keyed by everything that decides its bytes:

- **bytecode**, by (the compiling interpreter's identity, member name, source): the identity
  is its magic number and full ``sys.version``, since a patch release may compile the same
  source differently under the same magic number, plus :data:`~packer.canonical.FORM`;
- **a deflated payload**, by (the member's SHA-256, compression level, zlib's version);
- **a project's wheel**, by everything its backend is given: the files of the copy it builds
  from, the interpreter, packer's version, and the tool and index options that run it.

The first two are what a fresh build computes, byte for byte: bytecode is written in
canonical form (:mod:`packer.canonical`), so it does not depend on the compiling process, and
deflate's output depends only on its input, level and zlib. A wheel is what the backend built
from the same files; a backend that also reads the environment, or a newer release of an
unpinned backend, could build another one: ``PACKER_BUILD_CACHE=0`` builds afresh.

On by default, in ``$PACKER_BUILD_CACHE``, else ``$XDG_CACHE_HOME/packer-build``, else
``~/.cache/packer-build``; ``PACKER_BUILD_CACHE=0`` turns it off. Its entries go into archives,
so the folder is used only when it is this user's and no one else can write it. Each entry
carries a CRC of its own bytes, so a truncated or damaged one is recompiled, not used; what
cannot be read or written is computed as if there were no cache. Deleting the folder at any
time is safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import tempfile
import time
import zlib

from ._runtime.cache import check_trusted
from .canonical import FORM

__all__ = [
    "HERE",
    "MIN_PAYLOAD",
    "BuildCache",
    "cache_folder",
    "default_cache",
    "interpreter_identity",
    "prune",
    "usage",
]

#: Members smaller than this are deflated again: reading an entry would cost about as much.
MIN_PAYLOAD = 2048
_HEAD = b"PKBC"
_DAY = 86400.0
_KINDS = ("pyc", "deflate", "wheel")


def interpreter_identity(magic: bytes, version: str) -> bytes:
    """What keys an interpreter's bytecode: its magic number, ``sys.version`` and the
    canonical form's version."""
    return magic + b"\0" + version.encode() + b"\0" + FORM.to_bytes(2, "little")


#: The building interpreter's identity.
HERE = interpreter_identity(importlib.util.MAGIC_NUMBER, sys.version)


class BuildCache:
    def __init__(self, folder: str) -> None:
        self.folder = folder

    def _path(self, kind: str, key: bytes) -> str:
        digest = hashlib.sha256(kind.encode() + b"\0" + key).hexdigest()
        return os.path.join(self.folder, kind, digest[:2], digest)

    def _get(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as fp:
                data = fp.read()
                used = os.fstat(fp.fileno()).st_mtime
        except OSError:
            return None
        if time.time() - used > _DAY:
            with contextlib.suppress(OSError):
                os.utime(path)  # "last used", for prune; at most once a day
        if len(data) < 8 or data[:4] != _HEAD:
            return None
        body = data[8:]
        return body if zlib.crc32(body) == int.from_bytes(data[4:8], "little") else None

    def _put(self, path: str, body: bytes) -> None:
        folder = os.path.dirname(path)
        with contextlib.suppress(OSError):
            os.makedirs(folder, 0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fp:
                    fp.write(_HEAD + zlib.crc32(body).to_bytes(4, "little") + body)
                os.replace(tmp, path)
            except OSError:
                os.unlink(tmp)
                raise

    def _pyc_path(self, identity: bytes, name: str, source: bytes) -> str:
        return self._path("pyc", identity + b"\0" + name.encode() + b"\0" + source)

    def get_pyc(self, identity: bytes, name: str, source: bytes) -> bytes | None:
        """The ``.pyc`` the interpreter *identity* compiled from *source* as *name*."""
        pyc = self._get(self._pyc_path(identity, name, source))
        # Every .pyc the builder writes is an unchecked hash-based one under its magic number.
        if pyc is None or len(pyc) <= 16 or pyc[:4] != identity[:4]:
            return None
        return pyc

    def put_pyc(self, identity: bytes, name: str, source: bytes, pyc: bytes) -> None:
        self._put(self._pyc_path(identity, name, source), pyc)

    def _payload_path(self, sha256: str, level: int) -> str:
        return self._path("deflate", f"{sha256}:{level}:{zlib.ZLIB_RUNTIME_VERSION}".encode())

    def get_payload(self, sha256: str, level: int) -> bytes | None:
        """The raw deflate stream of the data whose SHA-256 is *sha256*, at *level*."""
        return self._get(self._payload_path(sha256, level))

    def put_payload(self, sha256: str, level: int, payload: bytes) -> None:
        self._put(self._payload_path(sha256, level), payload)

    def get_wheel(self, key: str) -> tuple[str, bytes] | None:
        """The wheel (file name, bytes) a project's backend built from the inputs *key*
        digests (see :func:`packer.project.build_wheel`)."""
        body = self._get(self._path("wheel", key.encode()))
        if body is None:
            return None
        name, _, data = body.partition(b"\0")
        try:
            text = name.decode()
        except UnicodeDecodeError:
            return None
        if not text.endswith(".whl") or "/" in text or text.startswith(".") or not data:
            return None
        return text, data

    def put_wheel(self, key: str, name: str, data: bytes) -> None:
        self._put(self._path("wheel", key.encode()), name.encode() + b"\0" + data)


def cache_folder() -> str | None:
    """Where the cache is, or None when ``PACKER_BUILD_CACHE=0`` turns it off."""
    explicit = os.environ.get("PACKER_BUILD_CACHE", "")
    if explicit == "0":
        return None
    if explicit:
        return os.path.abspath(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, "packer-build")
    home = os.path.expanduser("~")
    return os.path.join(home, ".cache", "packer-build") if os.path.isabs(home) else None


def default_cache() -> BuildCache | None:
    """The cache to use, or None (turned off, or not a folder only this user can write)."""
    folder = cache_folder()
    if folder is None:
        return None
    try:
        os.makedirs(folder, 0o700, exist_ok=True)
        check_trusted(folder)  # the rule the runtime's cache follows, parent folder included
    except OSError:
        return None
    return BuildCache(folder)


def _entries(folder: str, kinds: tuple[str, ...] = _KINDS) -> list[tuple[str, os.stat_result]]:
    found = []
    for kind in kinds:
        for where, _dirs, names in os.walk(os.path.join(folder, kind)):
            for name in names:
                path = os.path.join(where, name)
                with contextlib.suppress(OSError):
                    found.append((path, os.lstat(path)))
    return found


def usage(folder: str) -> dict[str, tuple[int, int]]:
    """Entries and bytes of each kind (``pyc``, ``deflate``, ``wheel``) in the cache *folder*."""
    counts = {}
    for kind in _KINDS:
        found = _entries(folder, (kind,))
        counts[kind] = (len(found), sum(st.st_size for _, st in found))
    return counts


def prune(folder: str, older_than_days: float | None, remove_all: bool) -> tuple[int, int]:
    """Remove the entries of the cache *folder* not used for *older_than_days* (or all of
    them); returns how many and how many bytes. Builds running meanwhile only recompute what
    they miss: every entry is written whole and renamed into place."""
    cutoff = time.time() - (older_than_days or 0.0) * _DAY
    removed = size = 0
    for path, st in _entries(folder):
        if remove_all or st.st_mtime < cutoff:
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed += 1
                size += st.st_size
    for kind in _KINDS:
        for where, _dirs, _names in os.walk(os.path.join(folder, kind), topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(where)  # only when empty
    return removed, size
