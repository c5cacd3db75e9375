"""The cache of extracted native code: where it lives, filling it safely, and pruning it.

Only distributions with native code are extracted (a C extension cannot be imported from a
zip). Each goes, once, into a folder named by its cache key, which derives from the SHA-256s
the archive's manifest records for its members (and so from the archive's digest and
signature). Extraction checks every file against those hashes, writes a temporary folder
beside the final one, puts a marker in it last and renames it into place: concurrent first
runs race harmlessly, and a run killed half-way leaves only a temporary folder that nothing
trusts. A cache folder that is not this user's alone is never used.

One module for the cache's whole life (where it is, whom it trusts, filling, checking and
pruning it), longer than most: its locks and ownership rules only hold when read together.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time

from .errors import ArchiveError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Sequence, Tuple

    from .format import Archive, NativeDist

__all__ = [
    "LOCK",
    "MARKER",
    "CacheEntry",
    "bytecode_folder",
    "cache_root",
    "check_trusted",
    "ensure_extracted",
    "list_entries",
    "prune",
    "remove_entry",
]

MARKER = ".packer-complete"
LOCK = ".packer-lock"
_DAY = 86400.0
#: A temporary folder with no lock file yet is left alone this long (it may be just made).
_GRACE = 3600.0

# Lock files of entries this process uses: held (shared) until it exits, so that
# ``packer cache prune`` never removes code a running archive has on sys.path.
_held: List[int] = []


def cache_root() -> str:
    """``$PACKER_CACHE``, else ``$XDG_CACHE_HOME/packer``, else ``~/.cache/packer``.

    Always absolute: a relative ``$PACKER_CACHE`` is taken from the current folder, a
    relative ``$XDG_CACHE_HOME`` is ignored (as the XDG spec says), and an unset or relative
    ``$HOME`` gives way to the user's home folder from the password database.
    """
    explicit = os.environ.get("PACKER_CACHE")
    if explicit:
        return os.path.abspath(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "packer")
    home = os.environ.get("HOME", "")
    if not os.path.isabs(home):
        try:
            import pwd

            home = pwd.getpwuid(os.getuid()).pw_dir
        except (ImportError, KeyError):
            home = ""
    if not os.path.isabs(home):
        import tempfile

        # No home to speak of: the private fallback in the temporary folder is used.
        return os.path.join(tempfile.gettempdir(), "packer-cache-%d" % os.getuid())
    return os.path.join(home, ".cache", "packer")


def ensure_extracted(
    archive: str,
    natives: Sequence[NativeDist],
    warn: Callable[[str], None],
    check: bool = False,
) -> List[str]:
    """Folders holding each native distribution's files, extracting those not there yet.

    With *check* (``--verify-on-start``), an entry already there is checked file by file
    against the manifest, and extracted again if it does not match. When the cache cannot
    be used (a read-only HOME, a folder another user could write), falls back to this user's
    own folder in the temporary directory, kept for the next runs and their child processes;
    one warning is given when that folder is made. Should that folder be unusable too, a
    private one is used and removed at exit, with a warning every time.
    """
    if not natives:
        return []
    source = _Source(archive)
    try:
        return _ensure_all(source, natives, warn, check)
    finally:
        source.close()


def _ensure_all(
    source: _Source, natives: Sequence[NativeDist], warn: Callable[[str], None], check: bool
) -> List[str]:
    name = os.path.basename(source.path)
    root = cache_root()
    try:
        return [_ensure(source, root, dist, check, warn) for dist in natives]
    except OSError as exc:
        reason = exc.strerror or str(exc)
    import tempfile

    shared = os.path.join(tempfile.gettempdir(), "packer-cache-%d" % os.getuid())
    if shared != root:
        try:
            made = _own_private_folder(shared)
            paths = [_ensure(source, shared, dist, check, warn) for dist in natives]
        except OSError as exc:
            second = exc.strerror or str(exc)
        else:
            if made:
                warn(
                    "cannot use the cache folder %s (%s); native code goes to %s from now on"
                    % (root, reason, shared)
                )
            return paths
    else:
        second = reason
    import atexit
    import shutil

    try:
        private = tempfile.mkdtemp(prefix="packer-")  # mode 0700
        atexit.register(shutil.rmtree, private, True)
        paths = [_ensure(source, private, dist, check, warn) for dist in natives]
    except OSError as exc:
        raise ArchiveError(
            "%s: cannot extract its native code: %s (in %s: %s; in %s: %s)"
            % (name, exc.strerror or exc, root, reason, shared, second)
        ) from None
    warn(
        "cannot use the cache folder %s (%s) nor %s; extracting native code to %s"
        % (root, reason, shared, private)
    )
    return paths


class _Source:
    """The archive, opened (and its manifest read) only when something must be extracted or
    checked: a warm start never parses it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._archive: Optional[Archive] = None
        self._members: Optional[Dict[str, Tuple[str, int]]] = None

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    def open(self) -> Tuple[Archive, Dict[str, Tuple[str, int]]]:
        if self._archive is None or self._members is None:
            from .format import open_archive

            archive = open_archive(self.path)
            manifest = archive.manifest()
            if manifest is None:
                archive.close()
                raise ArchiveError("%s: not a packer archive (no manifest)" % archive.name)
            self._archive, self._members = archive, manifest.members
        return self._archive, self._members

    def files(self, dist: NativeDist) -> Dict[str, Tuple[str, int]]:
        """The distribution's files (relative to its folder) with their recorded SHA-256s,
        refusing an archive whose manifest does not give the key the stub names."""
        from .format import native_key

        archive, members = self.open()
        if native_key(dist.prefix, members) != dist.key:
            raise ArchiveError(
                "%s: the native code of %s %s does not match the archive's manifest"
                % (archive.name, dist.name, dist.version)
            )
        cut = len(dist.prefix)
        return {
            name[cut:]: record for name, record in members.items() if name.startswith(dist.prefix)
        }


def bytecode_folder(sources: str) -> Optional[str]:
    """Where this interpreter keeps the bytecode it compiles for an archive whose sources have
    the key *sources* (an interpreter the archive stores none for): a cache entry
    ``bytecode-KEY``, made if need be, with a folder per cache tag. None when the cache
    cannot be used: modules then compile at every start, as they would without it.

    The entry is complete from the start (each file in it is written whole, then renamed
    into place), so ``packer cache prune`` treats it as any other, and removing it costs
    only a compile at the next start.
    """
    import sys

    root = cache_root()
    entry = os.path.join(root, "bytecode-" + sources[:40])
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        check_trusted(root)
        with contextlib.suppress(FileExistsError):
            os.mkdir(entry, 0o700)
        st = os.lstat(entry)
        if not stat.S_ISDIR(st.st_mode) or not _private(st):
            return None
        marker = os.path.join(entry, MARKER)
        try:
            if time.time() - os.stat(marker).st_mtime > _DAY:
                _touch(marker)  # "last used", for prune; at most once a day
        except FileNotFoundError:
            with open(marker, "w") as fp:
                fp.write("bytecode\n")
        folder = os.path.join(entry, sys.implementation.cache_tag or "none")
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return folder


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def check_trusted(root: str) -> None:
    """Refuse a cache root that someone else could plant code in.

    The root must be this user's and writable by no one else; its parent this user's or
    root's, and if others may write there, sticky (as /tmp is), so the root cannot be swapped.
    """
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, "not a folder", root)
    if not _private(st):
        raise OSError(errno.EPERM, "not a folder of this user's that only it can write", root)
    parent = os.lstat(os.path.dirname(root))
    if parent.st_uid not in (0, os.getuid()) or (
        parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX
    ):
        raise OSError(errno.EPERM, "its parent folder can be changed by other users", root)


def _own_private_folder(path: str) -> bool:
    """Make sure *path* is a real folder that only this user can use; True if made now.

    Raises OSError when it is anything else: in a shared temporary directory another user
    could have made it first, to have this user run code from it.
    """
    made = False
    try:
        os.mkdir(path, 0o700)
        made = True
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(errno.EPERM, "not a private folder of this user", path)
    return made


def _ensure(
    source: _Source, root: str, dist: NativeDist, check: bool, warn: Callable[[str], None]
) -> str:
    final = os.path.join(root, dist.entry_name)
    marker = os.path.join(final, MARKER)
    for _attempt in range(3):
        try:
            st = os.stat(marker)
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            raise OSError(errno.ENOTDIR, "not a folder", root) from None
        else:
            check_trusted(root)
            if not _private(os.lstat(final)):
                raise OSError(errno.EPERM, "a cache entry that is not this user's alone", final)
            if _hold(final, marker):
                if check and not _matches(final, source.files(dist)):
                    warn("the cache entry %s does not match the archive; extracting it again"
                         % final)  # fmt: skip
                    _discard(root, final)
                    continue
                if time.time() - st.st_mtime > _DAY:
                    _touch(marker)  # "last used", for prune; at most once a day
                return final
            continue  # pruned while we waited for the lock: extract again
        _extract(source, root, final, dist)
    raise OSError(errno.EAGAIN, "the cache entry keeps disappearing", final)


def _matches(final: str, files: Dict[str, Tuple[str, int]]) -> bool:
    """Whether the entry holds exactly *files*, byte for byte (links and extras refused)."""
    import hashlib

    found = set()
    for folder, dirs, names in os.walk(final):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, final).replace(os.sep, "/")
            if rel in (MARKER, LOCK):
                continue
            record = files.get(rel)
            st = os.lstat(path)
            if record is None and stat.S_ISREG(st.st_mode) and _compiled_here(rel, files):
                continue
            if record is None or not stat.S_ISREG(st.st_mode) or st.st_size != record[1]:
                return False
            digest = hashlib.sha256()
            with open(path, "rb") as fp:
                for chunk in iter(lambda: fp.read(1 << 20), b""):
                    digest.update(chunk)
            if digest.hexdigest() != record[0]:
                return False
            found.add(rel)
    return found == set(files)


def _compiled_here(rel: str, files: Dict[str, Tuple[str, int]]) -> bool:
    """Whether *rel* is the bytecode Python wrote, on import, for one of *files*' sources
    (``pkg/__pycache__/mod.TAG.pyc`` for ``pkg/mod.py``): checked against that source's
    time and size by whoever loads it, so an edited source is compiled again."""
    head, _, tail = rel.rpartition("__pycache__/")
    if (head and not head.endswith("/")) or "/" in tail or not tail.endswith(".pyc"):
        return False
    stem = tail.split(".", 1)[0]
    return head + stem + ".py" in files


def _hold(final: str, marker: str) -> bool:
    """Take a shared lock on the entry; False if it vanished meanwhile."""
    try:
        import fcntl
    except ImportError:  # no flock here: prune cannot remove entries in use, so nothing to do
        return os.path.exists(marker)
    try:
        fd = os.open(os.path.join(final, LOCK), os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    fcntl.flock(fd, fcntl.LOCK_SH)
    if not os.path.exists(marker):
        os.close(fd)
        return False
    _held.append(fd)
    return True


def _touch(path: str) -> None:
    # A read-only cache still works; it just cannot record use.
    with contextlib.suppress(OSError):
        os.utime(path)


def _extract(source: _Source, root: str, final: str, dist: NativeDist) -> None:
    # Only a cold start gets here: keep these imports off the warm path.
    import hashlib
    import tempfile

    os.makedirs(root, mode=0o700, exist_ok=True)
    check_trusted(root)
    if os.path.lexists(final):
        if os.path.exists(os.path.join(final, MARKER)):
            # Finished by another run since this one looked: others may be running from it
            # already, so it must not be thrown away.
            return
        # There without its marker: left by something other than a finished extraction.
        _discard(root, final)
    files = source.files(dist)
    archive, _members = source.open()
    tmp = tempfile.mkdtemp(prefix=".tmp-%s-" % os.path.basename(final), dir=root)
    lock = os.open(os.path.join(tmp, LOCK), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _exclusive(lock)  # prune leaves a folder alone while this is held
        for rel in sorted(files):
            entry = archive.layout.by_name.get(dist.prefix + rel)
            if entry is None or entry.is_dir or entry.is_link:
                raise ArchiveError(
                    "%s: %s lists %s, which is not a file in the archive"
                    % (archive.name, "the manifest", dist.prefix + rel)
                )
            target = os.path.join(tmp, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            digest = hashlib.sha256()
            mode = (entry.mode & 0o777) or 0o644
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            with os.fdopen(fd, "wb") as dst:
                for chunk in archive.chunks(entry):
                    digest.update(chunk)
                    dst.write(chunk)
            if digest.hexdigest() != files[rel][0]:
                raise ArchiveError(
                    "%s: %s does not match its SHA-256 in the manifest"
                    % (archive.name, dist.prefix + rel)
                )
            os.chmod(target, mode)
        with open(os.path.join(tmp, MARKER), "w") as fp:
            fp.write("%s\n" % os.path.basename(source.path))
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # Another process finished first; its copy is the same bytes.
    finally:
        os.close(lock)
        if os.path.exists(tmp):
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def _exclusive(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this system
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def _discard(root: str, path: str) -> None:
    import shutil
    import tempfile

    trash = tempfile.mkdtemp(prefix=".trash-", dir=root)
    with contextlib.suppress(FileNotFoundError):
        os.rename(path, os.path.join(trash, "entry"))
    shutil.rmtree(trash, ignore_errors=True)


class CacheEntry:
    """One folder in the cache, as ``packer cache info`` shows it."""

    __slots__ = ("complete", "last_used", "name", "path", "size")

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = os.path.basename(path)
        marker = os.path.join(path, MARKER)
        self.complete = os.path.exists(marker)
        try:
            self.last_used = os.stat(marker if self.complete else path).st_mtime
        except OSError:
            self.last_used = 0.0
        self.size = _tree_size(path)


def _tree_size(path: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def list_entries(root: Optional[str] = None) -> List[CacheEntry]:
    """Every entry in the cache (temporary and broken ones included), by name."""
    root = root or cache_root()
    try:
        names = sorted(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        path = os.path.join(root, name)
        if stat.S_ISDIR(os.lstat(path).st_mode):
            found.append(CacheEntry(path))
    return found


def remove_entry(entry: CacheEntry) -> bool:
    """Remove *entry* unless a running archive holds it or is still extracting it; True if
    removed."""
    root = os.path.dirname(entry.path)
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(os.path.join(entry.path, LOCK), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        # No lock file: a broken entry, or a temporary folder just made (left for a while).
        if not entry.complete and time.time() - entry.last_used < _GRACE:
            return False
        _discard(root, entry.path)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # in use, or being extracted
        # Renamed away while locked: a starting archive that then gets its shared lock sees
        # the marker gone and extracts again instead of using a half-deleted folder.
        _discard(root, entry.path)
        return True
    finally:
        os.close(fd)


def prune(
    older_than_days: Optional[float] = None,
    remove_all: bool = False,
    root: Optional[str] = None,
) -> Tuple[List[CacheEntry], List[CacheEntry]]:
    """Remove entries unused for *older_than_days* (or all with *remove_all*); what
    ``packer cache prune`` does.

    Temporary and broken entries go too. An entry a running archive holds, or one being
    extracted, is kept, whatever its age. Returns (removed, kept because in use).
    """
    now = time.time()
    removed: List[CacheEntry] = []
    busy: List[CacheEntry] = []
    for entry in list_entries(root):
        old_enough = older_than_days is not None and now - entry.last_used >= older_than_days * _DAY
        if not (remove_all or old_enough or not entry.complete):
            continue
        (removed if remove_entry(entry) else busy).append(entry)
    return removed, busy
