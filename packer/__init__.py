"""packer: turn a project folder into one runnable, reproducible ``.pyz`` (Phar for Python).

``import packer`` needs only the standard library; the command line lives in
:mod:`packer.cli` and is the only part that uses click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    ArchiveError,
    BuildError,
    ConfigError,
    EntryPointError,
    PackerError,
    SourceError,
)

if TYPE_CHECKING:
    from ._runtime.environment import Environment, mount
    from ._runtime.format import Archive, open_archive
    from .builder import BuildResult, build
    from .install import lock

# The builder and the runtime load on first use, so `packer --version` and the inspection
# commands start quickly.
_LAZY = {
    "Archive": "._runtime.format",
    "open_archive": "._runtime.format",
    "BuildResult": ".builder",
    "build": ".builder",
    "lock": ".install",
    "Environment": "._runtime.environment",
    "mount": "._runtime.environment",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'packer' has no attribute {name!r}")


__all__ = [
    "Archive",
    "ArchiveError",
    "BuildError",
    "BuildResult",
    "ConfigError",
    "EntryPointError",
    "Environment",
    "PackerError",
    "SourceError",
    "__version__",
    "build",
    "lock",
    "mount",
    "open_archive",
]
