"""Extracting an archive into a folder, without ever writing outside it. Shared by
``packer extract`` and every archive's own tools (``PACKER_TOOLS=1 ./app.pyz extract``).

Every check runs before the first write; files are written through a descriptor walk that
never follows a link, and links are made last. Hostile input ends in an :class:`ArchiveError`
with one line, never a traceback, and nothing written.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import contextlib
import os
import stat

from .errors import ArchiveError
from .format import Archive, Entry, Limits, name_problem, open_archive
from .inspection import refuse_damaged

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["extract"]

#: Longest name of one path component, and of a whole path, that Linux takes.
_NAME_MAX = 255
_PATH_MAX = 4000


def _selected(entries: Sequence[Entry], wanted: Sequence[str], name: str) -> List[Entry]:
    if not wanted:
        return list(entries)
    chosen = []
    for w in wanted:
        w = w.rstrip("/")
        hits = [e for e in entries if e.name.rstrip("/") == w or e.name.startswith(w + "/")]
        if not hits:
            raise ArchiveError("%s: no member %r" % (name, w))
        chosen += hits
    unique = {id(e): e for e in chosen}
    return sorted(unique.values(), key=lambda e: e.name)


def extract(
    path: str,
    dest: str,
    members: Sequence[str] = (),
    overwrite: bool = False,
    limits: Optional[Limits] = None,
    notes: Optional[List[str]] = None,
) -> List[str]:
    """Extract *members* (folders select their contents; all when empty) into *dest*.

    Every check runs before anything is written: names that are absolute, hold '..',
    backslashes, drive letters, control characters or NUL bytes; names that collide on a
    case-insensitive or Unicode-normalising file system; a file that is also a folder;
    symlink members that lead outside *dest*, through another link, or to another link
    (so no chains and no loops); links, files or folders already in *dest* in the way;
    and a *dest* reached through a symlink. Files are written through a descriptor walk
    that never follows a link, and links are made last. Existing files are kept unless
    *overwrite*. Returns the paths written; notes for the user go to *notes*.
    """
    with open_archive(path, limits) as archive:
        refuse_damaged(archive, notes)
        chosen = _selected(archive.entries, members, archive.name)
        real_dest = _check_dest(dest)
        plan = _plan(archive, chosen, real_dest, overwrite)
        return _write_plan(archive, plan, real_dest)


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


def _plan(
    archive: Archive, chosen: Sequence[Entry], dest: str, overwrite: bool
) -> List[Tuple[Entry, List[str], Optional[str]]]:
    """(entry, path parts, link target) for each member, after every check has passed."""
    import unicodedata

    name = archive.name
    folded: Dict[str, str] = {}
    links: Dict[str, str] = {}
    plan = []
    for e in chosen:
        member = e.name
        reason = name_problem(member)
        if reason:
            raise ArchiveError("%s: member %r has %s; nothing extracted" % (name, member, reason))
        parts = member.rstrip("/").split("/")
        if any(len(p.encode("utf-8")) > _NAME_MAX for p in parts) or len(member) > _PATH_MAX:
            raise ArchiveError("%s: member %r has a name too long to extract" % (name, member))
        key = unicodedata.normalize("NFC", member.rstrip("/")).casefold()
        if key in folded and folded[key] != member.rstrip("/"):
            raise ArchiveError(
                "%s: members %r and %r collide on a case-insensitive or normalising file "
                "system; nothing extracted" % (name, folded[key], member)
            )
        folded[key] = member.rstrip("/")
        target = None
        if e.is_link:
            if e.size > 4096:
                raise ArchiveError("%s: symlink member %r is implausibly long" % (name, member))
            try:
                target = archive.read(e).decode("utf-8")
            except UnicodeDecodeError:
                raise ArchiveError("%s: symlink member %r is not UTF-8" % (name, member)) from None
            links[member] = target
        elif not (e.is_dir or stat.S_IFMT(e.mode) in (0, stat.S_IFREG)):
            raise ArchiveError(
                "%s: member %r is a device, FIFO or socket; nothing extracted" % (name, member)
            )
        plan.append((e, parts, target))
    for member, target in links.items():
        _check_link(name, member, target, links, dest)
    for e, parts, _target in plan:
        _check_on_disk(name, e, parts, dest, overwrite)
    return plan


def _check_link(name: str, member: str, target: str, links: Dict[str, str], dest: str) -> None:
    """A link's target, resolved component by component as the kernel would, stays inside
    *dest* and passes through no other link: members that are links, or links in *dest*."""
    bad = None
    if not target or "\x00" in target or target.startswith("/") or "\\" in target:
        bad = "is absolute or malformed"
    else:
        stack = member.split("/")[:-1]
        pieces = [p for p in target.split("/") if p not in ("", ".")]
        for index, piece in enumerate(pieces):
            if piece == "..":
                if not stack:
                    bad = "leads outside the destination"
                    break
                stack.pop()
                continue
            stack.append(piece)
            here = "/".join(stack)
            if here in links or os.path.islink(os.path.join(dest, *stack)):
                last = index == len(pieces) - 1
                bad = "leads to another link" if last else "leads through another link"
                break
    if bad:
        raise ArchiveError(
            "%s: symlink member %r -> %r %s; nothing extracted" % (name, member, target, bad)
        )


def _check_on_disk(name: str, e: Entry, parts: List[str], dest: str, overwrite: bool) -> None:
    """What is already in *dest* on the member's way: no link, no file where a folder goes."""
    path = dest
    for depth, part in enumerate(parts):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        except NotADirectoryError:  # pragma: no cover - caught one level up
            return
        last = depth == len(parts) - 1
        if stat.S_ISLNK(st.st_mode):
            raise ArchiveError(
                "%s: %s is a symlink already in the destination; not followed, nothing "
                "extracted" % (name, path)
            )
        if not last and not stat.S_ISDIR(st.st_mode):
            raise ArchiveError(
                "%s: %s is a file in the destination where %r needs a folder; nothing "
                "extracted" % (name, path, e.name)
            )
        if last:
            if e.is_dir:
                if not stat.S_ISDIR(st.st_mode):
                    raise ArchiveError(
                        "%s: %s is a file in the destination where a folder goes; nothing "
                        "extracted" % (name, path)
                    )
            elif stat.S_ISDIR(st.st_mode):
                raise ArchiveError(
                    "%s: %s is a folder in the destination where a file goes; nothing "
                    "extracted" % (name, path)
                )
            elif not overwrite:
                raise ArchiveError(
                    "%s: %s exists; not overwritten (use --overwrite)" % (name, path)
                )


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _write_plan(
    archive: Archive, plan: List[Tuple[Entry, List[str], Optional[str]]], dest: str
) -> List[str]:
    os.makedirs(dest, exist_ok=True)
    root = os.open(dest, _DIR_FLAGS)
    written: List[str] = []
    folders: Dict[Tuple[str, ...], int] = {(): root}
    try:
        for e, parts, target in plan:
            if target is not None:
                continue
            if e.is_dir:
                _folder(folders, tuple(parts))
                continue
            parent = _folder(folders, tuple(parts[:-1]))
            _write_file(archive, e, parent, parts[-1])
            written.append(os.path.join(dest, *parts))
        # Links last: nothing is ever written through one.
        for _e, parts, target in plan:
            if target is None:
                continue
            parent = _folder(folders, tuple(parts[:-1]))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(parts[-1], dir_fd=parent)
            os.symlink(target, parts[-1], dir_fd=parent)
            written.append(os.path.join(dest, *parts))
    except OSError as exc:
        raise ArchiveError(
            "%s: cannot extract into %s: %s (%d files written before)"
            % (archive.name, dest, exc.strerror or exc, len(written))
        ) from None
    finally:
        for fd in folders.values():
            os.close(fd)
    return written


def _folder(folders: Dict[Tuple[str, ...], int], parts: Tuple[str, ...]) -> int:
    """A descriptor of the folder *parts* below the destination, made as needed; never
    through a link (O_NOFOLLOW at every step)."""
    fd = folders.get(parts)
    if fd is not None:
        return fd
    parent = _folder(folders, parts[:-1])
    with contextlib.suppress(FileExistsError):
        os.mkdir(parts[-1], 0o755, dir_fd=parent)
    fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
    folders[parts] = fd
    return fd


def _write_file(archive: Archive, e: Entry, parent: int, leaf: str) -> None:
    mode = (e.mode & 0o777) or 0o644
    tmp = ".%s.%s.packer-tmp" % (leaf[:200], os.urandom(4).hex())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in archive.chunks(e):
                out.write(chunk)
            os.fchmod(out.fileno(), mode)
        os.replace(tmp, leaf, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=parent)
        raise
