"""The code that runs inside archives keeps to the syntax its interpreters read: the runtime
package to Python 3.9, the generated stub to any Python (it must reach its one-line refusal)."""

from __future__ import annotations

import ast
import glob
import os
from pathlib import Path

import pytest
from helpers import REPO, run

from packer._runtime.format import RuntimeConfig
from packer.pyversion import parse_requires_python
from packer.stub import render_stub


@pytest.mark.parametrize("path", sorted((REPO / "packer" / "_runtime").glob("*.py")), ids=str)
def test_the_runtime_parses_as_python_39(path: Path) -> None:
    ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 9))


def _python27() -> str:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python")))
    assert found, "pyenv's Python 2.7 is needed to check the stub parses there"
    return found[0]


@pytest.mark.parametrize("signed", [False, True])
def test_the_stub_parses_on_python_27_and_refuses_it_in_one_line(
    tmp_path: Path, signed: bool
) -> None:
    config = RuntimeConfig(verify=True, signed_by="ab" * 32 if signed else None)
    stub = render_stub("callable", "pkg:main", ">=3.9", parse_requires_python(">=3.9"), config)
    ast.parse(stub, feature_version=(3, 4))
    (tmp_path / "__main__.py").write_text(stub, encoding="utf-8")
    # Run as a folder app: the stub's first work is the interpreter check.
    proc = run([_python27(), tmp_path])
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "requires Python >=3.9 (packer's runtime), but this is Python 2.7" in proc.stderr
