"""packer's runtime: the small, stdlib-only package that every archive carries.

The builder copies this package into each archive as ``_packer_runtime``. The archive's
generated ``__main__.py`` calls :func:`main`; nothing here imports ``packer`` itself.
Keep it importable on Python 3.9.
"""

from __future__ import annotations

import os
import sys

from . import importer as _importer

# Inside an archive, the rest of this package is loaded by the archive's own importer, which
# reads each module once; zipimport would read and unmarshal each two to four times.
_importer.install(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from .environment import Environment, activate, deactivate, mount, read_config  # noqa: E402
from .errors import ArchiveError, PackerError  # noqa: E402
from .format import RuntimeConfig  # noqa: E402
from .isolation import export_path, inherits, isolate  # noqa: E402
from .launch import call_entry, run_module_as_main  # noqa: E402

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

__all__ = [
    "ArchiveError",
    "Environment",
    "PackerError",
    "activate",
    "deactivate",
    "main",
    "mount",
    "read_config",
]


def main(
    stub_file: str, entry_kind: str, entry: str, config: Optional[Dict[str, Any]] = None
) -> None:
    """Run the archive whose stub is *stub_file*; called by the generated ``__main__.py``."""
    archive = os.path.dirname(os.path.abspath(stub_file))
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _print_exception
    if os.environ.get("PACKER_TOOLS", "") not in ("", "0"):
        # The archive's own read-only tools; inspecting never needs its code activated.
        from .commands import tools_main

        sys.exit(tools_main(archive, sys.argv[1:]))
    # The stub has already checked the digest when asked to (before importing this).
    try:
        if config is None:
            settings = _own_config(archive)
        else:  # a stub written before the configuration had its own member
            settings = RuntimeConfig.from_dict(config, os.path.basename(archive))
        where = isolate(archive, inherits(settings.inherit_path))
        env = activate(archive, settings, where=where)
    except ArchiveError as error:
        sys.exit(str(error))
    export_path([archive, *env.paths], settings.export_path)
    if entry_kind == "interpreter" or os.environ.get("PACKER_INTERPRETER", "") not in ("", "0"):
        from .interpreter import run_interpreter

        run_interpreter(archive, sys.argv[1:])
    if entry_kind == "callable":
        call_entry(entry)
    elif entry_kind == "module":
        run_module_as_main(entry)
    else:
        sys.exit("%s: unknown entry point kind %r" % (os.path.basename(archive), entry_kind))


def _own_config(archive: str) -> RuntimeConfig:
    from .format import RUNTIME_CONFIG_NAME, read_runtime_config
    from .importer import read_member

    name = os.path.basename(archive)
    try:
        text = read_member(archive, RUNTIME_CONFIG_NAME).decode("utf-8")
    except (KeyError, OSError, ImportError, UnicodeDecodeError):
        raise ArchiveError("%s: damaged: cannot read %s" % (name, RUNTIME_CONFIG_NAME)) from None
    return read_runtime_config(text, name, trusted=True)


def _print_exception(kind, value, tb):  # type: ignore[no-untyped-def]
    """Show tracebacks with their source lines.

    The interpreter's built-in hook reads source lines from files on disk, which members of an
    archive are not; the traceback module asks each module's loader, and zipimport answers.
    """
    import traceback

    traceback.print_exception(kind, value, tb)
