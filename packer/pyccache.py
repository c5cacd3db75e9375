"""Bytecode kept between builds, by (interpreter's magic number, member name, source), so that
a rebuild after a small change compiles only what changed.

Opt-in: ``PACKER_BYTECODE_CACHE=FOLDER``. Off by default because marshal's output depends on
the compiling process (whether an object is written as a reference follows its reference
count, which other live objects share): a ``.pyc`` cached by one build can differ, byte for
byte though not in meaning, from the one a fresh build compiles, and the same sources would
then give other bytes. The folder is used only when it is this user's and no one else can
write it: bytecode from it goes into archives. A cached file is taken only when its header
names this interpreter (and, for the building one, this very source: PEP 552's hash); what
cannot be read or written is compiled as if there were no cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import stat
import tempfile

__all__ = ["PycCache", "default_cache"]

_UNCHECKED = (0b01).to_bytes(4, "little")


class PycCache:
    def __init__(self, folder: str) -> None:
        self.folder = folder

    def _path(self, magic: bytes, name: str, source: bytes) -> str:
        key = hashlib.sha256(magic + b"\0" + name.encode() + b"\0" + source).hexdigest()
        return os.path.join(self.folder, key[:2], key + ".pyc")

    def get(self, magic: bytes, name: str, source: bytes) -> bytes | None:
        try:
            with open(self._path(magic, name, source), "rb") as fp:
                data = fp.read()
        except OSError:
            return None
        header = magic + _UNCHECKED
        if magic == importlib.util.MAGIC_NUMBER:  # another Python keys its hash otherwise
            header += importlib.util.source_hash(source)
        return data if data.startswith(header) and len(data) > 16 else None

    def put(self, magic: bytes, name: str, source: bytes, pyc: bytes) -> None:
        path = self._path(magic, name, source)
        folder = os.path.dirname(path)
        with contextlib.suppress(OSError):
            os.makedirs(folder, 0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fp:
                    fp.write(pyc)
                os.replace(tmp, path)
            except OSError:
                os.unlink(tmp)
                raise


def default_cache() -> PycCache | None:
    """The cache to use, or None (turned off, or not a folder only this user can write)."""
    folder = os.environ.get("PACKER_BYTECODE_CACHE", "")
    if folder in ("", "0"):
        return None
    try:
        os.makedirs(folder, 0o700, exist_ok=True)
        st = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return PycCache(folder)
