"""Fixtures shared by the tests; the helpers themselves are in helpers.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import write_tree


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """Build a source tree under tmp_path from a dict of file contents."""

    def make(files: dict[str, str | bytes], name: str = "src") -> Path:
        return write_tree(tmp_path / name, files)

    return make
