"""What an archive sees of the interpreter running it: the standard library, not its packages.

A program that runs from an archive should behave as it does in a fresh venv, where only the
standard library and what was installed for it are importable. The interpreter's own
site-packages (or a venv's, or the user site) would otherwise lend it packages it never
declared, which then are missing on the next machine. :func:`isolate` takes them off
``sys.path`` before the archive's code goes on; ``PYTHONPATH`` stays, as it does for a venv.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import List, Optional

__all__ = ["EXPORT_VARIABLE", "INHERIT_VARIABLE", "export_path", "inherits", "isolate"]

#: ``PACKER_INHERIT_PATH=1`` keeps the interpreter's site-packages after the archive's own
#: (``0`` isolates even an archive built with ``--inherit-path``).
INHERIT_VARIABLE = "PACKER_INHERIT_PATH"

#: ``PACKER_EXPORT_PATH=1`` puts the archive's import path in ``PYTHONPATH`` for its children.
EXPORT_VARIABLE = "PACKER_EXPORT_PATH"

_SITE_FOLDERS = ("site-packages", "dist-packages")


def _switch(variable: str, default: bool) -> bool:
    value = os.environ.get(variable, "")
    if value == "":
        return default
    return value != "0"


def inherits(built_default: bool) -> bool:
    """Whether this run keeps the interpreter's installed packages on ``sys.path``."""
    return _switch(INHERIT_VARIABLE, built_default)


def _stdlib_roots() -> List[str]:
    roots = []
    stdlib = getattr(sys, "_stdlib_dir", None) or os.path.dirname(os.__file__)
    for root in (stdlib, sys.base_prefix, sys.base_exec_prefix):
        if root:
            roots.append(os.path.normcase(os.path.abspath(root)) + os.sep)
    return roots


def _from_environment() -> List[str]:
    if sys.flags.ignore_environment:
        return []
    given = os.environ.get("PYTHONPATH", "")
    return [os.path.normcase(os.path.abspath(p)) for p in given.split(os.pathsep) if p]


def _is_stdlib(key: str, roots: List[str]) -> bool:
    """Whether *key* is a folder of the interpreter's own (not one of its package folders)."""
    for root in roots:
        if (key + os.sep).startswith(root):
            below = key[len(root) :].replace(os.sep, "/").split("/")
            return not any(part in _SITE_FOLDERS for part in below)
    return False


def isolate(archive: str, inherit: bool) -> int:
    """Leave on ``sys.path`` the archive, ``PYTHONPATH`` and the standard library, each entry
    once; with *inherit*, drop only the duplicates. Returns where the archive's bundled
    folders go: after ``PYTHONPATH``, which comes before installed packages in a venv too.

    Finders that site's ``.pth`` files put on ``sys.meta_path`` from a dropped folder (editable
    installs, setuptools' distutils shim) go with it.
    """
    archive_key = os.path.normcase(archive)
    roots = _stdlib_roots()
    given = set(_from_environment())
    isolating = not inherit and not sys.flags.no_site
    kept: List[str] = []
    seen = set()
    dropped: List[str] = []
    for entry in sys.path:
        key = os.path.normcase(os.path.abspath(entry)) if entry else entry
        if key == archive_key:
            entry = archive  # Python puts the path as typed first: ./app.pyz, app.pyz
        if key in seen:
            continue
        ours = key == archive_key or key.startswith(archive_key + os.sep)
        outside = entry and key not in given and not ours
        if isolating and outside and not _is_stdlib(key, roots):
            dropped.append(key + os.sep)
            sys.path_importer_cache.pop(entry, None)
            continue
        seen.add(key)
        kept.append(entry)
    sys.path[:] = kept
    if dropped:
        sys.meta_path[:] = [f for f in sys.meta_path if not _loaded_from(f, dropped)]
    where = kept.index(archive) + 1 if archive in kept else 0
    while where < len(kept) and os.path.normcase(os.path.abspath(kept[where])) in given:
        where += 1
    return where


def _loaded_from(finder: object, folders: List[str]) -> bool:
    owner = finder if isinstance(finder, type) else type(finder)
    module = sys.modules.get(getattr(owner, "__module__", None) or "")
    origin: Optional[str] = getattr(module, "__file__", None)
    if not origin:
        return False
    origin = os.path.normcase(os.path.abspath(origin))
    return any(origin.startswith(folder) for folder in folders)


def export_path(paths: List[str], built_default: bool) -> None:
    """With ``PACKER_EXPORT_PATH=1`` (or an archive built with ``--export-path``), put the
    archive's part of the import path (*paths*) first in ``PYTHONPATH``, so that a child
    ``[sys.executable, "-c", "import dep"]`` finds what the archive bundles."""
    if not _switch(EXPORT_VARIABLE, built_default):
        return
    given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + [p for p in given if p not in paths])
