"""ruff and mypy stay clean: the house style's tooling, run as part of the suite."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from helpers import REPO, clean_env, run


def tool(name: str) -> str:
    # The interpreter's own bin folder first: the venv the suite runs from.
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        # Installed by the test extra; missing means the environment is not the README's.
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def test_ruff_check() -> None:
    proc = run(
        [tool("ruff"), "check", "packer", "sample_server", "tests", "bench", "build.py"],
        cwd=REPO,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = run(
        [
            tool("ruff"),
            "format",
            "--check",
            "packer",
            "sample_server",
            "tests",
            "bench",
            "build.py",
        ],
        cwd=REPO,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = run([sys.executable, "-m", "mypy"], cwd=REPO, env=clean_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
