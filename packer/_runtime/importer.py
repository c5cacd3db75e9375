"""A faster importer for the archive's own members, used instead of zipimport.

zipimport decompresses and unmarshals a module's code two to four times per import
(``find_spec`` asks for the file name, ``is_package`` and ``get_code`` each load the code
again). This importer loads each module once: it reuses the table of contents zipimport has
already read for the archive, reads a member with one ``pread`` on a descriptor kept open,
and trusts the unchecked hash-based ``.pyc`` the builder wrote when its magic number is this
interpreter's. Anything it cannot vouch for falls back to compiling the source. Data files
and ``importlib.resources`` go through zipimport, which handles them well.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import marshal
import os
import sys
import zipimport
import zlib
from importlib.machinery import ModuleSpec, SourceFileLoader
from importlib.util import MAGIC_NUMBER, cache_from_source, decode_source

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

__all__ = ["adopt", "compile_into", "install", "read_member", "serve_extracted", "toc_names"]

_LOCAL_HEADER = 30
_UNCHECKED_HASH_FLAGS = (0b01).to_bytes(4, "little")
_CACHE_TAG = sys.implementation.cache_tag


class _ArchiveFile:
    """One archive file: its table of contents and a descriptor to read members with."""

    def __init__(self, path: str, toc: Dict[str, Tuple[Any, ...]]) -> None:
        self.path = path
        self.toc = toc
        self._fd: Optional[int] = None
        #: Gives the folder for bytecode this interpreter compiles (see compile_into), asked
        #: the first time a module has none stored; then its answer.
        self.compiled: Any = None

    def read(self, name: str) -> bytes:
        entry = self.toc[name]
        _datapath, compress, data_size, _file_size, offset = entry[:5]
        fd = self._fd
        if fd is None:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            if self._fd is None:
                self._fd = fd
            else:  # another thread got there first
                os.close(fd)
                fd = self._fd
        encoded = name.encode("utf-8")
        # Our builder writes no extra field: read header, name and data in one call.
        want = _LOCAL_HEADER + len(encoded) + data_size
        buffer = os.pread(fd, want, offset)
        if buffer[:4] != b"PK\x03\x04":
            raise ImportError("%s: bad local header for %s" % (self.path, name))
        name_size = int.from_bytes(buffer[26:28], "little")
        extra_size = int.from_bytes(buffer[28:30], "little")
        start = _LOCAL_HEADER + name_size + extra_size
        if start + data_size > len(buffer):
            buffer = os.pread(fd, start + data_size, offset)
        data = buffer[start : start + data_size]
        if len(data) != data_size:
            raise ImportError("%s: %s is truncated" % (self.path, name))
        return zlib.decompress(data, -15) if compress else data


_archives: Dict[str, _ArchiveFile] = {}


def install(archive: str) -> None:
    """Serve imports for every ``sys.path`` entry inside *archive* from now on."""
    if archive in _archives:
        return
    toc = zipimport._zip_directory_cache.get(archive)  # type: ignore[attr-defined]
    if toc is None:
        try:
            zipimport.zipimporter(archive)  # reads and caches the table of contents
        except zipimport.ZipImportError:
            return
        toc = zipimport._zip_directory_cache.get(archive)  # type: ignore[attr-defined]
    if not isinstance(toc, dict):
        return  # a zipimport we do not know: leave imports to it
    _archives[archive] = _ArchiveFile(archive, toc)
    if _path_hook not in sys.path_hooks:
        sys.path_hooks.insert(0, _path_hook)
    for path in list(sys.path_importer_cache):
        if path == archive or path.startswith(archive + "/"):
            del sys.path_importer_cache[path]


def adopt(archive: str) -> None:
    """Called by the stub once it has run this module from this interpreter's own bytecode
    (zipimport would have compiled it: see the stub's ``_packer_boot``): serve *archive*, and
    give the module the spec and loader this importer would have given it."""
    install(archive)
    if archive not in _archives:
        return
    package = __name__.rpartition(".")[0]
    spec = _Finder(_archives[archive], package + "/").find_spec(__name__)
    module = sys.modules[__name__]
    if spec is not None:
        module.__spec__ = spec
        module.__loader__ = spec.loader


def compile_into(archive: str, folder: Callable[[], Optional[str]]) -> None:
    """Keep the bytecode of *archive*'s modules that have none stored for this interpreter
    (a target whose Python was not on the building machine, a ``--no-compile`` build) in
    the folder *folder()* gives, asked once, when first needed: later starts read it from
    there instead of compiling again. The folder is keyed by the archive's sources, so an
    entry is never stale."""
    served = _archives.get(archive)
    if served is not None and served.compiled is None:
        served.compiled = folder


def _cached_code(archive: _ArchiveFile, stem: str, source: bytes) -> Any:
    """The code of *stem* from the compiled-bytecode folder, or compiled from *source* and
    written there.

    Written whatever ``sys.dont_write_bytecode`` says (``-B``, ``PYTHONDONTWRITEBYTECODE``):
    that keeps ``.pyc`` files out of source folders, and this one is the archive's cache, as
    its extracted native code is. Images that set the variable would otherwise compile every
    module at every start. ``PACKER_COMPILE_CACHE=0`` turns the cache off."""
    folder = archive.compiled
    if callable(folder):
        folder = archive.compiled = folder() or ""
    # A member name that would lead out of the folder (only a hostile archive has one) is
    # compiled, never cached.
    inside = not stem.startswith("/") and ".." not in stem.split("/")
    path = os.path.join(folder, stem + ".pyc") if folder and inside else ""
    if path:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            pass
        else:
            if data[:4] == MAGIC_NUMBER and data[4:8] == _UNCHECKED_HASH_FLAGS:
                try:
                    return marshal.loads(memoryview(data)[16:])
                except (EOFError, ValueError, TypeError):
                    pass  # damaged: compiled and written again below
    # The member name, as in the bytecode the builder stores: tracebacks read the same.
    code = compile(source, stem + ".py", "exec", dont_inherit=True)
    if path:
        _write_pyc(path, marshal.dumps(code))
    return code


def _write_pyc(path: str, body: bytes) -> None:
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o600)  # fmt: skip
        try:
            os.write(fd, MAGIC_NUMBER + _UNCHECKED_HASH_FLAGS + bytes(8) + body)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        import contextlib  # not on the way of a normal start

        with contextlib.suppress(OSError):
            os.unlink(tmp)


def serve_extracted(roots: List[str]) -> None:
    """Import from the extracted folders *roots* (cache entries) with Python's own finder,
    but keep the bytecode of what compiles there even under ``sys.dont_write_bytecode``,
    as the compile cache does (see _cached_code): the folders are the archive's cache."""
    if not roots:
        return
    from importlib.machinery import (
        BYTECODE_SUFFIXES,
        EXTENSION_SUFFIXES,
        SOURCE_SUFFIXES,
        ExtensionFileLoader,
        FileFinder,
        SourcelessFileLoader,
    )

    inside = tuple(root.rstrip("/") + "/" for root in roots)
    loaders = (
        (ExtensionFileLoader, EXTENSION_SUFFIXES),
        (_ExtractedLoader, SOURCE_SUFFIXES),
        (SourcelessFileLoader, BYTECODE_SUFFIXES),
    )

    def hook(path: str) -> Any:
        if (path + "/").startswith(inside):
            return FileFinder(path, *loaders)
        raise ImportError("not an extracted folder", path=path)

    sys.path_hooks.insert(0, hook)


class _ExtractedLoader(SourceFileLoader):
    def source_to_code(self, data: Any, path: Any, *, _optimize: int = -1) -> Any:  # type: ignore[override]
        code = super().source_to_code(data, path, _optimize=_optimize)
        if sys.dont_write_bytecode and isinstance(path, str):
            # What SourceLoader.get_code would write had the flag been clear: a
            # timestamp-checked .pyc, so an edited source is compiled again.
            try:
                st = self.path_stats(path)
                header = (
                    MAGIC_NUMBER + bytes(4)
                    + (int(st["mtime"]) & 0xFFFFFFFF).to_bytes(4, "little")
                    + (len(data) & 0xFFFFFFFF).to_bytes(4, "little")
                )  # fmt: skip
                # SourceFileLoader's own writer: the source's mode, written whole, renamed.
                cache = self._cache_bytecode  # type: ignore[attr-defined]
                cache(path, cache_from_source(path), header + marshal.dumps(code))
            except (AttributeError, NotImplementedError, OSError, ValueError):
                pass
        return code


def read_member(archive: str, name: str) -> bytes:
    """Member *name* of *archive* (a zip this importer serves, or an unpacked folder)."""
    served = _archives.get(archive)
    if served is not None:
        return served.read(name)
    with open(os.path.join(archive, *name.split("/")), "rb") as f:
        return f.read()


def toc_names(archive: str) -> Iterator[str]:
    """The member names of a zip this importer serves (none for a folder)."""
    served = _archives.get(archive)
    return iter(served.toc) if served is not None else iter(())


def _path_hook(path: str) -> _Finder:
    for archive in _archives.values():
        if path == archive.path:
            return _Finder(archive, "")
        if path.startswith(archive.path + "/"):
            prefix = path[len(archive.path) + 1 :].strip("/")
            return _Finder(archive, prefix + "/" if prefix else "")
    raise ImportError("not a packer archive path", path=path)


class _Finder:
    """The importer for one ``sys.path`` entry (the archive or a folder in it)."""

    def __init__(self, archive: _ArchiveFile, prefix: str) -> None:
        self.file = archive
        self.prefix = prefix
        self.path = archive.path + ("/" + prefix.rstrip("/") if prefix else "")

    def find_spec(self, fullname: str, target: object = None) -> Optional[ModuleSpec]:
        toc = self.file.toc
        tail = fullname.rpartition(".")[2]
        rel = self.prefix + tail
        for init in (rel + "/__init__.pyc", rel + "/__init__.py"):
            if init in toc:
                loader = _Loader(self.file, fullname, rel + "/__init__", True)
                spec = ModuleSpec(fullname, loader, origin=loader.origin, is_package=True)  # type: ignore[arg-type]
                spec.submodule_search_locations = [self.file.path + "/" + rel]
                spec.has_location = True
                return spec
        if rel + ".pyc" in toc or rel + ".py" in toc:
            loader = _Loader(self.file, fullname, rel, False)
            spec = ModuleSpec(fullname, loader, origin=loader.origin)  # type: ignore[arg-type]
            spec.has_location = True
            return spec
        if rel + "/" in toc:
            # A folder without __init__: a portion of a namespace package.
            spec = ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [self.file.path + "/" + rel]
            return spec
        return None

    def invalidate_caches(self) -> None:
        pass

    def iter_modules(self, prefix: str = "") -> Iterator[Tuple[str, bool]]:
        """What ``pkgutil.iter_modules`` lists for this path entry."""
        seen = set()
        depth = self.prefix.count("/")
        for name in sorted(self.file.toc):
            if not name.startswith(self.prefix) or name.count("/") > depth + 1:
                continue
            rest = name[len(self.prefix) :]
            if rest.endswith("/__init__.py") or rest.endswith("/__init__.pyc"):
                module, is_package = rest.split("/")[0], True
            elif "/" not in rest and rest.endswith((".py", ".pyc")):
                module, is_package = rest.rsplit(".", 1)[0], False
            else:
                continue
            if module.isidentifier() and module not in seen and module != "__init__":
                seen.add(module)
                yield prefix + module, is_package


class _Loader:
    """Loads one module's code, once."""

    def __init__(self, archive: _ArchiveFile, fullname: str, stem: str, is_package: bool) -> None:
        self._file = archive
        self.name = fullname
        self._stem = stem
        self._is_package = is_package
        self.origin = archive.path + "/" + stem + ".py"
        # Python 3.9's importlib.resources.files() reads this, as on a zipimporter.
        self.archive = archive.path

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        code = self.get_code(module.__name__)
        exec(code, module.__dict__)

    def is_package(self, fullname: str) -> bool:
        return self._is_package

    def get_filename(self, fullname: str) -> str:
        return self.origin

    def get_code(self, fullname: str) -> Any:
        toc = self._file.toc
        # In __pycache__: a target interpreter's other than the building one, by its cache
        # tag, so looked for first (one lookup) rather than after reading the building one's,
        # which is beside the module (where zipimport reads it too).
        head, _, tail = self._stem.rpartition("/")
        cached = "%s__pycache__/%s.%s.pyc" % (head + "/" if head else "", tail, _CACHE_TAG)
        for pyc in (cached, self._stem + ".pyc"):
            if pyc in toc:
                data = self._file.read(pyc)
                if data[:4] == MAGIC_NUMBER and data[4:8] == _UNCHECKED_HASH_FLAGS:
                    return marshal.loads(memoryview(data)[16:])
        if self._file.compiled is not None and self._stem + ".py" in toc:
            return _cached_code(self._file, self._stem, self._file.read(self._stem + ".py"))
        source = self.get_source(fullname)
        if source is None:
            raise ImportError("no source or usable bytecode for %s" % fullname, name=fullname)
        return compile(source, self.origin, "exec", dont_inherit=True)

    def get_source(self, fullname: str) -> Optional[str]:
        name = self._stem + ".py"
        if name not in self._file.toc:
            return None
        return decode_source(self._file.read(name))

    def get_data(self, path: str) -> bytes:
        if path.startswith(self._file.path + "/"):
            path = path[len(self._file.path) + 1 :]
        try:
            return self._file.read(path)
        except KeyError:
            raise OSError(0, "", path) from None

    def get_resource_reader(self, fullname: str) -> Any:
        if not self._is_package:
            return None
        folder = self._stem.rpartition("/")[0]
        parent = folder.rpartition("/")[0]
        importer = zipimport.zipimporter(self._file.path + ("/" + parent if parent else ""))
        return importer.get_resource_reader(fullname)
