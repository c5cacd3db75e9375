"""Walk a source folder and decide which files go into the archive."""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SourceError
from .patterns import GlobRule, GlobRules, parse_gitignore

__all__ = ["JUNK_DIRS", "JUNK_FILES", "FileFilter", "Selection", "SourceFile", "select_files"]

#: Folders never packed: version control, bytecode and tool caches.
JUNK_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".tox",
        ".nox",
        ".idea",
        ".vscode",
    }
)

#: Files never packed: bytecode, OS litter, editor backups and swap files.
JUNK_FILES = (
    "*.pyc",
    "*.pyo",
    ".DS_Store",
    "Thumbs.db",
    "*~",
    ".*.swp",
    ".*.swo",
    ".#*",
    "#*#",
    "*.orig",
    "*.rej",
)


_JUNK_FILE = re.compile("|".join(fnmatch.translate(junk) for junk in JUNK_FILES))


@dataclass(frozen=True)
class SourceFile:
    """A file chosen for the archive: its member name and where to read it."""

    name: str
    path: Path
    executable: bool
    size: int = 0


@dataclass
class Selection:
    """The result of a walk: files in member-name order and warnings about what was not."""

    root: Path
    files: list[SourceFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def names(self) -> set[str]:
        return {item.name for item in self.files}


@dataclass(frozen=True)
class FileFilter:
    """What the user asked to include and exclude, and whether ``.gitignore`` counts."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    use_gitignore: bool = True

    def selects(self, root: Path, rel: str) -> bool:
        """Whether a file at *rel* (POSIX, relative to *root*) would be packed, were it there."""
        rules = _WalkRules(self, root)
        parts = rel.split("/")
        for depth, name in enumerate(parts[:-1]):
            rules.enter(root, "/".join(parts[:depth]))
            if not rules.dir_wanted("/".join(parts[: depth + 1]), name):
                return False
        rules.enter(root, "/".join(parts[:-1]))
        return rules.file_wanted(rel, parts[-1])


class _WalkRules:
    """Everything that decides whether one relative path is packed."""

    def __init__(self, patterns: FileFilter, root: Path) -> None:
        self.include = GlobRules([p for p in map(GlobRule.compile, patterns.include) if p])
        self.exclude = GlobRules([p for p in map(GlobRule.compile, patterns.exclude) if p])
        self.use_gitignore = patterns.use_gitignore
        self.gitignore = GlobRules(_outer_gitignore(root) if patterns.use_gitignore else [])
        self._entered: set[str] = set()

    def enter(self, root: Path, rel: str) -> None:
        """Take in the ``.gitignore`` of folder *rel*, once."""
        if self.use_gitignore and rel not in self._entered:
            self._entered.add(rel)
            self.gitignore.extend(
                _read_rules(root / rel / ".gitignore" if rel else root / ".gitignore", rel)
            )

    def dir_wanted(self, rel: str, name: str) -> bool:
        if name in JUNK_DIRS:
            return False
        return not (self.gitignore.matches(rel, True) or self.exclude.matches(rel, True))

    def file_wanted(self, rel: str, name: str) -> bool:
        if _JUNK_FILE.match(name):
            return False
        if self.gitignore.matches(rel, False) or self.exclude.matches(rel, False):
            return False
        return not self.include or self._included(rel)

    def _included(self, rel: str) -> bool:
        """Whether *rel* is asked for: by a pattern matching the file itself or, as with a
        ``.gitignore`` folder pattern, one of its folders; the nearest decision wins."""
        decided = self.include.decide(rel, False)
        parts = rel.split("/")
        for depth in range(len(parts) - 1, 0, -1):
            if decided is not None:
                break
            decided = self.include.decide("/".join(parts[:depth]), True)
        return decided is True


def select_files(
    source: Path,
    *,
    patterns: FileFilter = FileFilter(),
    follow_symlinks: bool = False,
    skip: Callable[[str, Path], bool] = lambda name, path: False,
) -> Selection:
    """Walk *source* and return the files to pack, sorted by member name.

    Raises SourceError for what cannot be packed faithfully: a missing or non-folder source,
    a broken symlink, a symlink leading outside *source* (unless *follow_symlinks*), a file
    name that is not UTF-8. Fifos, sockets and devices are skipped with a warning. *skip* is
    asked about every entry (its name, then its path) and keeps the output and its temporary
    file out.
    """
    if not source.exists():
        raise SourceError(f"{source}: no such folder")
    if not source.is_dir():
        raise SourceError(f"{source}: not a folder")
    root = source.resolve()
    rules = _WalkRules(patterns, root)
    selection = Selection(root)
    _walk(root, "", rules, follow_symlinks, skip, selection, {root})
    selection.files.sort(key=lambda item: item.name)
    if not selection.files:
        raise SourceError(
            f"{source}: nothing to pack (the folder is empty or everything is excluded)"
        )
    return selection


def _outer_gitignore(root: Path) -> list[GlobRule]:
    """Rules from ``.gitignore`` files above *root*, up to its git work tree's top, rebased."""
    top = next((p for p in [root, *root.parents] if (p / ".git").exists()), None)
    if top is None or top == root:
        patterns: list[GlobRule] = []
        if top is not None:
            patterns.extend(_read_rules(top / ".git" / "info" / "exclude", ""))
        return patterns
    found: list[GlobRule] = []
    prefix = root.relative_to(top).as_posix()
    levels = [top, *reversed([p for p in root.parents if p != top and top in p.parents])]
    sources = [(top / ".git" / "info" / "exclude", top)] + [(p / ".gitignore", p) for p in levels]
    for file, folder in sources:
        base = folder.relative_to(top).as_posix()
        for pattern in _read_rules(file, "" if base == "." else base):
            found.append(_rebase(pattern, prefix))
    return found


def _rebase(pattern: GlobRule, prefix: str) -> GlobRule:
    """Re-express a pattern from above the source folder for paths relative to the source."""
    return dataclasses.replace(pattern, prefix=prefix)


def _read_rules(file: Path, base: str) -> list[GlobRule]:
    try:
        if file.is_file():
            return parse_gitignore(file, base)
    except OSError as exc:
        raise SourceError(f"{file}: cannot read: {exc.strerror}") from None
    return []


def _walk(
    folder: Path,
    rel: str,
    rules: _WalkRules,
    follow_symlinks: bool,
    skip: Callable[[str, Path], bool],
    selection: Selection,
    seen: set[Path],
) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise SourceError(f"{folder}: cannot list folder: {exc.strerror}") from None
    # Listed first: an unreadable folder is reported as itself, not as its .gitignore.
    if rel and any(e.name == "pyvenv.cfg" and e.is_file() for e in entries):
        return  # a virtual environment: never part of an application
    rules.enter(selection.root, rel)
    for entry in entries:
        name = entry.name
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(entry.path).decode("utf-8", "backslashreplace")
            raise SourceError(f"{shown}: file name is not valid UTF-8") from None
        path = Path(entry.path)
        if skip(name, path):
            continue
        child = f"{rel}/{name}" if rel else name
        is_link = entry.is_symlink()
        try:
            st = os.stat(path) if is_link else entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            if is_link:
                raise SourceError(f"{path}: broken symbolic link") from None
            raise SourceError(f"{path}: vanished while walking") from None
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir and not rules.dir_wanted(child, name):
            continue
        if not is_dir and not stat.S_ISREG(st.st_mode):
            selection.warnings.append(
                f"{path}: skipped: not a regular file (fifo, socket or device)"
            )
            continue
        if not is_dir and not rules.file_wanted(child, name):
            continue
        real = path.resolve() if is_link else None
        if real is not None and not real.is_relative_to(selection.root) and not follow_symlinks:
            raise SourceError(
                f"{path}: symbolic link leads outside the source folder "
                "(use --follow-symlinks to pack what it points to)"
            )
        if is_dir:
            if real is not None:
                if real in seen:
                    raise SourceError(f"{path}: symbolic link loop")
                seen = seen | {real}
            _walk(path, child, rules, follow_symlinks, skip, selection, seen)
            continue
        if not os.access(path, os.R_OK):
            raise SourceError(f"{path}: cannot read: permission denied")
        executable = bool(st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
        selection.files.append(SourceFile(child, path, executable, st.st_size))
