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
    if entry_kind == "callable":
        call_entry(entry)
    elif entry_kind == "module":
        run_module_as_main(entry)
    else:
        sys.exit("%s: unknown entry point kind %r" % (os.path.basename(archive), entry_kind))
