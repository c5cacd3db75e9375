"""The exceptions packer raises: one base class, specific subclasses.

The base and :class:`ArchiveError` live in the runtime package (which archives carry and which
cannot import packer); this module adds the builder's own.
"""

from __future__ import annotations

from pathlib import Path

from ._runtime.errors import ArchiveError, PackerError

__all__ = [
    "ArchiveError",
    "BuildError",
    "ConfigError",
    "EntryPointError",
    "PackerError",
    "SourceError",
    "read_input",
]


class SourceError(PackerError):
    """The source folder, or something found while walking it, cannot be packed."""


class EntryPointError(PackerError):
    """The entry point is malformed or names something that is not in the archive."""


class ConfigError(PackerError):
    """``[tool.packer]``, a ``--config`` file or an option holds an unknown key or a bad value."""


class BuildError(PackerError):
    """The archive could not be written where it was asked to go."""


def read_input(path: Path, what: str) -> bytes:
    """The bytes of a file the user named (a config file, a key), or one line saying why not."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}") from None
