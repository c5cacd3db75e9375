"""Producing members in process: bytecode, deflate, and the archive's importer reading them."""

from __future__ import annotations

import importlib
import marshal
import sys
import zlib
from collections.abc import Callable
from importlib.util import MAGIC_NUMBER
from pathlib import Path

import packer
from packer.members import bytecode
from packer.zipwriter import DEFLATED, STORED, prepare


def test_bytecode_is_unchecked_hash_based_for_this_interpreter() -> None:
    pyc = bytecode("pkg/mod.py", b"X = 6 * 7\n")
    assert pyc is not None
    assert pyc[:4] == MAGIC_NUMBER and pyc[4:8] == (0b01).to_bytes(4, "little")
    code = marshal.loads(pyc[16:])
    assert code.co_filename == "pkg/mod.py"
    namespace: dict[str, object] = {}
    exec(code, namespace)
    assert namespace["X"] == 42
    assert bytecode("pkg/mod.py", b"X = 6 * 7\n") == pyc, "the same source, the same bytes"
    assert bytecode("pkg/bad.py", b"def (\n") is None


def test_members_are_deflated_only_when_that_makes_them_smaller() -> None:
    text = prepare("a.txt", b"abc" * 1000, 0o100644, 6)
    assert text.method == DEFLATED and len(text.payload) < 3000
    assert zlib.decompress(text.payload, -15) == b"abc" * 1000
    assert text.crc == zlib.crc32(b"abc" * 1000) and text.size == 3000
    noise = prepare("b.bin", bytes(range(256)), 0o100644, 6)
    assert noise.method == STORED and noise.payload == bytes(range(256))
    assert prepare("c.txt", b"abc" * 1000, 0o100644, None).method == STORED


def test_the_archive_importer_loads_modules_once_from_the_zip(
    make_tree: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_tree({
        "unitpkg/__init__.py": "LOADS = []\n",
        "unitpkg/mod.py": "import unitpkg\nunitpkg.LOADS.append(__name__)\nVALUE = 7\n",
        "unitns/part.py": "WHERE = __file__\n",
        "main.py": "",
    })  # fmt: skip
    archive = packer.build(src, tmp_path / "u.pyz", entry="main").output
    with packer.mount(str(archive)):
        mod = importlib.import_module("unitpkg.mod")
        part = importlib.import_module("unitns.part")
        assert mod.VALUE == 7 and mod.__file__ == f"{archive}/unitpkg/mod.py"
        assert type(mod.__loader__).__name__ == "_Loader", "the archive's importer, not zipimport"
        assert sys.modules["unitpkg"].LOADS == ["unitpkg.mod"], "executed once"
        assert f"{archive}/unitns/part.py" == part.WHERE, "a namespace package in the zip"
    assert not {"unitpkg", "unitpkg.mod", "unitns.part"} & set(sys.modules), "forgotten"
