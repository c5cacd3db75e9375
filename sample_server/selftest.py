"""``sample-server test``: run the test suite that ships inside the package, wherever it is.

The suite travels with the code (``sample_server/tests``), so an installed copy or an archive
can check itself. pytest collects files, not modules inside a zip, so the test files are
copied into a temporary folder and run from there; everything they import, ``sample_server``
and its support module included, still comes from where this package was loaded (inside
``app.pyz``, the archive). Only the test files are copied, never the code under test.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable  # Python 3.11+; annotations only

__all__ = ["run_tests"]

#: Where the copied suite sits under the temporary root: the same relative path as in the
#: source tree, so node ids (``sample_server/tests/test_echo.py::test_...``) are the same.
SUITE = "sample_server/tests"

#: The suite's pytest settings (the source tree's pyproject.toml has the same ones).
_INI = """\
[pytest]
addopts = --strict-markers --import-mode=importlib -ra -p no:cacheprovider
filterwarnings = error
markers =
    slow: long tests, which the packed suite runs too (a plain pytest in a checkout leaves them out)
"""


def run_tests(args: Sequence[str]) -> int:
    """Run the packed suite with *args* passed on to pytest; pytest's exit status."""
    try:
        import pytest
    except ImportError:
        print("sample-server: the test command needs pytest, which is not installed",
              file=sys.stderr)  # fmt: skip
        return 1
    # Plugins installed on this machine stay out: the suite runs as it was packed.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    program = _this_program()
    if program is not None:
        # The end-to-end tests start the server in subprocesses: from this same archive.
        os.environ["SAMPLE_SERVER_COMMAND"] = json.dumps([sys.executable, str(program)])
    with tempfile.TemporaryDirectory(prefix="sample-server-tests-") as tmp:
        root = Path(tmp)
        _copy_tests(files("sample_server.tests"), root / SUITE)
        (root / "pytest.ini").write_text(_INI, encoding="utf-8")
        given = [_relocate(arg, root) for arg in args]
        # Paths into the suite (as in the source tree) select tests; without any, run it all.
        chosen = any(arg != original for arg, original in zip(given, args, strict=True))
        paths = [] if chosen else [str(root / SUITE)]
        argv = ["-c", str(root / "pytest.ini"), "--rootdir", str(root), *given, *paths]
        return int(pytest.main(argv))


def _this_program() -> Path | None:
    """The archive (or extracted archive folder) running now, when this package was loaded
    from inside it; None for an installed package or a source tree."""
    if not sys.argv or not sys.argv[0]:
        return None
    program = Path(sys.argv[0]).resolve()
    if not (program / "__main__.py").is_file() and not zipfile.is_zipfile(program):
        return None
    return program if Path(__file__).resolve().is_relative_to(program) else None


def _copy_tests(source: Traversable, dest: Path) -> None:
    """Copy the suite's ``.py`` files (not bytecode, not ``__pycache__``)."""
    dest.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file() and item.name.endswith(".py"):
            (dest / item.name).write_bytes(item.read_bytes())


def _relocate(arg: str, root: Path) -> str:
    """A path into the suite, given as in the source tree, made to point at the copy."""
    if arg == SUITE or arg.startswith((SUITE + "/", SUITE + "::")):
        return str(root / arg)
    return arg
