"""hello's command line: greets, and shows where it runs from."""

from __future__ import annotations

import sys
from importlib.resources import files


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "world"
    greeting = files("hello").joinpath("greeting.txt").read_text(encoding="utf-8").strip()
    print(f"{greeting}, {name}! (running from {sys.argv[0]})")
    return 0
