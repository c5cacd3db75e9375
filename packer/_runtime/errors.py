"""The exception base shared by packer and the runtime copied into archives."""

from __future__ import annotations

__all__ = ["ArchiveError", "PackerError"]


class PackerError(Exception):
    """Base of every error packer reports to the user.

    The message is one line that names the subject and the reason; the CLI prints it as
    ``packer: <message>`` and exits with status 1.
    """


class ArchiveError(PackerError):
    """A file is not a readable archive, or its contents are not what they claim."""
