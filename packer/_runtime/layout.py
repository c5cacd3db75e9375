"""Names and constants of the packer archive format (see docs/format.md)."""

from __future__ import annotations

__all__ = [
    "APP_MAIN_MODULE",
    "COMMENT_PREFIX",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "NATIVE_FOLDER",
    "RESERVED_PREFIXES",
    "RUNTIME_PACKAGE",
    "SITE_PACKAGES",
    "STUB_NAME",
]

#: Bumped whenever a reader of an older version could misread a newer archive.
FORMAT_VERSION = 1

#: The generated entry stub; Python runs it for ``python app.pyz``.
STUB_NAME = "__main__.py"

#: The project's own top-level ``__main__.py`` is stored under this module name, because the
#: stub has to own ``__main__.py``.
APP_MAIN_MODULE = "__packer_main__"

#: The runtime package copied into every archive (from ``packer/_runtime`` in the repo).
RUNTIME_PACKAGE = "_packer_runtime"

#: The JSON manifest. It lists every other member with its SHA-256 and size.
MANIFEST_NAME = "_packer/manifest.json"

#: Bundled pure-Python distributions: a folder the runtime puts on sys.path.
SITE_PACKAGES = "_packer/site-packages"

#: Bundled distributions with native code, one folder each, extracted to the cache at run time.
NATIVE_FOLDER = "_packer/native"

#: The zip comment starts with this; ``key=value`` fields follow, separated by spaces.
COMMENT_PREFIX = b"packer/1"

#: Top-level names the builder writes itself; the project may not supply them.
RESERVED_PREFIXES = ("_packer/", RUNTIME_PACKAGE + "/", APP_MAIN_MODULE + ".py")
