"""Build app.pyz: sample_server, its test suite and everything they need, in one runnable file.

    python3 build.py [-o app.pyz] [--no-uvloop] [-q]

This is the model build script (the Phar article's build.php): copy it and change the names.
It runs from a fresh checkout with nothing installed: packer is imported from this tree, and
uv, which resolves for each target Python, is fetched by pip when it is not installed (into a
temporary folder; pip's cache serves later builds).

The archive is built for CPython 3.10, 3.11, 3.12 and 3.13 on this platform: each gets its own
resolution (the backports pytest needs on 3.10 only there) and its own uvloop, and, where that
Python is installed here, its own stored bytecode (`compile=True`).
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if sys.version_info < (3, 11):  # noqa: UP036 (the check is for interpreters below the target)
    # packer's builder reads TOML with tomllib and relies on 3.11's reproducible marshal.
    sys.exit(f"build.py: needs Python 3.11 or newer; this is Python {sys.version.split()[0]}")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # use packer from this checkout, installed or not

import packer  # noqa: E402

# Every bundled distribution is pinned, so that a rebuild next year gives the same bytes.
RUN = ["click==8.5.1"]
# For `./app.pyz test`: pytest and what it needs; markers are evaluated for each target.
TEST = [
    "pytest==9.2.0", "pluggy==1.7.0", "iniconfig==2.3.1", "packaging==26.3", "Pygments==2.21.0",
    'exceptiongroup==1.3.1; python_version < "3.11"', 'tomli==2.3.0; python_version < "3.11"',
    'typing_extensions==4.16.0; python_version < "3.11"',
]  # fmt: skip
# Native code, extracted once into ~/.cache/packer on first use. Optional: where it cannot
# load, `import uvloop` fails and the server falls back to asyncio.
UVLOOP = "uvloop==0.23.0"
TARGETS = ["3.10", "3.11", "3.12", "3.13"]
UV = "uv==0.13.9"


def ensure_uv() -> None:
    """Make uv importable: installed already, or fetched by pip into a temporary folder."""
    try:
        import uv  # noqa: F401
    except ImportError:
        folder = tempfile.mkdtemp(prefix="build-py-uv-")
        atexit.register(shutil.rmtree, folder, True)
        command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                   "--no-warn-script-location", "--target", folder, UV]  # fmt: skip
        if subprocess.run(command, check=False).returncode != 0:
            sys.exit(f"build.py: pip could not fetch {UV}")
        sys.path.insert(0, folder)


def main() -> int:
    parser = argparse.ArgumentParser(description="Build app.pyz from sample_server.")
    parser.add_argument("-o", "--output", type=Path, default=Path("app.pyz"),
                        help="where to write it [default: app.pyz here]")  # fmt: skip
    parser.add_argument("--no-uvloop", action="store_true", help="leave uvloop out")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    args = parser.parse_args()
    ensure_uv()
    try:
        result = packer.build(
            HERE,
            args.output,
            include=["sample_server/"],  # the package; its tests live inside it
            exclude=["sample_server/pyproject.toml"],  # its own distribution's, not code
            project=False,  # the folder's files, not the packer-pyz project this folder is
            entry="sample_server.cli:main",
            requires_python=">=3.10",  # pytest 9's floor; the server alone would go lower
            with_packages=RUN + TEST + ([] if args.no_uvloop else [UVLOOP]),
            targets=TARGETS,
            optional_native=[] if args.no_uvloop else ["uvloop"],
            # Bytecode stored for each target: the demo runs its suite on four Pythons, in
            # containers and CI jobs whose cache is thrown away, so nothing compiles at start.
            compile=True,
        )
    except packer.PackerError as error:
        print(f"build.py: {error}", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"build.py: warning: {warning}", file=sys.stderr)
    if not args.quiet:
        print(result.summary())
        print(
            "bundled:", ", ".join(f"{name} {version}" for name, version, _ in result.distributions)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
