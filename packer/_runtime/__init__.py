"""packer's runtime: the small, stdlib-only package that every archive carries.

The builder copies this package into each archive as ``_packer_runtime``. The archive's
generated ``__main__.py`` calls :func:`main`; nothing here imports ``packer`` itself.
Keep it importable on Python 3.9.
"""

from __future__ import annotations

import os
import sys

from .errors import ArchiveError, PackerError
from .launch import call_entry, run_module_as_main

__all__ = ["ArchiveError", "PackerError", "main"]


def main(stub_file: str, entry_kind: str, entry: str) -> None:
    """Run the archive whose stub is *stub_file*; called by the generated ``__main__.py``."""
    archive = os.path.dirname(stub_file)
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _print_exception
    if entry_kind == "callable":
        call_entry(entry)
    elif entry_kind == "module":
        run_module_as_main(entry)
    else:
        sys.exit("%s: unknown entry point kind %r" % (os.path.basename(archive), entry_kind))


def _print_exception(kind, value, tb):  # type: ignore[no-untyped-def]
    """Show tracebacks with their source lines.

    The interpreter's built-in hook reads source lines from files on disk, which members of an
    archive are not; the traceback module asks each module's loader, and zipimport answers.
    """
    import traceback

    traceback.print_exception(kind, value, tb)
