"""packer: turn a project folder into one runnable, reproducible ``.pyz`` (Phar for Python).

``import packer`` needs only the standard library; the command line lives in
:mod:`packer.cli` and is the only part that uses click.
"""

from __future__ import annotations

from ._runtime.environment import Environment, mount
from ._version import __version__
from .builder import BuildResult, build
from .errors import (
    ArchiveError,
    BuildError,
    ConfigError,
    EntryPointError,
    PackerError,
    SourceError,
)

__all__ = [
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
    "mount",
]
