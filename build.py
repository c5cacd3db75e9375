"""Build app.pyz with packer's Python API: the model build script (Phar's build.php).

    python build.py [-o app.pyz] [-q]

Run from a fresh checkout with nothing installed: packer itself needs only the standard
library, and is imported from this tree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # use packer from this checkout, installed or not

import packer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description="Build app.pyz from the example application.")
    parser.add_argument("-o", "--output", type=Path, default=HERE / "app.pyz")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    args = parser.parse_args()
    try:
        # The entry point, requires-python and the rest come from the example's own
        # [tool.packer] and [project] tables; anything passed here would override them.
        result = packer.build(HERE / "examples" / "hello", args.output)
    except packer.PackerError as error:
        print(f"build.py: {error}", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"build.py: warning: {warning}", file=sys.stderr)
    if not args.quiet:
        print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
