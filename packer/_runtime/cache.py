"""The cache of extracted native code: where it lives, filling it safely, and pruning it.

Only distributions with native code are extracted (a C extension cannot be imported from a
zip). Each goes, once, into a folder named by the content of its files, so archives that
carry the same build of a distribution share it. Extraction writes a temporary folder beside
the final one, puts a marker in it last and renames it into place: concurrent first runs race
harmlessly, and a run killed half-way leaves only a temporary folder that nothing trusts.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

__all__ = [
    "LOCK",
    "MARKER",
    "CacheEntry",
    "cache_root",
    "ensure_extracted",
    "list_entries",
    "remove_entry",
]

MARKER = ".packer-complete"
LOCK = ".packer-lock"
_DAY = 86400.0

# Lock files of entries this process uses: held (shared) until it exits, so that
# ``packer cache prune`` never removes code a running archive has on sys.path.
_held: List[int] = []


def cache_root() -> str:
    """``$PACKER_CACHE``, else ``$XDG_CACHE_HOME/packer``, else ``~/.cache/packer``."""
    explicit = os.environ.get("PACKER_CACHE")
    if explicit:
        return os.path.abspath(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "packer")


def entry_name(dist: Dict[str, Any]) -> str:
    return "%s-%s-%s" % (dist["name"], dist["version"], dist["key"][:16])


def ensure_extracted(
    archive: str, natives: List[Dict[str, Any]], warn: Callable[[str], None]
) -> List[str]:
    """Folders holding each native distribution's files, extracting those not there yet.

    When the cache cannot be used (a read-only HOME, say), falls back to this user's own
    folder in the temporary directory, kept for the next runs and their child processes;
    one warning is given when that folder is made, not at every run. Should that folder be
    unusable too (someone else's, or not private), a private one is used and removed at exit,
    with a warning every time.
    """
    if not natives:
        return []
    root = cache_root()
    try:
        return [_ensure(archive, root, dist) for dist in natives]
    except OSError as exc:
        reason = exc.strerror or str(exc)
    import tempfile

    shared = os.path.join(tempfile.gettempdir(), "packer-cache-%d" % os.getuid())
    try:
        made = _own_private_folder(shared)
        paths = [_ensure(archive, shared, dist) for dist in natives]
    except OSError:
        pass
    else:
        if made:
            warn(
                "cannot use the cache folder %s (%s); native code goes to %s from now on"
                % (root, reason, shared)
            )
        return paths
    import atexit
    import shutil

    private = tempfile.mkdtemp(prefix="packer-")  # mode 0700
    atexit.register(shutil.rmtree, private, True)
    warn(
        "cannot use the cache folder %s (%s) nor %s; extracting native code to %s"
        % (root, reason, shared, private)
    )
    return [_ensure(archive, private, dist) for dist in natives]


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


def _ensure(archive: str, root: str, dist: Dict[str, Any]) -> str:
    final = os.path.join(root, entry_name(dist))
    marker = os.path.join(final, MARKER)
    for _attempt in range(3):
        try:
            st = os.stat(marker)
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            raise OSError(errno.ENOTDIR, "not a folder", root) from None
        else:
            if _hold(final, marker):
                if time.time() - st.st_mtime > _DAY:
                    _touch(marker)  # "last used", for prune; at most once a day
                return final
            continue  # pruned while we waited for the lock: extract again
        _extract(archive, root, final, dist)
    raise OSError(errno.EAGAIN, "the cache entry keeps disappearing", final)


def _hold(final: str, marker: str) -> bool:
    """Take a shared lock on the entry; False if it vanished meanwhile."""
    try:
        import fcntl
    except ImportError:  # no flock here: prune cannot remove entries in use, so nothing to do
        return os.path.exists(marker)
    try:
        fd = os.open(os.path.join(final, LOCK), os.O_RDONLY)
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


def _extract(archive: str, root: str, final: str, dist: Dict[str, Any]) -> None:
    # Only a cold start gets here: keep these imports off the warm path.
    import shutil
    import tempfile
    import zipfile

    os.makedirs(root, exist_ok=True)
    if os.path.lexists(final):
        if os.path.exists(os.path.join(final, MARKER)):
            # Finished by another run since this one looked: others may be running from it
            # already, so it must not be thrown away (a concurrent cold start once did).
            return
        # There without its marker: left by something other than a finished extraction.
        _discard(root, final)
    tmp = tempfile.mkdtemp(prefix=".tmp-%s-" % os.path.basename(final), dir=root)
    try:
        prefix = dist["prefix"]
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.filename.startswith(prefix) or info.filename.endswith("/"):
                    continue
                rel = info.filename[len(prefix) :]
                if rel.startswith("/") or ".." in rel.split("/"):
                    continue  # the builder never writes such names; never follow them
                target = os.path.join(tmp, *rel.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                mode = (info.external_attr >> 16) & 0o777
                os.chmod(target, mode or 0o644)
        os.close(os.open(os.path.join(tmp, LOCK), os.O_WRONLY | os.O_CREAT, 0o644))
        with open(os.path.join(tmp, MARKER), "w") as fp:
            fp.write("%s\n" % os.path.basename(archive))
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # Another process finished first; its copy is the same bytes.
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


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
    """Remove *entry* unless a running archive holds it; True if removed."""
    root = os.path.dirname(entry.path)
    if not entry.complete:
        _discard(root, entry.path)  # temporary or broken: nothing runs from it
        return True
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(os.path.join(entry.path, LOCK), os.O_RDONLY)
    except FileNotFoundError:
        _discard(root, entry.path)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # in use
        # Renamed away while locked: a starting archive that then gets its shared lock sees
        # the marker gone and extracts again instead of using a half-deleted folder.
        _discard(root, entry.path)
        return True
    finally:
        os.close(fd)
