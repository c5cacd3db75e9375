"""The runtime's compile cache, in process: where it writes, and where it never does."""

from __future__ import annotations

import marshal
from pathlib import Path
from types import SimpleNamespace

import pytest

from packer._runtime import importer


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.setattr("sys.dont_write_bytecode", False)
    folder = tmp_path / "cache" / "tag"
    folder.mkdir(parents=True)
    return SimpleNamespace(compiled=lambda: str(folder))


def test_bytecode_goes_under_the_member_name(served: SimpleNamespace, tmp_path: Path) -> None:
    code = importer._cached_code(served, "pkg/mod", b"VALUE = 42\n")  # type: ignore[arg-type]
    namespace: dict[str, object] = {}
    exec(code, namespace)
    assert namespace["VALUE"] == 42 and code.co_filename == "pkg/mod.py"
    written = tmp_path / "cache" / "tag" / "pkg" / "mod.pyc"
    data = written.read_bytes()
    assert marshal.loads(data[16:]).co_filename == "pkg/mod.py"
    again = importer._cached_code(served, "pkg/mod", b"not even Python (\n")  # type: ignore[arg-type]
    assert again.co_filename == "pkg/mod.py"  # read back: the source is not compiled again


@pytest.mark.parametrize("stem", ["../../escape", "pkg/../../escape", "ABSOLUTE"])
def test_a_name_leading_out_of_the_folder_is_never_written(
    served: SimpleNamespace, tmp_path: Path, stem: str
) -> None:
    if stem == "ABSOLUTE":
        stem = str(tmp_path / "absolute")
    code = importer._cached_code(served, stem, b"X = 1\n")  # type: ignore[arg-type]
    assert code.co_filename == stem + ".py"
    assert [p for p in tmp_path.rglob("*.pyc")] == []
